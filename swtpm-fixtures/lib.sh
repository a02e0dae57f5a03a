# shellcheck shell=bash
# swtpm fixtures: prepared TPM 2.0 states with EK certificates from a local test CA.
# Source this file from a bash test; see swtpm-fixtures/README.md.
#
#   swtpm_fixture_state NAME DEST   copy the prepared state NAME (made once, then cached) to
#                                   DEST (created; no .lock). Same NAME = same TPM (same seeds,
#                                   same EKs); different NAMEs = different TPMs, one CA.
#   swtpm_fixture_trust             print the trust directory (root CA + issuing CA certs,
#                                   what attest_trust_load() reads)
#   swtpm_fixture_ca                print the path of ca.pem, the root certificate (trust anchor)
#   swtpm_start DIR [PORT]          start swtpm on state DIR, on 127.0.0.1:PORT (data) and
#                                   PORT+1 (control); PORT is picked at random in
#                                   33000-34998 when not given. Returns when the TPM answers.
#                                   Sets SWTPM_PID, SWTPM_PORT, SWTPM_TCTI. Log: DIR.swtpm.log
#   swtpm_stop [PID]                stop it (default $SWTPM_PID) and wait until it is gone
#
# Cache: $SWTPM_CACHE_ROOT (default <repo>/build/swtpm-cache)/<hash of these scripts and the
# swtpm version>/, so editing the fixture scripts or upgrading swtpm makes a fresh cache.
# Nothing is written outside the cache, DEST, and swtpm_setup's own mktemp dir in /tmp.

SWTPM_FIXTURES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${SWTPM_CACHE_ROOT:=$(dirname "$SWTPM_FIXTURES_DIR")/build/swtpm-cache}"
SWTPM_PORT_MIN=33000
SWTPM_PORT_MAX=34998

_swtpm_die() {
	echo "swtpm-fixtures: $*" >&2
	return 1
}

# The cache directory for the current scripts (created).
swtpm_fixture_cache() {
	local h
	h=$( { cat "$SWTPM_FIXTURES_DIR/mkstate.sh" "$SWTPM_FIXTURES_DIR/lib.sh" \
		"$SWTPM_FIXTURES_DIR/ek-cert.cnf"; swtpm --version 2>&1; } | sha256sum | cut -c1-16)
	mkdir -p "$SWTPM_CACHE_ROOT/$h/states" || return 1
	echo "$SWTPM_CACHE_ROOT/$h"
}

# Make the prepared state NAME in the cache unless it is there. Serialised with flock, so
# parallel tests prepare each state (and the CA) once.
swtpm_fixture_prepare() { # NAME
	local name=$1 cache fd rc=0
	[[ $name =~ ^[A-Za-z0-9_.-]+$ ]] || { _swtpm_die "bad fixture name '$name'"; return 1; }
	cache=$(swtpm_fixture_cache) || return 1
	[ -f "$cache/states/$name.ready" ] && return 0
	exec {fd}>"$cache/.lock"
	flock "$fd"
	if [ ! -f "$cache/states/$name.ready" ]; then
		rm -rf "$cache/states/$name" "$cache/states/$name.tmp"
		if bash "$SWTPM_FIXTURES_DIR/mkstate.sh" "$cache/ca" "$cache/states/$name.tmp"; then
			mv "$cache/states/$name.tmp" "$cache/states/$name" &&
				touch "$cache/states/$name.ready" || rc=1
		else
			rm -rf "$cache/states/$name.tmp"
			rc=1
		fi
	fi
	exec {fd}>&-
	[ $rc -eq 0 ] || _swtpm_die "cannot prepare state '$name'"
}

swtpm_fixture_state() { # NAME DEST
	local cache f
	[ $# -eq 2 ] || { _swtpm_die "usage: swtpm_fixture_state NAME DEST"; return 1; }
	swtpm_fixture_prepare "$1" || return 1
	cache=$(swtpm_fixture_cache) || return 1
	mkdir -p "$2" && chmod 0700 "$2" || return 1
	for f in "$cache/states/$1"/*; do
		cp "$f" "$2/" && chmod 0600 "$2/${f##*/}" || return 1
	done
}

swtpm_fixture_trust() {
	local cache
	swtpm_fixture_prepare default || return 1
	cache=$(swtpm_fixture_cache) || return 1
	echo "$cache/ca/trust"
}

swtpm_fixture_ca() {
	local cache
	swtpm_fixture_prepare default || return 1
	cache=$(swtpm_fixture_cache) || return 1
	echo "$cache/ca/ca.pem"
}

_swtpm_port_busy() { # PORT
	ss -Hltn "sport = :$1 or sport = :$(($1 + 1))" 2>/dev/null | grep -q .
}

swtpm_start() { # DIR [PORT]
	local dir=$1 want=${2:-} port pid i try
	[ -d "$dir" ] || { _swtpm_die "no state directory '$dir'"; return 1; }
	command -v tpm2_getcap >/dev/null || { _swtpm_die "tpm2_getcap not installed"; return 1; }
	for try in $(seq 30); do
		if [ -n "$want" ]; then
			port=$want
		else
			port=$((SWTPM_PORT_MIN + (RANDOM % ((SWTPM_PORT_MAX - SWTPM_PORT_MIN) / 2)) * 2))
		fi
		if _swtpm_port_busy "$port"; then
			[ -n "$want" ] && { _swtpm_die "port $port busy"; return 1; }
			continue
		fi
		swtpm socket --tpm2 --tpmstate dir="$dir" --flags not-need-init,startup-clear \
			--server type=tcp,port="$port",bindaddr=127.0.0.1 \
			--ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
			>>"$dir.swtpm.log" 2>&1 </dev/null &
		pid=$!
		for i in $(seq 100); do
			if TSS2_LOG=all+none tpm2_getcap -T "swtpm:host=127.0.0.1,port=$port" \
				properties-fixed >/dev/null 2>&1; then
				SWTPM_PID=$pid
				SWTPM_PORT=$port
				SWTPM_TCTI="swtpm:host=127.0.0.1,port=$port"
				return 0
			fi
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		[ -n "$want" ] && break
	done
	_swtpm_die "cannot start swtpm on '$dir' (log: $dir.swtpm.log)"
}

swtpm_stop() { # [PID]
	local pid=${1:-${SWTPM_PID:-}} i rc
	[ -n "$pid" ] || return 0
	[ "$pid" = "${SWTPM_PID:-}" ] && SWTPM_PID=
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	rc=$?
	[ $rc -eq 127 ] || return 0 # it was our child and it is gone
	# not a child of this shell (started by swtpm.sh): poll until it is gone
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.05
	done
	kill -9 "$pid" 2>/dev/null
	return 0
}
