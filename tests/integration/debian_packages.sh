#!/bin/bash
# The Debian packages (debian/, docs/packaging.md) build, pass lintian, install into a clean
# Debian 12 root, run from their installed paths, and purge without a trace:
#
#   1. dpkg-buildpackage -us -uc -b in a copy of the tree (it writes debian/ artifacts and
#      ../*.deb), lintian on the .changes: no error;
#   2. a debootstrap'ed Debian 12 minbase root (+ man-db for `man -w`), cached as a tarball
#      in build/debian-chroot-cache/<hash of its recipe>/ (flock: parallel runs build it
#      once), unpacked afresh for each run;
#   3. in it: the packages' dependencies from the archive, a listing of the root, then
#      `apt-get install ./*.deb`; enrolld -n with a configuration and token made here (and
#      refused without the token), edge-keyd --help, enrollctl --help, man -w; the users,
#      directories and units (installed, not enabled); edge-keyd's postinst on an upgrade
#      hands a root-owned /var/lib/edge-keyd to _edge-keyd; `apt-get remove` keeps state and
#      users, `apt-get purge` removes them and leaves the operator's own /etc files; the
#      listing afterwards equals the one before (apt/dpkg bookkeeping aside).
#
# Needs root (debootstrap, chroot). Skips (77) only when a tool cannot be installed.
# Environment: DEB_TEST_KEEP=1 keeps the work directory (logs, root); DEB_CHROOT_CACHE (default build/debian-chroot-cache); DEB_MIRROR (default:
# the first deb.debian.org-style /debian URI of this machine's apt sources).
# Checks are eval'ed strings in single quotes: they expand when they run.
# shellcheck disable=SC2016
set -u
cd "$(dirname "$0")/../.." || exit 1
SRC=$PWD
: "${DEB_CHROOT_CACHE:=$SRC/build/debian-chroot-cache}"
SUITE=bookworm
# What the test itself needs in the root besides minbase.
BASE_INCLUDE=man-db
PKGS=(enrolld edge-keyd enrollctl)

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
fails=0
check() { # description command... (no locals: the commands may be eval'ed strings)
	if "${@:2}"; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi
}
now() { date +%s; }
t_start=$(now)

[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, chroot)"
need_tools() {
	local c
	for c in dpkg-buildpackage dh lintian debootstrap fakeroot flock chroot cpio; do
		command -v "$c" >/dev/null || return 1
	done
}
if ! need_tools; then
	./scripts/install-deps.sh >&2 || skip "cannot install the packaging tools (install-deps.sh)"
	need_tools || skip "dpkg-buildpackage, dh, lintian, debootstrap or fakeroot missing"
fi

W=$(mktemp -d "${TMPDIR:-/var/tmp}/debian-packages.XXXXXX") || fail "mktemp"
R=$W/root
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	# /proc and /dev of the root, and whatever a failed debootstrap left mounted
	awk -v w="$W/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r |
		while read -r m; do umount -l "$m"; done
	if [ -n "${DEB_TEST_KEEP:-}" ]; then
		echo "kept $W"
	else
		rm -rf "$W"
	fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP

# 1. Build from a copy: the tracked and untracked (not ignored) files of the working tree.
mkdir -p "$W/src"
if [ -d .git ] && command -v git >/dev/null; then
	git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
		cpio -p0dm --quiet "$W/src" || fail "copying the tree"
else
	tar -C "$SRC" --exclude=./build -cf - . | tar -C "$W/src" -xf - || fail "copying the tree"
fi
cd "$W/src" || fail "cd"
if ! dpkg-checkbuilddeps >"$W/builddeps.log" 2>&1; then
	"$SRC/scripts/install-deps.sh" >&2 || skip "cannot install the build dependencies"
	dpkg-checkbuilddeps || fail "build dependencies missing after install-deps.sh"
fi
t0=$(now)
# nocheck: the unit tests run in `make check` already; parallel=2: a shared machine.
if ! DEB_BUILD_OPTIONS="nocheck parallel=2" dpkg-buildpackage -us -uc -b >"$W/build.log" 2>&1; then
	tail -n 40 "$W/build.log"
	fail "dpkg-buildpackage"
fi
t_build=$(($(now) - t0))
cd "$W" || fail "cd"
for p in "${PKGS[@]}"; do
	[ -f "$(echo "${p}"_*.deb)" ] || fail "no ${p}_*.deb built"
done

t0=$(now)
lintian --fail-on error -I "$W"/*.changes >"$W/lintian.log" 2>&1
lrc=$?
t_lintian=$(($(now) - t0))
sed 's/^/lintian: /' "$W/lintian.log"
check "lintian: no errors" [ $lrc -eq 0 ]
check "lintian: no E: tags" eval '! grep -q "^E: " "$W/lintian.log"'

# 2. The clean root. The recipe (this function, the suite, the mirror, the extra packages)
# is the cache key.
MIRROR=${DEB_MIRROR:-}
if [ -z "$MIRROR" ]; then
	MIRROR=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
		/etc/apt/sources.list.d/*.sources 2>/dev/null |
		grep -oE 'https?://[^ ]*/debian/?( |$)' | head -n1 | tr -d ' ')
	MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi
MIRROR=${MIRROR%/}
SECURITY=${MIRROR%/debian}/debian-security

build_base() { # directory
	debootstrap --variant=minbase --include="$BASE_INCLUDE" \
		--cache-dir="$DEB_CHROOT_CACHE/debootstrap-debs" "$SUITE" "$1" "$MIRROR" ||
		return 1
	cat >"$1/etc/apt/sources.list" <<-EOF
		deb $MIRROR $SUITE main
		deb $MIRROR $SUITE-updates main
		deb $SECURITY $SUITE-security main
	EOF
	# No daemon starts inside the root.
	printf '#!/bin/sh\nexit 101\n' >"$1/usr/sbin/policy-rc.d"
	chmod 0755 "$1/usr/sbin/policy-rc.d"
	chroot "$1" apt-get clean
}

key=$( { declare -f build_base; echo "$SUITE $MIRROR $BASE_INCLUDE"; } | sha256sum | cut -c1-16)
C=$DEB_CHROOT_CACHE/$key
mkdir -p "$C" "$DEB_CHROOT_CACHE/debootstrap-debs" "$DEB_CHROOT_CACHE/archives" || fail "mkdir"
t0=$(now)
cold=cached
if [ ! -f "$C/root.tar" ]; then
	exec {lockfd}>"$C/.lock"
	flock "$lockfd"
	if [ ! -f "$C/root.tar" ]; then
		cold=cold
		echo "building the Debian $SUITE root in $C (once)"
		# outside build/: the Makefile includes every *.d under build/ (/etc/apt/*.d ...)
		B0=$W/base
		if ! build_base "$B0" >"$C/build.log" 2>&1; then
			tail -n 20 "$C/build.log"
			fail "debootstrap (log: $C/build.log)"
		fi
		tar -C "$B0" --numeric-owner -cf "$C/root.tar.tmp" . || fail "packing the root"
		mv "$C/root.tar.tmp" "$C/root.tar" || fail "mv"
		rm -rf "$B0"
	fi
	flock -u "$lockfd"
fi
mkdir "$R" || fail "mkdir"
tar -C "$R" --numeric-owner -xf "$C/root.tar" || fail "unpacking the root"
t_root=$(($(now) - t0))

mount -t proc proc "$R/proc" || fail "mount /proc"
if [ ! -c "$R/dev/null" ]; then
	mount --bind /dev "$R/dev" || fail "mount /dev"
fi
cp /etc/resolv.conf "$R/etc/resolv.conf" 2>/dev/null
in_root() {
	chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 \
		DEBIAN_FRONTEND=noninteractive "$@"
}

# 3. Dependencies first (Depends and Recommends of the three packages, from the archive; the
# downloaded .debs are kept between runs), so that the listing before the install holds them.
t0=$(now)
mkdir -p "$R/root/debs"
for p in "${PKGS[@]}"; do cp "$W/${p}"_*_*.deb "$R/root/debs/"; done
deps=$(for p in "${PKGS[@]}"; do
	dpkg-deb -f "$W/${p}"_*_*.deb Depends Recommends | sed -n 's/^[A-Za-z]*: //p'
done | paste -sd, -)
cp -n "$DEB_CHROOT_CACHE/archives/"*.deb "$R/var/cache/apt/archives/" 2>/dev/null
in_root apt-get -q update >"$W/apt.log" 2>&1 || { tail "$W/apt.log"; fail "apt-get update"; }
in_root apt-get -o Dpkg::Use-Pty=0 -q -y --no-install-recommends satisfy "$deps" >>"$W/apt.log" 2>&1 ||
	{ tail -n 30 "$W/apt.log"; fail "installing the dependencies: $deps"; }
(
	flock 9
	cp -n "$R/var/cache/apt/archives/"*.deb "$DEB_CHROOT_CACHE/archives/" 2>/dev/null
) 9>"$DEB_CHROOT_CACHE/archives/.lock"
t_deps=$(($(now) - t0))

# What the root holds: every path with its type, mode and owner, and the content of every
# file in /etc (the users live there). Left out: apt's and dpkg's own bookkeeping
# (/var/lib/dpkg, /var/lib/apt, /var/cache/apt, /var/cache/debconf, /var/log), man-db's
# index (/var/cache/man, rebuilt by its trigger) and the shadow tools' backups (/etc/passwd-
# and friends, rewritten by every useradd); /proc, /dev, /run, /tmp are not files.
listing() {
	(
		cd "$R" || exit 1
		find . -xdev \( -path ./proc -o -path ./dev -o -path ./run -o -path ./tmp \
			-o -path ./var/lib/dpkg -o -path ./var/lib/apt -o -path ./var/cache/apt \
			-o -path ./var/cache/debconf -o -path ./var/log -o -path ./var/cache/man \
			-o -path './etc/*-' \) -prune -o -printf '%y %m %U:%G %p\n' | sort
		find ./etc -xdev -type f ! -name '*-' -exec sha256sum {} + | sort -k2
	)
}
listing >"$W/before" || fail "listing"
npkg_before=$(in_root dpkg-query -W -f '${db:Status-Abbrev}\n' | grep -c '^ii')

t0=$(now)
debs=()
for p in "${PKGS[@]}"; do debs+=("/root/debs/$(cd "$W" && echo "${p}"_*_*.deb)"); done
if ! in_root apt-get -o Dpkg::Use-Pty=0 -q -y install "${debs[@]}" >"$W/install.log" 2>&1; then
	tail -n 30 "$W/install.log"
	fail "apt-get install ${debs[*]}"
fi
npkg_after=$(in_root dpkg-query -W -f '${db:Status-Abbrev}\n' | grep -c '^ii')
check "apt-get install added exactly our ${#PKGS[@]} packages" \
	[ "$npkg_after" -eq $((npkg_before + ${#PKGS[@]})) ]

# Installed, from the installed paths.
check "enrolld is /usr/sbin/enrolld" [ -x "$R/usr/sbin/enrolld" ]
check "edge-keyd --help" eval 'in_root /usr/sbin/edge-keyd --help >/dev/null'
check "enrollctl --help" eval 'in_root /usr/bin/enrollctl --help >/dev/null'
pages=(enrolld:8 enrolld.conf:5 edge-keyd:8 edge-keyd.conf:5)
# enrollctl(1) is packaged as soon as there is one (debian/enrollctl.install)
[ -f "$SRC/docs/man/enrollctl.1.scd" ] && pages+=(enrollctl:1)
for page in "${pages[@]}"; do
	check "man -w ${page%:*}(${page#*:})" \
		eval '[ "$(in_root man -w "${page#*:}" "${page%:*}")" = "/usr/share/man/man${page#*:}/${page%:*}.${page#*:}.gz" ]'
done
check "bash completion for enrollctl" [ -f "$R/usr/share/bash-completion/completions/enrollctl" ]

# enrolld -n with the operator's configuration and admin token; refused without the token.
mkdir -p "$R/etc/enrolld"
cat >"$R/etc/enrolld/enrolld.conf" <<-EOF
	[server]
	listen = 127.0.0.1
	port = 8443
	[state]
	db_path = /var/lib/enrolld
	[auth]
	admin_token_file = /etc/enrolld/admin.token
EOF
check "enrolld -n refuses a configuration whose admin token file is missing" \
	eval '! in_root /usr/sbin/enrolld -n -c /etc/enrolld/enrolld.conf >/dev/null 2>&1'
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$R/etc/enrolld/admin.token"
chmod 0600 "$R/etc/enrolld/admin.token" "$R/etc/enrolld/enrolld.conf"
check "enrolld -n accepts the configuration" in_root /usr/sbin/enrolld -n -c /etc/enrolld/enrolld.conf
# The shipped example turns privilege separation on (user = _enrolld, the package's user):
# valid with its token root:_enrolld 0640; the same mode with another group is refused.
EX=$R/usr/share/edgeward/enrolld.conf.example
check "the shipped example has privilege separation on (user = _enrolld)" \
	grep -q '^user = _enrolld$' "$EX"
sed -e 's|^admin_token_file = .*|admin_token_file = /etc/enrolld/ps.token|' \
	-e 's|^ek_ca_dir = .*|#|' "$EX" >"$R/etc/enrolld/ps.conf"
install -m 0640 -g "$(in_root getent group _enrolld | cut -d: -f3)" \
	"$R/etc/enrolld/admin.token" "$R/etc/enrolld/ps.token"
check "enrolld -n accepts the example with its token root:_enrolld 0640" \
	in_root /usr/sbin/enrolld -n -c /etc/enrolld/ps.conf
chgrp 0 "$R/etc/enrolld/ps.token"
check "enrolld -n refuses it with the token root:root 0640" \
	eval '! in_root /usr/sbin/enrolld -n -c /etc/enrolld/ps.conf >/dev/null 2>&1'
rm -f "$R/etc/enrolld/ps.conf" "$R/etc/enrolld/ps.token"

for d in enrolld edge-keyd; do
	u=_$d
	# shellcheck disable=SC2034 # used in the eval
	pw=$(in_root getent passwd "$u")
	echo "     $pw"
	check "user $u: system uid, no login shell, home /var/lib/$d" \
		eval '[[ $pw =~ ^$u:x:([0-9]+):[0-9]+:[^:]*:/var/lib/$d:/usr/sbin/nologin$ ]] && [ "${BASH_REMATCH[1]}" -lt 1000 ]'
	check "group $u" eval 'in_root getent group "$u" >/dev/null'
	# edge-keyd runs as its user (its unit's User=); enrolld starts as root
	owner=root
	[ $d = edge-keyd ] && owner=$u
	check "/var/lib/$d is 0700 $owner" [ "$(in_root stat -c '%a %U' "/var/lib/$d")" = "700 $owner" ]
	check "/etc/$d exists" [ -d "$R/etc/$d" ]
	unit=$R/lib/systemd/system/$d.service
	check "$d.service runs /usr/sbin/$d" grep -q "^ExecStart=/usr/sbin/$d " "$unit"
	check "$d.service is not enabled" \
		eval '[ -z "$(find "$R/etc/systemd/system" -name "$d.service" 2>/dev/null)" ]'
done
# An upgrade from a version whose edge-keyd ran as root: its root-owned state directory
# and files are handed to _edge-keyd by postinst configure.
chown -R root:root "$R/var/lib/edge-keyd"
(umask 077; echo blob >"$R/var/lib/edge-keyd/wg.sealed")
in_root /var/lib/dpkg/info/edge-keyd.postinst configure 0.0.1 >"$W/upgrade.log" 2>&1 ||
	{ cat "$W/upgrade.log"; fail "edge-keyd postinst configure (upgrade)"; }
check "upgrade: edge-keyd's root-owned state handed to _edge-keyd" \
	eval '[ "$(in_root stat -c "%U %a" /var/lib/edge-keyd /var/lib/edge-keyd/wg.sealed | sort -u)" = "_edge-keyd 600
_edge-keyd 700" ]'
rm -f "$R/var/lib/edge-keyd/wg.sealed"
# What the daemons would have written.
echo state >"$R/var/lib/enrolld/data.mdb"
mkdir -m 0700 "$R/var/lib/enrolld/keys"
echo '{}' >"$R/var/lib/edge-keyd/enrollment.json"

# remove keeps users and state, purge removes them; the operator's files stay.
in_root apt-get -o Dpkg::Use-Pty=0 -q -y remove "${PKGS[@]}" >"$W/remove.log" 2>&1 ||
	{ tail -n 20 "$W/remove.log"; fail "apt-get remove"; }
check "remove: binaries gone" eval '[ ! -e "$R/usr/sbin/enrolld" ] && [ ! -e "$R/usr/bin/enrollctl" ]'
check "remove: state and user kept" \
	eval '[ -f "$R/var/lib/enrolld/data.mdb" ] && in_root getent passwd _enrolld >/dev/null'
# Packages without maintainer scripts or conffiles are gone with remove already.
mapfile -t left < <(for p in "${PKGS[@]}"; do
	[ "$(in_root dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null)" = config-files ] &&
		echo "$p"
done)
check "remove: enrolld and edge-keyd left their configuration state" \
	eval '[[ " ${left[*]} " == *" enrolld "* && " ${left[*]} " == *" edge-keyd "* ]]'
in_root apt-get -o Dpkg::Use-Pty=0 -q -y purge "${left[@]}" >"$W/purge.log" 2>&1 ||
	{ tail -n 20 "$W/purge.log"; fail "apt-get purge"; }
t_install=$(($(now) - t0))
for p in "${PKGS[@]}"; do
	st=$(in_root dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null)
	check "$p purged (status '${st:-unknown}')" eval '[ -z "$st" ] || [ "$st" = not-installed ]'
done
for u in _enrolld _edge-keyd; do
	check "purge: user and group $u gone" \
		eval '! in_root getent passwd "$u" >/dev/null && ! in_root getent group "$u" >/dev/null'
done
check "purge: the operator's configuration and token stay" \
	eval '[ -f "$R/etc/enrolld/enrolld.conf" ] && [ -f "$R/etc/enrolld/admin.token" ]'
rm -rf "$R/etc/enrolld"

listing >"$W/after" || fail "listing"
if ! diff -u "$W/before" "$W/after" >"$W/diff"; then
	echo "left behind or changed (- before install, + after purge):"
	sed 's/^/    /' "$W/diff" | head -n 40
fi
check "purge leaves the root as it was before the install" [ ! -s "$W/diff" ]
# ... and that comparison sees a leftover.
touch "$R/var/lib/stray"
listing >"$W/stray"
check "the listing sees a file left behind" eval '! cmp -s "$W/before" "$W/stray"'

echo "cost: ${cold} root ${t_root}s, build ${t_build}s, lintian ${t_lintian}s," \
	"dependencies ${t_deps}s, install/remove/purge ${t_install}s, total $(($(now) - t_start))s"
[ "$fails" -eq 0 ] || fail "$fails checks failed"
echo "PASS"
