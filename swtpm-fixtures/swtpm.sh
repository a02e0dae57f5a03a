#!/bin/bash
# Command-line front end to lib.sh, for people and for non-bash callers:
#
#   swtpm.sh state NAME DEST    copy the prepared (cached) state NAME to DEST
#   swtpm.sh trust              print the trust directory (root + issuing CA certificates)
#   swtpm.sh ca                 print the path of ca.pem (the root: the trust anchor)
#   swtpm.sh start DIR [PORT]   start swtpm in the background on DIR; prints
#                               "PID PORT TCTI" once the TPM answers
#   swtpm.sh stop PID           stop that swtpm and wait until it is gone
#
# Tests written in bash should source lib.sh instead: then swtpm is their child and their
# EXIT trap can stop it.
set -u
. "$(dirname "$0")/lib.sh"
cmd=${1:-}
shift || true
case $cmd in
state) swtpm_fixture_state "$@" ;;
trust) swtpm_fixture_trust ;;
ca) swtpm_fixture_ca ;;
start)
	swtpm_start "$@" || exit 1
	echo "$SWTPM_PID $SWTPM_PORT $SWTPM_TCTI" ;;
stop)
	[ $# -eq 1 ] || { echo "usage: $0 stop PID" >&2; exit 2; }
	swtpm_stop "$1" ;;
*)
	echo "usage: $0 state NAME DEST | trust | ca | start DIR [PORT] | stop PID" >&2
	exit 2 ;;
esac
