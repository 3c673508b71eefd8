#!/bin/sh
# Revocation of the whole chain. A generation that the root in the token
# certifies names the root's CRL as its CRL distribution point (crl-url,
# %g the root's generation id), so a relying party finds it: openssl
# verify -crl_check_all of a device certificate passes with the CRLs
# fetched from hsmcad at the very URLs the certificates carry, and fails
# once `hsmca ca revoke` revoked the generation and hsmcad rebuilt the
# root's CRL. It names no OCSP responder: hsmcad's answers only for the
# issuing generations.
. "$top_srcdir/tests/integration/lib.sh"

command -v curl >/dev/null 2>&1 || skip_all "curl not installed"
command -v python3 >/dev/null 2>&1 || skip_all "python3 not installed (a free port for crl-url)"

# crl-url must name hsmcad's port before `ca init` signs it in.
CA_HTTP=127.0.0.1:$(free_port)
est_setup chain
sed -i "s|^\[daemon\]|[daemon]\nhttp-listen = $CA_HTTP\ncrl-delay = 1s|" "$CONF"
hsmca ca download 2 >"$WORK/ica.pem"

# cdp CERT: the URI of its CRL distribution point.
cdp() {
	openssl x509 -in "$1" -noout -ext crlDistributionPoints 2>/dev/null |
		sed -n 's/^ *URI://p'
}

ICA_CRL=$(cdp "$WORK/ica.pem")
check "generation 2 names the root's CRL, generation 1 ($ICA_CRL)" \
	test "$ICA_CRL" = "http://$CA_HTTP/crl/1.crl"
run openssl x509 -in "$WORK/ica.pem" -noout -text
check "the CDP is the only URL it carries: no OCSP responder" \
	sh -c "grep -q 'X509v3 CRL Distribution Points' '$WORK/last.out' &&
	       ! grep -q 'Authority Information Access' '$WORK/last.out'"
check "the root names none" test -z "$(cdp "$CADIR/root.pem")"

hsmcad_start
check "hsmcad serves plain HTTP where crl-url points ($HTTP_PORT)" \
	test "$HTTP_PORT" = "${CA_HTTP#*:}"

csr_b64 dev1 ec:P-256 /CN=dev-1
est_post simpleenroll "$WORK/dev1.b64" --cert "$WORK/dev-1.boot.pem" --key "$WORK/dev-1.boot.key"
p7_certs >"$WORK/dev1.pem" || bail "enroll dev-1 ($STATUS)"
DEV_CRL=$(cdp "$WORK/dev1.pem")
check "the device certificate names generation 2's CRL" \
	test "$DEV_CRL" = "http://$CA_HTTP/crl/2.crl"

# fetch URL NAME: the CRL served at URL, as $WORK/NAME.crl (PEM).
fetch() {
	curl -sf -o "$WORK/$2.der" "$1" &&
		openssl crl -inform DER -in "$WORK/$2.der" -out "$WORK/$2.crl" 2>/dev/null
}
i=0; until fetch "$DEV_CRL" gen && fetch "$ICA_CRL" root || [ $i -ge 100 ]; do
	i=$((i + 1)); sleep 0.05
done
check "both CRLs are served at the URLs the certificates carry" \
	test -s "$WORK/gen.crl" -a -s "$WORK/root.crl"
expect_ok "the root's CRL is signed by the root" \
	openssl crl -in "$WORK/root.crl" -noout -verify -CAfile "$CADIR/root.pem"

# verify_all: the device certificate, every CRL of its chain checked,
# by openssl (RC, last.err) and by GnuTLS certtool ($WORK/certtool.out).
verify_all() {
	cat "$WORK/dev1.pem" "$WORK/ica.pem" >"$WORK/chain.pem"
	cat "$WORK/gen.crl" "$WORK/root.crl" >"$WORK/crls.pem"
	certtool --verify --load-ca-certificate "$CADIR/root.pem" \
		--load-crl "$WORK/crls.pem" --infile "$WORK/chain.pem" \
		>"$WORK/certtool.out" 2>&1
	run openssl verify -crl_check_all -CAfile "$CADIR/root.pem" \
		-untrusted "$WORK/ica.pem" -CRLfile "$WORK/gen.crl" \
		-CRLfile "$WORK/root.crl" "$WORK/dev1.pem"
}
verify_all
check "openssl verify -crl_check_all passes" test "$RC" -eq 0
check "so does certtool --verify with both CRLs" \
	grep -q "Chain verification output: Verified" "$WORK/certtool.out"
run openssl verify -crl_check_all -CAfile "$CADIR/root.pem" \
	-untrusted "$WORK/ica.pem" -CRLfile "$WORK/gen.crl" "$WORK/dev1.pem"
check "and needs the root's CRL for it" grep -q "unable to get certificate CRL" "$WORK/last.err"

# The generation is revoked; hsmcad builds the root's CRL again.
ica_serial=$(openssl x509 -in "$WORK/ica.pem" -noout -serial | sed 's/serial=//')
expect_ok "hsmca ca revoke 2" hsmca ca revoke --reason keyCompromise 2
i=0
until fetch "$ICA_CRL" root && openssl crl -in "$WORK/root.crl" -noout -text |
    grep -qi "Serial Number: $ica_serial" || [ $i -ge 200 ]; do
	i=$((i + 1)); sleep 0.05
done
check "the root's CRL at that URL now lists generation 2" \
	sh -c "openssl crl -in '$WORK/root.crl' -noout -text | grep -qi 'Serial Number: $ica_serial'"
fetch "$DEV_CRL" gen
verify_all
check "openssl verify -crl_check_all now fails: generation 2 is revoked" \
	sh -c "[ $RC -ne 0 ] && grep -q 'error 23 at 1 depth lookup: certificate revoked' '$WORK/last.err'"
check "and certtool says the chain is revoked" \
	grep -q "Chain verification output: Not verified.* The certificate chain is revoked" "$WORK/certtool.out"

# A self-signed lab generation has no root above it: no CDP.
new_ca lab
expect_ok "ca init --self-signed" hsmca ca init --self-signed
hsmca ca download 1 >"$WORK/lab.pem"
check "a self-signed generation names no CRL" test -z "$(cdp "$WORK/lab.pem")"
done_testing
