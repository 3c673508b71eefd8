#!/bin/sh
# conn-limits.t: every listener counts its connections when it accepts
# them, against its cap (max-connections for EST, max-http-connections
# for plain HTTP, [admin] max-connections), so idle TCP connections that
# never send a byte cannot pile up: one over the cap is closed at once
# (plain HTTP: a 503 first), the front's descriptors stay bounded, the
# log says so once, and clients are served again as soon as there is
# room. accept() failing for want of descriptors (the front's limit
# lowered under it) pauses the listener instead of spinning and logging
# each failure, and it recovers on its own. At start, the front raises
# its descriptor limit to the hard limit when the caps need it, and
# refuses to start when they do not fit even then.
. "$top_srcdir/tests/integration/lib.sh"

command -v curl >/dev/null 2>&1 || skip_all "curl not installed"
command -v python3 >/dev/null 2>&1 || skip_all "python3 not installed"
command -v prlimit >/dev/null 2>&1 || skip_all "prlimit (util-linux) not installed"
[ "$(id -u)" = 0 ] || skip_all "lowering a running process's descriptor limit needs root"

CAP=20
HCAP=20
ACAP=5
est_setup conn
all_listeners
# A long timeout: the idle connections must outlive the test's checks.
sed -i "s/^timeout = .*/timeout = 60s/; s|^\[daemon\]|[daemon]\nmax-connections = $CAP\nmax-http-connections = $HCAP|" "$CONF"
# [admin] is the last section.
echo "max-connections = $ACAP" >>"$CONF"

# hold.py MODE HOST PORT N STATUS: N connections to HOST:PORT, each idle
# (MODE idle) or sending one GET and closing once answered (MODE get).
# STATUS is rewritten at every change: "opened=N answered=N closed=N",
# closed counting those the server closed. Ends on SIGTERM, when every
# connection is answered or closed, or after 60 seconds.
cat >"$WORK/hold.py" <<'EOF'
import os, select, signal, socket, sys, time
mode, host, port, n, status = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
socks, bufs = [], {}
opened = answered = closed = 0
def report():
    with open(status + ".tmp", "w") as f:
        f.write("opened=%d answered=%d closed=%d\n" % (opened, answered, closed))
    os.replace(status + ".tmp", status)
for i in range(n):
    s = socket.create_connection((host, port), timeout=10)
    if mode == "get":
        s.sendall(b"GET /crl/99.crl HTTP/1.1\r\nHost: localhost\r\n\r\n")
    socks.append(s)
    bufs[s] = b""
    opened += 1
report()
end = time.time() + 60
while socks and time.time() < end:
    r, _, _ = select.select(socks, [], [], 0.5)
    for s in r:
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if data and mode == "get":
            bufs[s] += data
            if b"\r\n\r\n" not in bufs[s]:
                continue
            answered += 1
        elif data:
            continue
        else:
            closed += 1
        socks.remove(s)
        s.close()
    if r:
        report()
EOF

# hold MODE PORT N NAME: hold.py in the background, its pid in HOLD_PID;
# returns once all N are connected.
hold() {
	rm -f "$WORK/$4.status"
	python3 "$WORK/hold.py" "$1" 127.0.0.1 "$2" "$3" "$WORK/$4.status" 2>"$WORK/$4.err" &
	HOLD_PID=$!
	i=0
	until grep -q "opened=$3 " "$WORK/$4.status" 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 400 ] && kill -0 $HOLD_PID 2>/dev/null || { cat "$WORK/$4.err"; bail "$4: could not open $3 connections"; }
		sleep 0.05
	done
}

# field NAME KEY: a number from NAME's status line.
field() {
	sed -n "s/.*$2=\([0-9]*\).*/\1/p" "$WORK/$1.status"
}

# wait_for NAME KEY N: until NAME's KEY reaches N (at most 20 s).
wait_for() {
	i=0
	while [ "$(field "$1" "$2")" -lt "$3" ] && [ $i -lt 400 ]; do
		i=$((i + 1)); sleep 0.05
	done
}

# front_fds: descriptors the front holds.
front_fds() {
	ls "/proc/$FRONT/fd" | wc -l
}

# ---- the caps do not fit the descriptor limit: a warning, a smaller budget ----
(ulimit -n 100; exec "$top_builddir/daemon/hsmcad" -c "$CONF") >"$WORK/low.log" 2>&1 &
low=$!
i=0
until grep -q "ready:" "$WORK/low.log" || ! kill -0 $low 2>/dev/null || [ $i -ge 600 ]; do
	i=$((i + 1)); sleep 0.05
done
sed 's/^/# low: /' "$WORK/low.log" | grep -i "limit"
check "a descriptor limit of 100 (hard), below caps 20 + 20 + 5 + 64: hsmcad starts" \
	grep -q "ready:" "$WORK/low.log"
check "... and warns with the numbers and the budget" \
	grep -q "descriptor limit (100, hard limit 100) is below the 109 .*at most 36 connections at once" "$WORK/low.log"
kill $low 2>/dev/null
wait $low
rc=$?
check "... and stops cleanly (status $rc)" test "$rc" -eq 0
(ulimit -n 70; exec "$top_builddir/daemon/hsmcad" -c "$CONF") >"$WORK/low.log" 2>&1 &
low=$!
i=0; while kill -0 $low 2>/dev/null && [ $i -lt 600 ]; do i=$((i + 1)); sleep 0.05; done
kill $low 2>/dev/null
wait $low
rc=$?
check "a descriptor limit of 70 leaves no room to serve: hsmcad exits (status $rc)" \
	test "$rc" -ne 0
check "... and says why" grep -q "descriptor limit (70, hard limit 70) leaves fewer than 16 connections" "$WORK/low.log"

# ---- a low soft limit: raised to the hard limit ----
soft=$(ulimit -S -n)
hard=$(ulimit -H -n)
ulimit -S -n 100
hsmcad_start
ulimit -S -n "$soft"
FRONT=$(pgrep -P "$HSMCAD_PID" -x hsmcad-front)
[ -n "$FRONT" ] && [ -n "$HTTP_PORT" ] && [ -n "$ADMIN_PORT" ] || bail "no front, HTTP or admin listener"
nofile=$(awk '/^Max open files/ { print $4 }' "/proc/$FRONT/limits")
check "a soft limit of 100 is raised to the hard limit ($nofile, hard $hard)" test "$nofile" = "$hard"

fds0=$(front_fds)
echo "# the front holds $fds0 descriptors at rest"

# ---- idle connections over the caps ----
hold idle "$PORT" $((CAP * 3)) est
est_pid=$HOLD_PID
hold idle "$HTTP_PORT" $((HCAP * 3)) http
http_pid=$HOLD_PID
hold idle "$ADMIN_PORT" 3 admin
admin_pid=$HOLD_PID
wait_for est closed $((CAP * 2))
wait_for http closed $((HCAP * 2))
sed "s/^/# EST: /" "$WORK/est.status"
sed "s/^/# HTTP: /" "$WORK/http.status"
check "EST: of $((CAP * 3)) idle connections, all over the cap are closed at once" \
	test "$(field est closed)" -eq $((CAP * 2))
check "HTTP: the same with max-http-connections" \
	test "$(field http closed)" -eq $((HCAP * 2))
check "admin: 3 idle connections under its own cap ($ACAP) stay open" \
	test "$(field admin closed)" -eq 0
fds=$(front_fds)
check "the front holds its descriptors at rest and the capped connections only ($fds <= $fds0 + $CAP + $HCAP + 3 + 4)" \
	test "$fds" -le $((fds0 + CAP + HCAP + 3 + 4))

# While full: refused at once, never left waiting.
run curl -s -o /dev/null -w '%{http_code}' --max-time 20 --cacert "$CADIR/root.pem" "$URL/cacerts"
check "EST at its cap: a new client is refused (status $(cat "$WORK/last.out"), curl exit $RC, not a timeout)" \
	sh -c "test '$(cat "$WORK/last.out")' = 000 && test $RC -ne 28"
STATUS=$(curl -s -D "$WORK/hdr" -o "$WORK/body" -w '%{http_code}' --max-time 20 "http://127.0.0.1:$HTTP_PORT/crl/1.crl")
check "HTTP at its cap: a new client gets 503 ($STATUS)" test "$STATUS" = 503
check "... with Retry-After" grep -qi "^Retry-After: 30" "$WORK/hdr"
check "... and a line of reason, as text/plain (it was an empty body)" \
	sh -c "test \"\$(cat '$WORK/body')\" = 'too many connections open (max-http-connections): try again later' &&
	    grep -qi '^Content-Type: text/plain' '$WORK/hdr'"
# The admin listener has its own cap: operators still get in.
STATUS=$(curl -s -o "$WORK/metrics.txt" -w '%{http_code}' --max-time 20 --cacert "$CADIR/root.pem" \
	--cert "$WORK/dev-1.boot.pem" --key "$WORK/dev-1.boot.key" "https://localhost:$ADMIN_PORT/metrics")
check "with EST and HTTP full, the admin API still answers (/metrics: $STATUS)" test "$STATUS" = 200
grep '^hsmca_connections\|^hsmca_accept' "$WORK/metrics.txt" | sed 's/^/# /'
check "... hsmca_connections counts EST's open connections" \
	grep -q "^hsmca_connections{listener=\"est\"} $CAP\$" "$WORK/metrics.txt"
check "... and the refused ones" \
	grep -q "^hsmca_connections_refused_total{listener=\"est\"} $((CAP * 2 + 1))\$" "$WORK/metrics.txt"
check "... on HTTP too" \
	grep -q "^hsmca_connections_refused_total{listener=\"http\"} $((HCAP * 2 + 1))\$" "$WORK/metrics.txt"

grep "listener" "$CADIR/hsmcad.log" | sed 's/^/# log: /'
n=$(grep -c "EST listener: $CAP connections open (max-connections): refusing new ones" "$CADIR/hsmcad.log")
check "the log says EST is full once, not once per refusal ($n)" test "$n" -eq 1
n=$(grep -c "HTTP listener: $HCAP connections open (max-http-connections): refusing new ones" "$CADIR/hsmcad.log")
check "... HTTP too ($n)" test "$n" -eq 1

# A reload that raises the cap lets the next client in, the idle ones
# still open. The same edit changes max-body, which libevent took at the
# start: the reload says it keeps that one until a restart.
check "no reload so far has named a key it keeps" \
	sh -c "! grep -q 'kept as they run until a restart' '$CADIR/hsmcad.log'"
sed -i "s/^max-connections = $CAP\$/max-connections = $((CAP + 5))/; s/^max-body = 16k\$/max-body = 32k/" "$CONF"
hsmcad_reload
check "the reload names max-body, which it keeps until a restart, and only it" \
	grep -q 'SIGHUP: changed, and kept as they run until a restart: \[daemon\] max-body$' "$CADIR/hsmcad.log"
STATUS=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 --cacert "$CADIR/root.pem" "$URL/cacerts")
check "after a reload to max-connections = $((CAP + 5)), EST answers a new client ($STATUS)" \
	test "$STATUS" = 200
check "... with the $CAP idle ones still open" test "$(field est closed)" -eq $((CAP * 2))

# Room again: served at once.
kill $est_pid $http_pid $admin_pid 2>/dev/null
wait $est_pid $http_pid $admin_pid 2>/dev/null
i=0
until [ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CADIR/root.pem" "$URL/cacerts")" = 200 ] || [ $i -ge 200 ]; do
	i=$((i + 1)); sleep 0.05
done
check "once they close, EST answers again" test $i -lt 200
csr_b64 dev-1 ec:P-256 /CN=dev-1
est_post simpleenroll "$WORK/dev-1.b64" --cert "$WORK/dev-1.boot.pem" --key "$WORK/dev-1.boot.key"
check "... an enrollment too" test "$STATUS" = 200
p7_certs >"$WORK/dev-1.pem"
check "... whose certificate verifies" sh -c "openssl verify -CAfile '$CADIR/root.pem' -untrusted '$CADIR/server-chain.pem' '$WORK/dev-1.pem' | grep -q ': OK'"
STATUS=$(curl -s -o "$WORK/crl.der" -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/crl/2.crl")
check "... and HTTP serves a CRL ($STATUS)" sh -c "test '$STATUS' = 200 && openssl crl -inform DER -in '$WORK/crl.der' -noout"

# ---- no descriptor left: accept() fails, the listener pauses ----
# The front's limit lowered under it, two descriptors above what it
# holds: of 10 clients, 2 are accepted, the third accept fails with
# EMFILE. Each client closes once answered, which lets the next in.
i=0
while [ "$(front_fds)" -gt "$fds0" ] && [ $i -lt 200 ]; do i=$((i + 1)); sleep 0.05; done
lim=$(($(front_fds) + 2))
run prlimit --pid "$FRONT" --nofile=$lim:$hard
check "the front's descriptor limit is lowered to $lim" test "$RC" -eq 0
hold get "$HTTP_PORT" 10 emfile
emfile_pid=$HOLD_PID
wait_for emfile answered 10
sed "s/^/# EMFILE: /" "$WORK/emfile.status"
check "all 10 are answered all the same, a few at a time" \
	test "$(field emfile answered)" -eq 10
kill $emfile_pid 2>/dev/null
wait $emfile_pid 2>/dev/null
run prlimit --pid "$FRONT" --nofile=$hard:$hard
grep -i "too many open files\|accept" "$CADIR/hsmcad.log" | sed 's/^/# log: /' | head -5
n=$(grep -ci "too many open files" "$CADIR/hsmcad.log")
check "accept failed with EMFILE and the log says so once, not once per failure ($n)" \
	test "$n" -eq 1
check "... naming the listener and its pause" \
	grep -q "HTTP listener: accept: Too many open files (.*descriptor limit [0-9]*): pausing it" "$CADIR/hsmcad.log"
STATUS=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CADIR/root.pem" "$URL/cacerts")
check "with the limit back, EST answers ($STATUS)" test "$STATUS" = 200
STATUS=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/crl/99.crl")
check "... and HTTP (404 for an unknown CRL: $STATUS)" test "$STATUS" = 404
check "hsmcad is still running" kill -0 "$HSMCAD_PID"

kill "$HSMCAD_PID"
wait "$HSMCAD_PID"
rc=$?
HSMCAD_PID=
check "hsmcad drains and exits cleanly (status $rc)" test "$rc" -eq 0
check "... with no sanitizer report in its log" \
	sh -c "! grep -q 'Sanitizer\|runtime error' '$CADIR/hsmcad.log'"

done_testing
