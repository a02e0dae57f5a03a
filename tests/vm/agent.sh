#!/bin/bash
# Runs inside a test VM, from the payload disk (/run/vmtest), started by the image's
# vmtest-agent.service (tests/vm/image.sh).
#
#   agent.sh install   first boot only: copy the payload's root/ into / (the project from
#                      `make install DESTDIR=`, the test's configuration), run its
#                      firstboot.sh if any, reload systemd
#   agent.sh serve     serve the host on /dev/virtio-ports/vmtest: announce
#                      "VMTEST READY <boot id>", then for each line "RUN <id> <base64 script>"
#                      run the script with bash and answer one line
#                      "VMTEST DONE <id> <exit status> <base64 of stdout+stderr>"
P=/run/vmtest
case ${1:-} in
install)
	[ -e /var/lib/vmtest/installed ] && exit 0
	cp -a "$P/root/." / || exit 1
	[ -f "$P/firstboot.sh" ] && bash "$P/firstboot.sh"
	systemctl daemon-reload
	mkdir -p /var/lib/vmtest && touch /var/lib/vmtest/installed
	sync
	;;
serve)
	exec 3<>/dev/virtio-ports/vmtest || exit 1
	echo "VMTEST READY $(cat /proc/sys/kernel/random/boot_id)" >&3
	while read -r -u 3 verb id b64; do
		[ "$verb" = RUN ] || continue
		printf '%s' "$b64" | base64 -d >/run/vmtest-cmd.sh
		out=$(bash /run/vmtest-cmd.sh 2>&1 </dev/null)
		rc=$?
		echo "VMTEST DONE $id $rc $(printf '%s' "$out" | base64 -w0)" >&3
	done
	;;
*)
	echo "usage: agent.sh install|serve" >&2
	exit 2
	;;
esac
