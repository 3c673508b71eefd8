#!/bin/sh
# hsmcad's pidfile is locked while the daemon runs. A second hsmcad with
# the same pidfile refuses at once, with one line naming the file and the
# running pid, and leaves the running daemon and its file alone; -t does
# not take the lock. A pidfile left by a SIGKILL, which nobody holds, is
# taken over. In the foreground and with -d, whose daemon keeps the lock
# after the process started has gone. The lock is the parent's alone:
# its front and signer, stopped, do not keep it once the parent is gone.
. "$top_srcdir/tests/integration/lib.sh"
command -v curl >/dev/null 2>&1 || skip_all "curl not installed"

HSMCAD="$top_builddir/daemon/hsmcad"
est_setup pf
PIDFILE="$CADIR/hsmcad.pid"
RUNNING=

# gone PID: not running (init may take a while to reap a zombie).
gone() {
	! kill -0 "$1" 2>/dev/null || [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" = Z ]
}
# wait_gone PID...: until each is gone, 30 s at most each.
wait_gone() {
	for wg in "$@"; do
		i=0
		while ! gone "$wg" && [ $i -lt 600 ]; do i=$((i + 1)); sleep 0.05; done
	done
}
# serves PORT: the EST listener on PORT answers.
serves() {
	curl -sf --cacert "$CADIR/root.pem" -o /dev/null "https://localhost:$1/.well-known/est/cacerts"
}
inode() {
	stat -c %i "$PIDFILE" 2>/dev/null
}
# A -d daemon is no child of this shell: stopped here whatever happens.
trap 'hsmcad_stop; [ -n "$RUNNING" ] && kill "$RUNNING" 2>/dev/null; cleanup' EXIT

# second DESC CONF [ARG...]: a second hsmcad with CONF, the pidfile of the
# one running ($RUNNING, serving on $RUNNING_PORT). CONF listens on port
# 0: the pidfile is all the two share.
second() {
	sd=$1; conf=$2; shift 2
	ino=$(inode)
	run timeout 30 "$HSMCAD" "$@" -c "$conf"
	check "$sd: refused, exit 1 (exit $RC)" test "$RC" -eq 1
	check "$sd: in one line that names the file and the running pid" \
		test "$(cat "$WORK/last.err")" = "hsmcad: $PIDFILE: held by hsmcad pid $RUNNING"
	check "$sd: the pidfile is the same file and still holds $RUNNING" \
		sh -c "[ '$(inode)' = '$ino' ] && [ \"\$(cat '$PIDFILE')\" = '$RUNNING' ]"
	check "$sd: the running daemon still serves" serves "$RUNNING_PORT"
}

# ---- in the foreground ----
hsmcad_start
RUNNING=$HSMCAD_PID
RUNNING_PORT=$PORT
check "the pidfile holds the daemon's pid" test "$(cat "$PIDFILE")" = "$RUNNING"
second "a second hsmcad" "$CONF"
second "a second hsmcad -d" "$CONF" -d
expect_ok "-t checks the configuration of the running daemon" "$HSMCAD" -t -c "$CONF"
check "... and says so" grep -qx "configuration OK" "$WORK/last.out"
second "a second hsmcad after -t (which took no lock)" "$CONF"

# SIGKILL: nothing removes the file; the lock went with the process.
KIDS=$(pgrep -P "$RUNNING")
kill -9 "$RUNNING"
wait "$RUNNING" 2>/dev/null
HSMCAD_PID=
wait_gone $KIDS
check "after a SIGKILL the pidfile is left, with the killed daemon's pid" \
	test "$(cat "$PIDFILE" 2>/dev/null)" = "$RUNNING"
hsmcad_start
check "a new hsmcad takes the stale pidfile over: it holds the new pid ($HSMCAD_PID)" \
	test "$(cat "$PIDFILE" 2>/dev/null)" = "$HSMCAD_PID"

# The children closed their copy of the lock: stopped, they outlive the
# parent, and the pidfile is free all the same.
RUNNING=$HSMCAD_PID
KIDS=$(pgrep -P "$RUNNING")
check "the daemon has its two children" test "$(echo $KIDS | wc -w)" -eq 2
kill -STOP $KIDS
kill -9 "$RUNNING"
wait "$RUNNING" 2>/dev/null
HSMCAD_PID=
hsmcad_start
check "with the killed daemon's front and signer still there, a new hsmcad takes the pidfile over ($HSMCAD_PID)" \
	test "$(cat "$PIDFILE" 2>/dev/null)" = "$HSMCAD_PID"
kill -9 $KIDS 2>/dev/null
wait_gone $KIDS
RUNNING=$HSMCAD_PID
hsmcad_stop
check "SIGTERM: the pidfile is removed" test ! -e "$PIDFILE"

# ---- with -d ----
D_PORT=$(free_port)
sed "s|^listen = .*|listen = 127.0.0.1:$D_PORT|" "$CONF" >"$WORK/d.conf"
run "$HSMCAD" -d -c "$WORK/d.conf"
check "hsmcad -d starts (exit $RC)" test "$RC" -eq 0
RUNNING=$(cat "$PIDFILE" 2>/dev/null)
RUNNING_PORT=$D_PORT
check "its pidfile names the detached parent ($RUNNING)" \
	test "$(cat "/proc/$RUNNING/comm" 2>/dev/null)" = hsmcad-parent
second "a second hsmcad, with -d's daemon running" "$CONF"
second "a second hsmcad -d, with -d's daemon running" "$CONF" -d
expect_ok "-t checks the configuration of the running daemon" "$HSMCAD" -t -c "$WORK/d.conf"
second "a second hsmcad after -t" "$CONF"

KIDS=$(pgrep -P "$RUNNING")
kill -9 "$RUNNING"
wait_gone "$RUNNING" $KIDS
check "after a SIGKILL of -d's daemon the pidfile is left, with its pid" \
	test "$(cat "$PIDFILE" 2>/dev/null)" = "$RUNNING"
OLD=$RUNNING
RUNNING=
run "$HSMCAD" -d -c "$WORK/d.conf"
RUNNING=$(cat "$PIDFILE" 2>/dev/null)
check "hsmcad -d takes the stale pidfile over (exit $RC, pid $RUNNING)" \
	sh -c "[ $RC -eq 0 ] && [ -n '$RUNNING' ] && [ '$RUNNING' != '$OLD' ] &&
	[ \"\$(cat /proc/$RUNNING/comm 2>/dev/null)\" = hsmcad-parent ]"
check "and serves" serves "$D_PORT"
[ -n "$RUNNING" ] && kill "$RUNNING"
wait_gone "$RUNNING"
RUNNING=
check "SIGTERM: -d's daemon removes the pidfile" test ! -e "$PIDFILE"

done_testing
