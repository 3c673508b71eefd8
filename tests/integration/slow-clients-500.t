#!/bin/sh
# slow-clients-500.t: 500 mutual-TLS connections each dribbling its
# request headers a byte every 1 to 2 seconds (bench/slowloris, which
# opens a connection again as soon as the server drops it, so 500 are
# open all along) do not stop 20 legitimate enrollments, and every
# connection they opened is dropped by the server, none by the client.
# No timing assertions: their latencies are bench/slow-clients.sh's.
#
# max-connections stays at its default, 1024, which admits the 500 and
# the enrollments: the connection limit is not the defence here (a
# slow client uses a slot only until the request deadline), and
# refusing over the limit is est-limits.t's.
. "$top_srcdir/tests/integration/lib.sh"

command -v curl >/dev/null 2>&1 || skip_all "curl not installed"
SLOW="$top_builddir/bench/slowloris"
[ -x "$SLOW" ] || bail "$SLOW not built (make check builds it)"
N=500
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((N + 100)) ] ||
	skip_all "ulimit -n is $(ulimit -n): too few descriptors for $N connections"

T=3
est_setup slow500
sed -i "s/^timeout = .*/timeout = ${T}s/" "$CONF"
grep -q "^timeout = ${T}s" "$CONF" || bail "could not set the timeout"
hsmcad_start

# The enrollments' CSRs first, so the machine is busy with the test only.
i=1
while [ $i -le 20 ]; do
	csr_b64 "e$i" ec:P-256 /CN=dev-1
	i=$((i + 1))
done

# rss: the resident set and its peak, in KiB, of hsmcad and its children
# (the front and the signer), summed.
rss() {
	for p in "$HSMCAD_PID" $(ps -o pid= --ppid "$HSMCAD_PID" 2>/dev/null); do
		cat "/proc/$p/status" 2>/dev/null
	done | awk '/^VmRSS:/ { r += $2 } /^VmHWM:/ { h += $2 }
		END { printf "%d %d\n", r, h }'
}
set -- $(rss)
rss0=$1

# 20 s of attack, then 15 s (5 timeouts) for the server to drop the rest.
"$SLOW" -m tls -n $N -i 1 -j 1 -r -d 20 -g 15 \
	-c "$WORK/dev-1.boot.pem" -k "$WORK/dev-1.boot.key" \
	127.0.0.1 "$PORT" >"$WORK/slow.out" 2>"$WORK/slow.err" &
spid=$!
i=0
until grep -q 'open$' "$WORK/slow.err" 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 1200 ] && kill -0 $spid 2>/dev/null || break
	sleep 0.05
done
sed 's/^/# /' "$WORK/slow.err"
check "$N slow connections are open" grep -q "slowloris: $N open" "$WORK/slow.err"

# 20 enrollments while they dribble, 4 at a time.
i=1
while [ $i -le 20 ]; do
	pids=
	for j in 0 1 2 3; do
		k=$((i + j))
		curl -s -o "$WORK/e$k.p7" -w '%{http_code}\n' --cacert "$CADIR/root.pem" \
			--cert "$WORK/dev-1.boot.pem" --key "$WORK/dev-1.boot.key" \
			-H "Content-Type: application/pkcs10" --data-binary "@$WORK/e$k.b64" \
			"$URL/simpleenroll" >"$WORK/e$k.status" &
		pids="$pids $!"
	done
	wait $pids
	i=$((i + 4))
done
set -- $(rss)
rss1=$1
check "... still dribbling when the enrollments are done" kill -0 $spid
ok200=0
verified=0
i=1
while [ $i -le 20 ]; do
	if [ "$(cat "$WORK/e$i.status")" = 200 ]; then
		ok200=$((ok200 + 1))
		cp "$WORK/e$i.p7" "$WORK/last.out"
		if p7_certs >"$WORK/e$i.pem" && openssl verify -CAfile "$CADIR/root.pem" \
			-untrusted "$CADIR/server-chain.pem" "$WORK/e$i.pem" 2>/dev/null |
			grep -q ': OK'; then
			verified=$((verified + 1))
		fi
	fi
	i=$((i + 1))
done
check "20 enrollments during the attack: all answered 200 ($ok200)" test "$ok200" -eq 20
check "... and all 20 certificates verify ($verified)" test "$verified" -eq 20

wait $spid
sed 's/^/# /' "$WORK/slow.out"
set -- $(rss)
rss2=$1
hwm=$2
opened=$(sed -n 's/.* opened=\([0-9]*\).*/\1/p' "$WORK/slow.out")
closed=$(sed -n 's/.* closed=\([0-9]*\).*/\1/p' "$WORK/slow.out")
check "the slow clients opened at least $N connections (${opened:-?})" \
	test "${opened:-0}" -ge $N
check "... none was refused" grep -q ' refused=0 ' "$WORK/slow.out"
check "... the server closed every one of them (${closed:-?})" \
	test -n "$closed" -a "$closed" = "$opened"
check "... none was still open 5 timeouts after the attack" grep -q ' open=0' "$WORK/slow.out"
echo "# hsmcad RSS (KiB, parent + front + signer): before $rss0, during $rss1, after $rss2, peak $hwm"

STATUS=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CADIR/root.pem" "$URL/cacerts")
check "hsmcad still serves after the attack" test "$STATUS" = 200
check "hsmcad is still running" kill -0 "$HSMCAD_PID"

done_testing
