#!/bin/sh
# est-passes.t: enrollments that wait for the signer together are issued
# in one pass (one commit for their serials, one for their records). A
# refusal in such a pass refuses only its own request and records
# nothing; every other request gets its own certificate, verified by
# openssl and certtool, with a serial of its own.
#
# The signer process is stopped (SIGSTOP) while one curl sends 20
# enrollments on 20 connections, so they are all queued when it resumes.
. "$top_srcdir/tests/integration/lib.sh"

command -v curl >/dev/null 2>&1 || skip_all "curl not installed"
command -v sqlite3 >/dev/null 2>&1 || skip_all "sqlite3 not installed"
command -v certtool >/dev/null 2>&1 || skip_all "certtool (gnutls-bin) not installed"
curl --help all 2>/dev/null | grep -q -- '--parallel-max' || skip_all "curl has no --parallel"

est_setup passes
hsmca ca download 2 >"$CADIR/ica.pem" || bail "ca download"
cat "$CADIR/ica.pem" "$CADIR/root.pem" >"$CADIR/chain.pem"
# One worker, so every queued enrollment waits for the same thread; a
# label without the CN rule, so one factory certificate enrolls them all.
sed -i 's/^workers = .*/workers = 1/' "$CONF"
bootstrap_cert audrey
# The admin API alone: a plain HTTP listener would start OCSP
# pre-signing on the one worker.
admin_listener auditors audrey
cat >>"$CONF" <<EOC

[est line]
profile = device
bootstrap-ca = $CADIR/factory.pem
cn-match = false
EOC
hsmcad_start
[ -n "$ADMIN_PORT" ] || bail "no admin listener in the log"
SIGNER=
for p in $(pgrep -P "$HSMCAD_PID"); do
	[ "$(cat "/proc/$p/comm" 2>/dev/null)" = hsmcad-signer ] && SIGNER=$p
done
[ -n "$SIGNER" ] || bail "no hsmcad-signer process"

metric() {
	curl -s --cacert "$CADIR/root.pem" --cert "$WORK/audrey.boot.pem" \
		--key "$WORK/audrey.boot.key" "https://localhost:$ADMIN_PORT/metrics" |
		sed -n "s/^$1 //p"
}

# 16 good CSRs, and four each refused for a reason of its own: a broken
# CSR signature, an RSA-1024 key, a CN that is not the client's (on the
# label with the CN rule), and a body that is no CSR.
GOOD=16
i=1
while [ $i -le $GOOD ]; do
	csr_b64 "line-$i" ec:P-256 "/CN=line-$i"
	i=$((i + 1))
done
make_csr badsig ec:P-256 /CN=line-badsig 2>/dev/null
openssl req -in "$WORK/badsig.csr" -outform DER -out "$WORK/badsig.der"
# The last byte is inside the signature's INTEGER s.
size=$(wc -c <"$WORK/badsig.der")
last=$(od -An -tu1 -j $((size - 1)) "$WORK/badsig.der" | tr -d ' ')
{ head -c $((size - 1)) "$WORK/badsig.der"; printf "$(printf '\\%03o' $(((last + 1) % 256)))"; } |
	base64 >"$WORK/badsig.b64"
csr_b64 weak rsa:1024 /CN=line-weak
csr_b64 other ec:P-256 /CN=someone-else
printf 'not a certificate request' | base64 >"$WORK/junk.b64"

# A curl config: one transfer per request, each on its own connection.
transfer() {
	[ "$2" = line-1 ] || echo next
	cat <<EOT
url = "$URL/$1"
data-binary = "@$WORK/$2.b64"
header = "Content-Type: application/pkcs10"
cacert = "$CADIR/root.pem"
cert = "$WORK/dev-1.boot.pem"
key = "$WORK/dev-1.boot.key"
output = "$WORK/$2.out"
write-out = "$2 %{http_code}\\n"
EOT
}
{
	i=1
	while [ $i -le $GOOD ]; do
		transfer line/simpleenroll "line-$i"
		i=$((i + 1))
	done
	transfer line/simpleenroll badsig
	transfer line/simpleenroll weak
	transfer simpleenroll other
	transfer line/simpleenroll junk
} >"$WORK/curl.cfg"

rows=$(count_rows)
passes0=$(metric hsmca_signing_passes_total)
count0=$(metric hsmca_signing_seconds_count)
check "metrics before: $count0 issuances in $passes0 passes" test -n "$passes0" -a -n "$count0"

kill -STOP "$SIGNER"
curl -s -Z --parallel-max 20 -K "$WORK/curl.cfg" >"$WORK/statuses" 2>"$WORK/curl.err" &
CURL=$!
# Until every connection is up, 0.8 s at most: the front answers 503 when
# the signer is 1.5 s late.
t0=$(date +%s%N)
while [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 800 ]; do
	n=$(ss -Htn state established "( sport = :$PORT )" 2>/dev/null | wc -l)
	[ "$n" -ge 20 ] && break
	sleep 0.02
done
sleep 0.2
kill -CONT "$SIGNER"
wait "$CURL"
check "curl made 20 transfers" test "$(wc -l <"$WORK/statuses")" -eq 20

status_of() {
	sed -n "s/^$1 //p" "$WORK/statuses"
}
i=1
good=0
while [ $i -le $GOOD ]; do
	if [ "$(status_of "line-$i")" = 200 ]; then
		cp "$WORK/line-$i.out" "$WORK/last.out"
		p7_certs >"$WORK/line-$i.pem"
		if openssl verify -CAfile "$CADIR/root.pem" -untrusted "$CADIR/ica.pem" \
			"$WORK/line-$i.pem" >/dev/null 2>&1 &&
			[ "$(openssl x509 -in "$WORK/line-$i.pem" -noout -subject)" = "subject=CN = line-$i" ] &&
			[ "$(openssl x509 -in "$WORK/line-$i.pem" -noout -pubkey)" = \
			  "$(openssl pkey -in "$WORK/line-$i.key" -pubout)" ]; then
			good=$((good + 1))
			i=$((i + 1))
			continue
		fi
	fi
	echo "# line-$i: $(status_of "line-$i") $(head -c 200 "$WORK/line-$i.out")"
	i=$((i + 1))
done
check "all $GOOD good enrollments: 200, their own CN and key, verified by openssl ($good)" \
	test "$good" -eq "$GOOD"
check "certtool verifies one of them against the chain" \
	sh -c "certtool --verify --load-ca-certificate '$CADIR/root.pem' \
		--infile '$WORK/line-7.pem' </dev/null >/dev/null 2>&1 ||
		{ cat '$WORK/line-7.pem' '$CADIR/ica.pem' >'$WORK/line-7.full.pem' &&
		certtool --verify --load-ca-certificate '$CADIR/root.pem' \
		--infile '$WORK/line-7.full.pem' >/dev/null 2>&1; }"
check "a broken CSR signature: 400 ($(status_of badsig): $(head -c 80 "$WORK/badsig.out"))" \
	sh -c "test '$(status_of badsig)' = 400 && grep -qi 'signature' '$WORK/badsig.out'"
check "an RSA-1024 key: 400 ($(status_of weak): $(head -c 80 "$WORK/weak.out"))" \
	sh -c "test '$(status_of weak)' = 400 && grep -q '1024' '$WORK/weak.out'"
check "a CN that is not the client's: 403 ($(status_of other): $(head -c 80 "$WORK/other.out"))" \
	sh -c "test '$(status_of other)' = 403 && grep -q 'does not match' '$WORK/other.out'"
check "a body that is no CSR: 400 ($(status_of junk))" test "$(status_of junk)" = 400
check "each refusal is one line" \
	sh -c "for f in badsig weak other junk; do test \$(wc -l <'$WORK/'\$f.out) -le 1 || exit 1; done"
check "exactly $GOOD certificates recorded, nothing for the refusals" \
	test "$(count_rows)" -eq $((rows + GOOD))
check "no serial twice" test "$(sqlite3 "$CADIR/hsmca.db" \
	'SELECT count(*) - count(DISTINCT serial) FROM cert')" -eq 0
check "every certificate served is the one recorded" sh -c '
	i=1
	while [ $i -le '"$GOOD"' ]; do
		fp=$(openssl x509 -in "'"$WORK"'/line-$i.pem" -outform DER | sha256sum | cut -d" " -f1)
		test "$(sqlite3 "'"$CADIR"'/hsmca.db" "SELECT count(*) FROM cert WHERE sha256 = '"'"'$fp'"'"' AND status = '"'"'valid'"'"'")" = 1 || exit 1
		i=$((i + 1))
	done'

passes=$(( $(metric hsmca_signing_passes_total) - passes0 ))
count=$(( $(metric hsmca_signing_seconds_count) - count0 ))
check "the metrics count $GOOD issuances ($count)" test "$count" -eq "$GOOD"
check "issued in fewer passes than certificates ($passes passes)" test "$passes" -lt "$count"
expect_ok "the audit chain verifies" hsmca audit verify

done_testing
