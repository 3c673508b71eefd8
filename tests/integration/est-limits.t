#!/bin/sh
# hsmcad's limits and deployment knobs: 503 with Retry-After when nothing
# can sign, header count and size, the connection cap, a TLS key that lives
# in the token, and dropping root to a configured user.
. "$top_srcdir/tests/integration/lib.sh"
command -v curl >/dev/null 2>&1 || skip_all "curl not installed"

# ---- 503 with Retry-After: hsmcad up before any CA generation exists ----
new_ca nogen
hsmca ca init --self-signed >/dev/null	# then take the generation away
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$CADIR/server.key" \
	-subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -out "$CADIR/server.csr" 2>/dev/null
hsmca issue --csr "$CADIR/server.csr" --profile server --chain >"$CADIR/server-chain.pem"
hsmca ca download 1 >"$CADIR/root.pem"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$CADIR/factory.key" \
	-subj "/CN=Factory" -days 10 -addext basicConstraints=critical,CA:TRUE \
	-addext keyUsage=critical,keyCertSign -out "$CADIR/factory.pem" 2>/dev/null
bootstrap_cert dev-1
# Retired, not waiting: the rotation tick would activate a waiting one.
sqlite3 "$CADIR/hsmca.db" "UPDATE ca_generation SET status = 'inactive', activate_at = NULL"
cat >>"$CONF" <<EOC
[daemon]
listen = 127.0.0.1:0
tls-cert = $CADIR/server-chain.pem
tls-key = $CADIR/server.key
retry-after = 42
max-headers = 20
max-header-size = 2k
max-connections = 3
timeout = 10s
[est]
profile = device
bootstrap-ca = $CADIR/factory.pem
EOC
hsmcad_start
csr_b64 dev ec:P-256 "/CN=dev-1"
rows=$(count_rows)
STATUS=$(curl -s -D "$WORK/hdr" -o "$WORK/last.out" -w '%{http_code}' --cacert "$CADIR/root.pem" \
	--cert "$WORK/dev-1.boot.pem" --key "$WORK/dev-1.boot.key" \
	-H "Content-Type: application/pkcs10" --data-binary "@$WORK/dev.b64" "$URL/simpleenroll")
check "with no active CA generation, enrollment answers 503" test "$STATUS" = 503
check "with Retry-After from the config" grep -qi "^Retry-After: 42" "$WORK/hdr"
check "and a reason" grep -q "no active CA generation" "$WORK/last.out"
check "and nothing recorded" test "$(count_rows)" -eq "$rows"
check "hsmcad warned at start that it had nothing to issue with" \
	grep -q "no CA generation to issue with" "$CADIR/hsmcad.log"

# ---- header count and size ----
hdrs=""
i=0; while [ $i -lt 30 ]; do hdrs="$hdrs -H X-Pad-$i:x"; i=$((i + 1)); done
# shellcheck disable=SC2086
STATUS=$(curl -s -o "$WORK/last.out" -w '%{http_code}' --cacert "$CADIR/root.pem" $hdrs "$URL/cacerts")
check "more header lines than max-headers: 431" test "$STATUS" = 431
big=$(head -c 4000 /dev/zero | tr '\0' 'a')
STATUS=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CADIR/root.pem" -H "X-Big: $big" "$URL/cacerts")
check "headers over max-header-size are refused (status $STATUS)" \
	sh -c "test '$STATUS' = 431 || test '$STATUS' = 413 || test '$STATUS' = 400 || test '$STATUS' = 000"
STATUS=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CADIR/root.pem" "$URL/cacerts")
check "the daemon still answers after the oversized request" test "$STATUS" = 200

# ---- the connection cap ----
rm -f "$WORK/fifo"; mkfifo "$WORK/fifo"
sleep 30 >"$WORK/fifo" &
holder=$!
pids=""
for n in 1 2 3; do
	openssl s_client -quiet -connect 127.0.0.1:$PORT -CAfile "$CADIR/root.pem" <"$WORK/fifo" >/dev/null 2>&1 &
	pids="$pids $!"
done
i=0; until [ "$(ss -Htn state established "( sport = :$PORT )" | wc -l)" -ge 3 ] || [ $i -ge 100 ]; do i=$((i + 1)); sleep 0.05; done
STATUS=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CADIR/root.pem" "$URL/cacerts")
check "with max-connections (3) open, one more is refused (status $STATUS)" test "$STATUS" = 000
kill $pids "$holder" 2>/dev/null
i=0; while [ "$(ss -Htn state established "( sport = :$PORT )" | wc -l)" -gt 0 ] && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.05; done
STATUS=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CADIR/root.pem" "$URL/cacerts")
check "once they close, connections are accepted again" test "$STATUS" = 200
hsmcad_stop

# ---- a TLS key inside the token, and dropping root ----
est_setup tk
# A key pair generated in the token (test token: PIN on pkcs11-tool's
# command line only here), and hsmcad's certificate for it, its CSR signed
# in the token through the libp11 engine.
run pkcs11-tool --module "$SOFTHSM_MODULE" --token-label tk --login --pin "$(cat "$CADIR/user.pin")" \
	--keypairgen --key-type EC:prime256v1 --label tls-server --id 7a7a
check "a TLS key pair is generated in the token" test "$RC" -eq 0
engine_conf
run env OPENSSL_CONF="$CADIR/engine.cnf" openssl req -new -engine pkcs11 -keyform engine \
	-key "pkcs11:token=tk;id=%7a%7a;type=private" -subj /CN=localhost \
	-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -out "$CADIR/tk.csr"
check "its CSR is signed in the token" test -s "$CADIR/tk.csr"
hsmca issue --csr "$CADIR/tk.csr" --profile server --chain >"$CADIR/tk-chain.pem"
sed -i "s|^tls-cert = .*|tls-cert = $CADIR/tk-chain.pem|; s|^tls-key = .*|tls-key = pkcs11:token=tk;id=%7A%7A|; s|^pidfile = .*|pidfile = none|" "$CONF"
# The unprivileged user must reach the store and the token.
sed -i "s|^\[daemon\]|[daemon]\nuser = nobody|" "$CONF"
# Through the fault shim, to take the token away and give it back.
fault_conf
fault "fault=none"
chown -R nobody "$CADIR"
chmod o+x "$WORK"	# mktemp made it root-only
hsmcad_start
# handshake: a TLS handshake with hsmcad completes and cacerts answers.
# (curl: s_client prints the certificate's verification even when the
# handshake then fails on the server's signature.)
handshake() {
	[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
		--cacert "$CADIR/root.pem" "$URL/cacerts")" = 200 ]
}
check "hsmcad serves TLS with the key in the token" handshake
uid=$(awk '/^Uid:/ { print $2, $3, $4 }' /proc/$HSMCAD_PID/status)
check "hsmcad dropped root: real, effective and saved uid are nobody's ($uid)" \
	test "$uid" = "$(id -u nobody) $(id -u nobody) $(id -u nobody)"
check "and logged it" grep -q "running as nobody" "$CADIR/hsmcad.log"
check "no new privileges can be gained" grep -q "^NoNewPrivs:[[:space:]]*1" /proc/$HSMCAD_PID/status
csr_b64 d2 ec:P-256 "/CN=dev-1"
est_post simpleenroll "$WORK/d2.b64" --cert "$WORK/dev-1.boot.pem" --key "$WORK/dev-1.boot.key"
check "enrollment works after the drop (the signer still holds the token)" test "$STATUS" = 200

# The token goes away and comes back: the TLS key's handle went with the
# old login, and the signer finds the key again for the next handshake.
fault "fault=removed"
if handshake; then shook=yes; else shook=no; fi
check "with the token removed, no TLS handshake completes (completed: $shook)" test "$shook" = no
fault "fault=none"
i=0; until handshake || [ $i -ge 100 ]; do i=$((i + 1)); sleep 0.1; done
check "once it is back, TLS handshakes complete again with the key in the token, without a restart" test $i -lt 100
check "after the signer logged in again" grep -q "the HSM is back" "$CADIR/hsmcad.log"
est_post simpleenroll "$WORK/d2.b64" --cert "$WORK/dev-1.boot.pem" --key "$WORK/dev-1.boot.key"
check "and enrollment works" test "$STATUS" = 200
hsmcad_stop

done_testing
