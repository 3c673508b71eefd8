#!/bin/sh
# slow-client.t: a client that dribbles its request a byte at a time
# (slowloris) never trips an idle timeout, so hsmcad also gives every
# request a deadline: it must arrive whole within `timeout` of its first
# byte (a TLS connection: handshake and first request within `timeout` of
# the accept). Dribblers on the EST, admin and plain HTTP ports, and one
# dribbling its TLS ClientHello, are dropped; a keep-alive client idle
# between requests (less than `timeout` each time) is not; legitimate
# enrollments go on meanwhile. Times are asserted loosely only: still open
# at half the timeout, closed before four times it.
. "$top_srcdir/tests/integration/lib.sh"

command -v curl >/dev/null 2>&1 || skip_all "curl not installed"
command -v timeout >/dev/null 2>&1 || skip_all "timeout (coreutils) not installed"
SLOW="$top_builddir/bench/slowloris"
[ -x "$SLOW" ] || bail "$SLOW not built (make check builds it)"

T=2
est_setup slow
sed -i "s/^timeout = .*/timeout = ${T}s/" "$CONF"
grep -q "^timeout = ${T}s" "$CONF" || bail "could not set the timeout"
all_listeners operators
hsmcad_start
[ -n "$HTTP_PORT" ] && [ -n "$ADMIN_PORT" ] || bail "no HTTP or admin listener in the log"

# dropped_in_time OUTFILE: slowloris's one connection was closed by the
# server, not before T/2 and before 4T seconds (slowloris gives up at 4T).
dropped_in_time() {
	grep -q ' closed=1 open=0' "$1" &&
	awk -v t="$T" '{ for (i = 1; i <= NF; i++) if ($i ~ /^min=/) {
		sub("min=", "", $i); exit !($i >= t / 2 && $i < 4 * t) } }
		END { if (NR == 0) exit 1 }' "$1"
}

# One dribbler on each listener, at once: headers a byte every half
# second over mutual TLS (EST, admin), over plain HTTP (CRL/OCSP), and a
# TLS ClientHello a byte every half second (the handshake never ends).
D=$((4 * T))
"$SLOW" -m tls -i 0.5 -d $D -c "$WORK/dev-1.boot.pem" -k "$WORK/dev-1.boot.key" \
	127.0.0.1 "$PORT" >"$WORK/est.out" 2>&1 &
p1=$!
"$SLOW" -m tls -i 0.5 -d $D -c "$WORK/dev-1.boot.pem" -k "$WORK/dev-1.boot.key" \
	127.0.0.1 "$ADMIN_PORT" >"$WORK/admin.out" 2>&1 &
p2=$!
"$SLOW" -m http -i 0.5 -d $D 127.0.0.1 "$HTTP_PORT" >"$WORK/http.out" 2>&1 &
p3=$!
"$SLOW" -m handshake -i 0.5 -d $D 127.0.0.1 "$PORT" >"$WORK/hs.out" 2>&1 &
p4=$!
wait $p1 $p2 $p3 $p4
for f in est admin http hs; do
	sed "s/^/# $f: /" "$WORK/$f.out"
done
check "EST port: a client dribbling its headers is dropped within ${T}s..$((4 * T))s" \
	dropped_in_time "$WORK/est.out"
check "admin port: the same" dropped_in_time "$WORK/admin.out"
check "plain HTTP port: the same" dropped_in_time "$WORK/http.out"
check "a client dribbling its TLS ClientHello is dropped the same" \
	dropped_in_time "$WORK/hs.out"

# An independent client: openssl s_client fed a byte every half second
# through a FIFO. The feeder stops when s_client is gone (the server
# closed) and after 40 bytes at most; s_client itself is bounded too.
printf 'POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/pkcs10\r\nContent-Length: 999\r\nX-Slow: 1\r\n' >"$WORK/req.bin"
mkfifo "$WORK/feed"
t0=$(date +%s)
timeout 60 openssl s_client -quiet -connect "127.0.0.1:$PORT" -servername localhost \
	-CAfile "$CADIR/root.pem" -cert "$WORK/dev-1.boot.pem" \
	-key "$WORK/dev-1.boot.key" <"$WORK/feed" >/dev/null 2>&1 &
spid=$!
(
	i=0
	while [ $i -lt 40 ] && kill -0 $spid 2>/dev/null; do
		dd if="$WORK/req.bin" bs=1 skip=$i count=1 2>/dev/null || break
		sleep 0.5
		i=$((i + 1))
	done
) >"$WORK/feed"
wait $spid
held=$(($(date +%s) - t0))
check "openssl s_client dribbling a request is dropped too (held ${held}s, timeout ${T}s)" \
	test "$held" -lt $((4 * T))

# Keep-alive, idle between requests for less than the timeout each time,
# an enrollment in the middle: three answers on one connection that lives
# longer than the timeout.
csr_b64 dev-1 ec:P-256 /CN=dev-1
len=$(wc -c <"$WORK/dev-1.b64")
rows0=$(count_rows)
(
	printf 'GET /.well-known/est/cacerts HTTP/1.1\r\nHost: localhost\r\n\r\n'
	sleep 1.5
	printf 'POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/pkcs10\r\nContent-Length: %d\r\n\r\n' "$len"
	cat "$WORK/dev-1.b64"
	sleep 1.5
	printf 'GET /.well-known/est/cacerts HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'
) | timeout 60 openssl s_client -quiet -connect "127.0.0.1:$PORT" -servername localhost \
	-CAfile "$CADIR/root.pem" -cert "$WORK/dev-1.boot.pem" \
	-key "$WORK/dev-1.boot.key" >"$WORK/keepalive.out" 2>"$WORK/keepalive.err"
n200=$(grep -c '^HTTP/1.1 200' "$WORK/keepalive.out")
check "a keep-alive client idle 1.5s between requests gets all three answers ($n200)" \
	test "$n200" -eq 3
check "... the enrollment among them recorded one certificate" \
	test "$(count_rows)" -eq $((rows0 + 1))

# Ten dribblers at once while a device enrolls with curl.
"$SLOW" -m tls -n 10 -i 0.5 -d $D -c "$WORK/dev-1.boot.pem" -k "$WORK/dev-1.boot.key" \
	127.0.0.1 "$PORT" >"$WORK/ten.out" 2>"$WORK/ten.err" &
p1=$!
i=0
until grep -q 'open' "$WORK/ten.err" 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 200 ] || break
	sleep 0.05
done
csr_b64 dev-1 ec:P-256 /CN=dev-1
est_post simpleenroll "$WORK/dev-1.b64" --cert "$WORK/dev-1.boot.pem" --key "$WORK/dev-1.boot.key"
check "an enrollment succeeds while ten dribble" test "$STATUS" = 200
p7_certs >"$WORK/dev-1.pem"
check "... and its certificate verifies" sh -c "openssl verify -CAfile '$CADIR/root.pem' -untrusted '$CADIR/server-chain.pem' '$WORK/dev-1.pem' | grep -q ': OK'"
wait $p1
sed 's/^/# ten: /' "$WORK/ten.out"
check "all ten are dropped by the server" grep -q 'opened=10 refused=0 closed=10 open=0' "$WORK/ten.out"

STATUS=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CADIR/root.pem" "$URL/cacerts")
check "a normal request on a fresh connection is still served" test "$STATUS" = 200
STATUS=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/crl/99.crl")
check "... and on the plain HTTP port (404 for an unknown CRL)" test "$STATUS" = 404
check "hsmcad is still running" kill -0 "$HSMCAD_PID"

done_testing
