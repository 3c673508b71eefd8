#!/bin/sh
# hsmcad's start-up. -t refuses what the start-up refuses (both run the
# checks of daemon/preflight.c), says every problem on a line of its own
# and touches neither the token nor the ports. -d returns only once the
# daemon is ready (the pidfile written, the listeners serving), or exits
# non-zero with the reason when the start-up fails after the detach.
. "$top_srcdir/tests/integration/lib.sh"

HSMCAD="$top_builddir/daemon/hsmcad"
command -v python3 >/dev/null 2>&1 || skip_all "python3 not installed"

est_setup st
mkdir "$CADIR/run"
sed -i "s|^pidfile = .*|pidfile = $CADIR/run/hsmcad.pid|" "$CONF"
PIDFILE="$CADIR/run/hsmcad.pid"

expect_ok "-t accepts the configuration" "$HSMCAD" -t -c "$CONF"
check "and says so" grep -q "configuration OK" "$WORK/last.out"

PORT_A=$(free_port)

# variant NAME SED-SCRIPT: the configuration edited, in $WORK/NAME.conf.
variant() {
	sed "$2" "$CONF" >"$WORK/$1.conf"
}

# refused NAME PATTERN: -t refuses $WORK/NAME.conf with a line matching
# PATTERN, and so does the start-up, with the same line, before it
# starts anything (it neither logs in nor listens).
refused() {
	run "$HSMCAD" -t -c "$WORK/$1.conf"
	if [ "$RC" -eq 1 ] && grep -Eq -- "^hsmcad: .*$2" "$WORK/last.err" &&
	    ! grep -q "configuration OK" "$WORK/last.out"; then
		ok "-t refuses: $1"
	else
		not_ok "-t refuses: $1 (exit $RC, wanted 1 and /$2/)"
	fi
	# Bounded: the old start-up went on to the token and the ports.
	run timeout 60 "$HSMCAD" -c "$WORK/$1.conf"
	if [ "$RC" -eq 1 ] && grep -Eq -- "$2" "$WORK/last.err" &&
	    ! grep -q "logged in\|listening on" "$WORK/last.err"; then
		ok "the start-up refuses it too, before it starts: $1"
	else
		not_ok "the start-up refuses it too, before it starts: $1 (exit $RC)"
	fi
}

# ---- what only the start-up used to find ----
variant user-missing 's|^\[daemon\]|[daemon]\nuser = hsmca-no-such-user|'
refused user-missing "user hsmca-no-such-user does not exist"
variant user-root 's|^\[daemon\]|[daemon]\nuser = root|'
refused user-root "user root is root"
variant pin-missing "s|^pin-source = .*|pin-source = file:$CADIR/no-such.pin|"
refused pin-missing "cannot read PIN file $CADIR/no-such.pin: No such file"
cp "$CADIR/user.pin" "$CADIR/open.pin"
chmod 644 "$CADIR/open.pin"
variant pin-open "s|^pin-source = .*|pin-source = file:$CADIR/open.pin|"
refused pin-open "PIN file $CADIR/open.pin is open to others"
cp "$CADIR/user.pin" "$CADIR/group.pin"
chmod 620 "$CADIR/group.pin"
variant pin-group "s|^pin-source = .*|pin-source = file:$CADIR/group.pin|"
refused pin-group "PIN file $CADIR/group.pin is open to its group's writes"
unset HSMCA_ST_NO_PIN
variant pin-env "s|^pin-source = .*|pin-source = env:HSMCA_ST_NO_PIN|"
refused pin-env "PIN environment variable HSMCA_ST_NO_PIN is not set"
variant module "s|^module = .*|module = $WORK/no-such-module.so|"
refused module "PKCS#11 module $WORK/no-such-module.so: No such file"
variant store-dir "s|^path = .*|path = $WORK/no-such-dir/hsmca.db|"
refused store-dir "\[store\] path $WORK/no-such-dir/hsmca.db: folder $WORK/no-such-dir: No such file"
variant pid-dir "s|^pidfile = .*|pidfile = $WORK/no-such-dir/hsmcad.pid|"
refused pid-dir "pidfile $WORK/no-such-dir/hsmcad.pid: folder $WORK/no-such-dir: No such file"
# Folders that exist but the user cannot write (checked with its ids).
chmod o+x "$WORK"
mkdir "$WORK/root-only"
chmod 755 "$WORK/root-only"
chown nobody "$CADIR/run"
chmod o+x "$CADIR"
variant store-ro "s|^path = .*|path = $WORK/root-only/hsmca.db|; s|^\[daemon\]|[daemon]\nuser = nobody|"
refused store-ro "\[store\] path $WORK/root-only/hsmca.db: nobody cannot create files in $WORK/root-only"
variant pid-ro "s|^pidfile = .*|pidfile = $WORK/root-only/hsmcad.pid|; s|^\[daemon\]|[daemon]\nuser = nobody|"
refused pid-ro "pidfile $WORK/root-only/hsmcad.pid: nobody cannot create files in $WORK/root-only"
variant listen-twice "s|^listen = .*|listen = 127.0.0.1:$PORT_A\nhttp-listen = 127.0.0.1:$PORT_A|"
refused listen-twice "listen 127.0.0.1:$PORT_A and http-listen 127.0.0.1:$PORT_A cannot both listen"
variant listen-wild "s|^listen = .*|listen = 0.0.0.0:$PORT_A\nhttp-listen = 127.0.0.1:$PORT_A|"
refused listen-wild "listen 0.0.0.0:$PORT_A and http-listen 127.0.0.1:$PORT_A cannot both listen"
variant admin-ca "\$a [admin]\nlisten = 127.0.0.1:0\nclient-ca = $WORK/no-such-ca.pem\nadmins = CN=alice"
refused admin-ca "\[admin\] client-ca $WORK/no-such-ca.pem is unreadable"

# One port, two addresses: not a conflict.
variant listen-two-addrs "s|^listen = .*|listen = 127.0.0.1:$PORT_A\nhttp-listen = 127.0.0.2:$PORT_A|"
expect_ok "-t accepts one port on two addresses" "$HSMCAD" -t -c "$WORK/listen-two-addrs.conf"

# Every problem, one line each, not only the first.
variant many "s|^\[daemon\]|[daemon]\nuser = hsmca-no-such-user|; s|^pin-source = .*|pin-source = file:$CADIR/no-such.pin|; s|^path = .*|path = $WORK/no-such-dir/hsmca.db|; s|^pidfile = .*|pidfile = $WORK/no-such-dir/hsmcad.pid|"
run "$HSMCAD" -t -c "$WORK/many.conf"
check "-t names four problems on four lines (exit $RC)" \
	sh -c "[ $RC -eq 1 ] && [ \$(grep -c '^hsmcad: ' '$WORK/last.err') -eq 4 ] &&
	grep -q 'does not exist' '$WORK/last.err' && grep -q 'PIN file' '$WORK/last.err' &&
	grep -q 'store. path' '$WORK/last.err' && grep -q '^hsmcad: pidfile' '$WORK/last.err'"
check "-t opened no store and wrote no pidfile" \
	sh -c "[ ! -e '$WORK/no-such-dir' ] && [ ! -e '$PIDFILE' ]"

# ---- the descriptor limit against the connection caps ----
# Caps over the limit are a warning (the front runs with fewer
# connections): -t prints the very line the front logs, and still says
# the configuration is OK. A limit that leaves no room to serve is a
# problem, as it is for the start-up. (-t said nothing of either.)
variant caps "s|^\[daemon\]|[daemon]\nhttp-listen = 127.0.0.1:0\nmax-connections = 20\nmax-http-connections = 20|"
caps_warning="the descriptor limit (100, hard limit 100) is below the 104 the listeners may need (max-connections 20 + max-http-connections 20 + 64 of its own): at most 36 connections at once; raise it (LimitNOFILE) or lower the caps"
run sh -c 'ulimit -n 100 && exec "$0" -t -c "$1"' "$HSMCAD" "$WORK/caps.conf"
check "-t under a descriptor limit of 100, below the caps: exit 0 and configuration OK (exit $RC)" \
	sh -c "[ $RC -eq 0 ] && grep -qx 'configuration OK' '$WORK/last.out'"
check "... after the warning the front logs" grep -qxF "hsmcad: warning: $caps_warning" "$WORK/last.err"
check "... and nothing else" test "$(wc -l <"$WORK/last.err")" -eq 1
sh -c 'ulimit -n 100 && exec "$0" -c "$1"' "$HSMCAD" "$WORK/caps.conf" >"$WORK/caps.log" 2>&1 &
caps_pid=$!
i=0
until grep -q "ready:" "$WORK/caps.log" || ! kill -0 $caps_pid 2>/dev/null || [ $i -ge 600 ]; do
	i=$((i + 1)); sleep 0.05
done
check "the front logs the same line when it starts" grep -qF "hsmcad: $caps_warning" "$WORK/caps.log"
kill $caps_pid 2>/dev/null
wait $caps_pid
run sh -c 'ulimit -n 70 && exec "$0" -t -c "$1"' "$HSMCAD" "$WORK/caps.conf"
check "-t under a descriptor limit of 70, too low to serve: exit 1, no OK (exit $RC)" \
	sh -c "[ $RC -eq 1 ] && ! grep -q 'configuration OK' '$WORK/last.out'"
check "... and says why" grep -qxF "hsmcad: the descriptor limit (70, hard limit 70) leaves fewer than 16 connections: raise it (LimitNOFILE)" "$WORK/last.err"

# ---- -d: back only when the daemon is ready ----
PORT=$(free_port)
variant detach "s|^listen = .*|listen = 127.0.0.1:$PORT|"
run "$HSMCAD" -d -c "$WORK/detach.conf"
check "-d exits 0 (exit $RC)" test "$RC" -eq 0
# No wait, no poll: ready means the pidfile is there and the port serves.
check "the pidfile is written when -d returns" test -s "$PIDFILE"
DPID=$(cat "$PIDFILE" 2>/dev/null)
check "it names the daemon's parent ($DPID)" \
	test "$(cat "/proc/$DPID/comm" 2>/dev/null)" = hsmcad-parent
check "which has its signer and front" \
	test "$(grep -l "^[0-9]* (hsmcad-[a-z]*) . $DPID " /proc/[0-9]*/stat 2>/dev/null | wc -l)" -eq 2
check "the listener answers when -d returns" \
	curl -sf --cacert "$CADIR/root.pem" -o /dev/null "https://localhost:$PORT/.well-known/est/cacerts"
# gone PID: not running (init may take a while to reap a zombie).
gone() {
	! kill -0 "$1" 2>/dev/null || [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" = Z ]
}
# (A -d that returned early writes the pidfile later: find it to stop it.)
i=0
while [ -z "$DPID" ] && [ $i -lt 200 ]; do
	i=$((i + 1)); sleep 0.05; DPID=$(cat "$PIDFILE" 2>/dev/null)
done
if [ -n "$DPID" ]; then
	kill "$DPID"
	i=0
	while ! gone "$DPID" && [ $i -lt 600 ]; do i=$((i + 1)); sleep 0.05; done
fi
check "SIGTERM stops it, and the pidfile goes" sh -c "[ -n '$DPID' ] && [ ! -e '$PIDFILE' ]"

# A start-up that fails after the detach: -d says why and exits 1, once
# the daemon is gone (no pidfile left behind, no process).
(umask 077; echo "wrong-pin" >"$CADIR/wrong.pin")
variant wrong-pin "s|^pin-source = .*|pin-source = file:$CADIR/wrong.pin|"
run timeout 60 "$HSMCAD" -d -c "$WORK/wrong-pin.conf"
check "-d with a PIN the token refuses exits 1 (exit $RC)" test "$RC" -eq 1
check "saying why, from the signer" grep -q "^hsmcad: login to token 'st' refused" "$WORK/last.err"
check "and leaves no pidfile" test ! -e "$PIDFILE"

python3 -c 'import socket, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
time.sleep(300)' >"$WORK/busy.port" &
HOLDER=$!
i=0
while [ ! -s "$WORK/busy.port" ] && [ $i -lt 200 ]; do i=$((i + 1)); sleep 0.05; done
BUSY=$(cat "$WORK/busy.port")
variant busy "s|^listen = .*|listen = 127.0.0.1:$BUSY|"
run timeout 60 "$HSMCAD" -d -c "$WORK/busy.conf"
check "-d on a port in use exits 1 (exit $RC)" test "$RC" -eq 1
check "saying why" grep -q "^hsmcad: EST (mutual TLS): cannot listen on 127.0.0.1:$BUSY" "$WORK/last.err"
kill "$HOLDER" 2>/dev/null
wait "$HOLDER" 2>/dev/null

run "$HSMCAD" -d -c "$WORK/user-missing.conf"
check "-d with a problem -t finds exits 1 before it detaches, saying it" \
	sh -c "[ $RC -eq 1 ] && grep -q 'user hsmca-no-such-user does not exist' '$WORK/last.err'"

# A start-up that hangs: a token that hangs at login (the fault shim
# holds C_Login up to 60 s). Once the store is open and the ports bound,
# -d waits 6 times [daemon] timeout (1s here), then names what it was
# waiting for, kills the daemon and exits 1. It waited as long as the
# token did.
SHIM="$top_builddir/tests/pkcs11-fault/pkcs11-fault.so"
if [ -r "$SHIM" ]; then
	PORT=$(free_port)
	variant hang "s|^module = .*|module = $SHIM|; s|^timeout = .*|timeout = 1s|; s|^listen = .*|listen = 127.0.0.1:$PORT|"
	echo "fault=hang on=login" >"$CADIR/hang.ctl"
	start=$(date +%s)
	run env PKCS11_FAULT_MODULE="$SOFTHSM_MODULE" PKCS11_FAULT_CONTROL="$CADIR/hang.ctl" \
		timeout 90 "$HSMCAD" -d -c "$WORK/hang.conf"
	took=$(($(date +%s) - start))
	echo "fault=none" >"$CADIR/hang.ctl"
	check "-d with a token that hangs at login exits 1 within 6 to 10 s (exit $RC after ${took}s)" \
		sh -c "[ $RC -eq 1 ] && [ $took -ge 5 ] && [ $took -le 10 ]"
	check "... with one line that names what it waited for" \
		test "$(cat "$WORK/last.err")" = "hsmcad: the start-up did not finish within 6s (6 times [daemon] timeout): it was waiting for the signer to log in to token 'st' and load its keys; the daemon was stopped"
	# ([h]: the pattern does not match this check's own command line.)
	check "... and none of the daemon's processes is left" \
		sh -c "! pgrep -f '[h]smcad -d -c $WORK/hang.conf' >/dev/null"
	check "... nor its pidfile" test ! -e "$PIDFILE"
	check "... nor its listener" test "$(ss -Htln "( sport = :$PORT )" | wc -l)" -eq 0
else
	for i in 1 2 3 4 5; do
		ok "# SKIP the fault shim is not built (make check builds it)"
	done
fi

done_testing
