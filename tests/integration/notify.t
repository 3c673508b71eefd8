#!/bin/sh
# systemd Type=notify: hsmcad says READY=1 (with its MAINPID) once it
# serves, RELOADING=1 then READY=1 around a SIGHUP, and STOPPING=1 when it
# drains on SIGTERM. notify_listen stands in for systemd's socket.
. "$top_srcdir/tests/integration/lib.sh"

est_setup nt
"$top_builddir/tests/integration/notify_listen" "$WORK/notify.sock" 30 >"$WORK/notify.log" &
listener=$!
i=0; until [ -S "$WORK/notify.sock" ] || [ $i -ge 100 ]; do i=$((i + 1)); sleep 0.05; done
NOTIFY_SOCKET="$WORK/notify.sock"
export NOTIFY_SOCKET
hsmcad_start
unset NOTIFY_SOCKET

wait_for() {
	i=0; until grep -q "$1" "$WORK/notify.log" || [ $i -ge 200 ]; do i=$((i + 1)); sleep 0.05; done
	grep -q "$1" "$WORK/notify.log"
}
check "READY=1 once hsmcad serves" wait_for "^READY=1"
check "with MAINPID=$HSMCAD_PID" grep -q "MAINPID=$HSMCAD_PID" "$WORK/notify.log"
check "and a STATUS line" grep -q "STATUS=serving EST" "$WORK/notify.log"
kill -HUP "$HSMCAD_PID"
check "RELOADING=1 on SIGHUP" wait_for "^RELOADING=1"
# READY=1 follows once the reload is done: poll for it, never a blind sleep.
ready_again() {
	awk '/^RELOADING=1/ { r = 1 } r && /^READY=1$/ { ok = 1 } END { exit !ok }' "$WORK/notify.log"
}
i=0; until ready_again || [ $i -ge 200 ]; do i=$((i + 1)); sleep 0.05; done
check "then READY=1 again" ready_again
kill -TERM "$HSMCAD_PID"
wait "$HSMCAD_PID"
HSMCAD_PID=
check "STOPPING=1 on SIGTERM" wait_for "^STOPPING=1"
wait "$listener"
check "in that order" test "$(cut -d';' -f1 "$WORK/notify.log" | tr '\n' ' ')" = "READY=1 RELOADING=1 READY=1 STOPPING=1 "

done_testing
