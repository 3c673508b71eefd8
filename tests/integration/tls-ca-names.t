#!/bin/sh
# tls-ca-names.t: the TLS CertificateRequest names the CAs a client
# certificate may chain to, so that a client choosing one from a store by
# CA name (Java, schannel, browsers, OpenSSL's client_cert_cb) finds it.
# On the EST listener: every label's bootstrap-ca subjects and hsmca's
# generations (the issuing CA and its root), each once, in TLS 1.2 and
# 1.3; they follow a SIGHUP that adds a bootstrap CA and a generation
# change hsmcad notices on its own. On the admin listener: the operator
# CA ([admin] client-ca) only. openssl s_client prints what it was sent.
. "$top_srcdir/tests/integration/lib.sh"
command -v curl >/dev/null 2>&1 || skip_all "curl not installed"

est_setup names
# A label of its own with no bootstrap-ca (hsmca's devices only): a
# bootstrap CA is added to it later.
cat >>"$CONF" <<EOC

[est plain]
profile = device
EOC
# Operators come from a CA of their own, which EST does not trust.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$CADIR/operator.key" -subj "/CN=Operator CA names/O=hsmca ops" \
	-days 100 -addext basicConstraints=critical,CA:TRUE \
	-addext keyUsage=critical,keyCertSign -out "$CADIR/operator.pem" 2>/dev/null
cat >>"$CONF" <<EOC

[admin]
listen = 127.0.0.1:0
client-ca = $CADIR/operator.pem
auditors = CN=op-1
EOC
hsmcad_start
[ -n "$ADMIN_PORT" ] || bail "no admin listener in the log"

# ca_names PORT VERSION: the names s_client says the server sent, one a
# line, sorted; "none" if it says none were sent.
ca_names() {
	openssl s_client -connect "127.0.0.1:$1" "-$2" -CAfile "$CADIR/root.pem" \
		</dev/null >"$WORK/s.out" 2>"$WORK/s.err"
	if grep -q "^No client certificate CA names sent" "$WORK/s.out"; then
		echo none
		return
	fi
	awk '/^Acceptable client certificate CA names$/ { on = 1; next }
	     on && /^[A-Za-z]+ = / { print; next }
	     on { exit }' "$WORK/s.out" | LC_ALL=C sort
}

# names_are DESC PORT VERSION NAME...: exactly these names were sent.
names_are() {
	desc=$1; port=$2; ver=$3; shift 3
	ca_names "$port" "$ver" >"$WORK/names.got"
	printf '%s\n' "$@" | LC_ALL=C sort >"$WORK/names.want"
	if cmp -s "$WORK/names.got" "$WORK/names.want"; then
		ok "$desc ($ver)"
	else
		not_ok "$desc ($ver)"
		sed 's/^/#   sent: /' "$WORK/names.got"
		sed 's/^/#   wanted: /' "$WORK/names.want"
	fi
}

FACTORY="CN = Factory CA names"
ISSUING="CN = hsmca Test Device CA names, O = hsmca tests"
ROOT="CN = hsmca Test Root CA names, O = hsmca tests"
OPERATOR="CN = Operator CA names, O = hsmca ops"

for v in tls1_2 tls1_3; do
	names_are "EST names the factory CA (two labels share it: once), the issuing CA and its root" \
		"$PORT" "$v" "$FACTORY" "$ISSUING" "$ROOT"
	names_are "the admin API names the operator CA only" \
		"$ADMIN_PORT" "$v" "$OPERATOR"
done
check "the names come with a CertificateRequest that lets the handshake go on without a certificate" \
	grep -q "^Verify return code: 0 (ok)" "$WORK/s.out"

# A client that picks its certificate by those names is served.
bootstrap_cert dev-2
csr_b64 dev2 ec:P-256 "/CN=dev-2"
est_post simpleenroll "$WORK/dev2.b64" --cert "$WORK/dev-2.boot.pem" --key "$WORK/dev-2.boot.key"
check "a factory certificate still enrolls: 200" test "$STATUS" = 200

# SIGHUP: label plain gets a bootstrap CA of its own.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$CADIR/line2.key" -subj "/CN=Line 2 Factory CA/O=plant, Inc." \
	-days 100 -addext basicConstraints=critical,CA:TRUE \
	-addext keyUsage=critical,keyCertSign -out "$CADIR/line2.pem" 2>/dev/null
sed -i "s|^\[est plain\]|[est plain]\nbootstrap-ca = $CADIR/line2.pem|" "$CONF"
hsmcad_reload
check "hsmcad reloaded" grep -q "reloaded: .* 3 EST labels" "$CADIR/hsmcad.log"
LINE2="CN = Line 2 Factory CA, O = \"plant, Inc.\""
for v in tls1_2 tls1_3; do
	names_are "after SIGHUP EST names the new bootstrap CA too" \
		"$PORT" "$v" "$FACTORY" "$ISSUING" "$ROOT" "$LINE2"
	names_are "... and the admin API still only the operator CA" \
		"$ADMIN_PORT" "$v" "$OPERATOR"
done
bootstrap_cert dev-3 "$CADIR/line2"
csr_b64 dev3 ec:P-256 "/CN=dev-3"
est_post plain/simpleenroll "$WORK/dev3.b64" --cert "$WORK/dev-3.boot.pem" --key "$WORK/dev-3.boot.key"
check "a certificate from the new bootstrap CA enrolls on label plain: 200" test "$STATUS" = 200

# A generation change, with no SIGHUP: a rotation under a new subject
# (the next generation's is [ca] subject's as the CLI reads it). hsmcad
# notices within two seconds and says so in its log. changed SEEN: it
# logged a change after the first SEEN.
changed() {
	i=0
	while [ "$(grep -c "CA generations changed" "$CADIR/hsmcad.log")" -le "$1" ] && [ $i -lt 200 ]; do
		i=$((i + 1)); sleep 0.05
	done
	[ "$(grep -c "CA generations changed" "$CADIR/hsmcad.log")" -gt "$1" ]
}
seen=$(grep -c "CA generations changed" "$CADIR/hsmcad.log")
sed -i "s|^subject = CN=hsmca Test Device CA names,O=hsmca tests|subject = CN=hsmca Device CA names 2,O=hsmca tests|" "$CONF"
expect_ok "ca rotate makes generation 3 under a new subject" hsmca ca rotate
check "hsmcad notices the new generation" changed "$seen"
NEXT="CN = hsmca Device CA names 2, O = hsmca tests"
for v in tls1_2 tls1_3; do
	names_are "EST names the inactive generation 3 too, as soon as hsmcad trusts it" \
		"$PORT" "$v" "$FACTORY" "$ISSUING" "$ROOT" "$LINE2" "$NEXT"
done
seen=$(grep -c "CA generations changed" "$CADIR/hsmcad.log")
expect_ok "ca revoke generation 3" hsmca ca revoke --reason superseded 3
check "hsmcad notices the revocation" changed "$seen"
for v in tls1_2 tls1_3; do
	names_are "a revoked generation is named no more" \
		"$PORT" "$v" "$FACTORY" "$ISSUING" "$ROOT" "$LINE2"
done

done_testing
