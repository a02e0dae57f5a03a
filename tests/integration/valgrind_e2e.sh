#!/bin/bash
# Both daemons end to end under valgrind memcheck (issue 12, sanitizers and memory): the
# whole of edgekeyd_enroll.sh (enrolld over HTTPS with attestation, edge-keyd provision,
# enroll, run with the tunnel up, wireguard-go killed and replaced, rotate, a record that
# does not match the sealed key, revoke and reinstate, SIGHUP, SIGTERM) with every enrolld
# and edge-keyd process under memcheck at once. Passes when that test passes and every
# such process exited by itself with no error: no invalid read or write, no use of an
# uninitialised value, no bad free, no definite or indirect leak (memory the libraries
# still reach at exit is not a leak). A process that was killed leaves no summary and
# fails the test; children that exec'd another program (wireguard-go) are not ours.
# Everything runs several times slower: CG_SLOW stretches the test's waits and enrolld's
# header_timeout (a client's first TLS handshake under valgrind can take over 10 s).
set -u
cd "$(dirname "$0")/../.."
B=${B:-build}
command -v valgrind >/dev/null || { echo "skip: valgrind not installed"; exit 77; }
case $B in *san*) echo "skip: a sanitizer build does not run under valgrind"; exit 77 ;; esac
VG=$(mktemp -d /tmp/valgrind_e2e.XXXXXX)
trap 'rm -rf "$VG"' EXIT
EKD_WRAP="valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect"
EKD_WRAP+=" --errors-for-leak-kinds=definite,indirect --track-origins=yes --log-file=$VG/%p.log"
export EKD_WRAP CG_WRAP=$EKD_WRAP CG_SLOW=6 CG_STOP_WAIT=60
B=$B bash tests/integration/edgekeyd_enroll.sh
rc=$?
fails=0
[ "$rc" = 0 ] || { echo "FAIL edgekeyd_enroll.sh under valgrind: exit $rc"; fails=$((fails + 1)); }

clean=0 execd=0 enrolld=0 daemon=0
pids=" $(ls "$VG" | sed 's/\.log$//' | tr '\n' ' ') "
for l in "$VG"/*.log; do
	[ -f "$l" ] || continue
	cmd=$(sed -n 's/^==[0-9]*== Command: //p' "$l")
	parent=$(sed -n 's/^==[0-9]*== Parent PID: //p' "$l")
	summary=$(sed -n 's/^==[0-9]*== ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$l")
	if [ -z "$summary" ]; then
		if [[ $pids == *" $parent "* ]]; then
			execd=$((execd + 1)) # a fork of one of ours that exec'd wireguard-go
			continue
		fi
		echo "FAIL '$cmd' did not exit by itself (no memcheck summary):"
		tail -n 5 "$l"
		fails=$((fails + 1))
	elif [ "$summary" != 0 ]; then
		echo "FAIL memcheck found $summary error(s) in '$cmd':"
		grep -v '^==[0-9]*== *$' "$l" | head -n 80
		fails=$((fails + 1))
	else
		clean=$((clean + 1))
		case $cmd in
		*/enrolld\ *) enrolld=$((enrolld + 1)) ;;
		*" run") daemon=$((daemon + 1)) ;;
		esac
	fi
done
echo "memcheck: $clean process(es) clean (enrolld $enrolld, edge-keyd run $daemon, the rest edge-keyd commands), $execd fork(s) that exec'd wireguard-go"
[ "$enrolld" -ge 1 ] || { echo "FAIL enrolld did not run to its end under memcheck"; fails=$((fails + 1)); }
[ "$daemon" -ge 1 ] || { echo "FAIL edge-keyd run did not run to its end under memcheck"; fails=$((fails + 1)); }
# provision (twice), --offline, enroll (several), rotate, status (several), -n
[ "$clean" -ge 10 ] || { echo "FAIL only $clean process(es) ran to their end"; fails=$((fails + 1)); }
echo "$fails failure(s)"
[ "$fails" = 0 ]
