#!/bin/sh
# make-corpus.sh: (re)generate the seed corpora in tests/fuzz/corpus with
# openssl: small real inputs, valid and invalid. The files are committed;
# run this only to change them, then list new files in Makefile.am
# (FUZZ_CORPUS). Inputs libFuzzer found (crash-*) are kept by hand.
#
#   tests/fuzz/make-corpus.sh [CORPUS-DIR]
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/corpus}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

mkdir -p "$out/csr" "$out/est" "$out/ocsp" "$out/config"

# ---- CSRs ----
key() {	# key FILE ALG [OPTS...]
	f=$1; shift
	openssl genpkey -quiet -out "$tmp/$f" "$@"
}
req() {	# req NAME KEY SUBJECT [openssl req options...]
	n=$1 k=$2 s=$3; shift 3
	openssl req -new -key "$tmp/$k" -subj "$s" -outform DER \
	    -out "$out/csr/$n.der" "$@"
}
key ec256 -algorithm EC -pkeyopt ec_paramgen_curve:P-256
key ec384 -algorithm EC -pkeyopt ec_paramgen_curve:P-384
key ec521 -algorithm EC -pkeyopt ec_paramgen_curve:P-521
key k1 -algorithm EC -pkeyopt ec_paramgen_curve:secp256k1
key explicit -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
    -pkeyopt ec_param_enc:explicit
key rsa2048 -algorithm RSA -pkeyopt rsa_keygen_bits:2048
key rsa1024 -algorithm RSA -pkeyopt rsa_keygen_bits:1024
key rsa3exp -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
    -pkeyopt rsa_keygen_pubexp:3
key ed25519 -algorithm ED25519

req device-ec256 ec256 "/CN=dev-0001/O=Acme/OU=Line 3/serialNumber=0001" \
    -addext "subjectAltName=DNS:dev-0001.example,URI:urn:dev:0001"
req server-ec384 ec384 "/CN=gw.example/O=Acme" \
    -addext "subjectAltName=DNS:gw.example,IP:192.0.2.7,IP:2001:db8::7"
req ec521-plain ec521 "/CN=dev-521"
req rsa2048 rsa2048 "/CN=dev-rsa/O=Acme/C=DE/ST=Berlin/L=Berlin"
req ask-ca ec256 "/CN=edge-gw-1/O=Acme" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:3" \
    -addext "keyUsage=critical,keyCertSign"
req email-san ec256 "/CN=dev-mail" \
    -addext "subjectAltName=email:dev@example.com,otherName:1.2.3.4;UTF8:x"
req odd-subject ec256 "/CN=dev/emailAddress=a@b.example/DC=example/title=x"
req utf8-cn ec256 "/CN=Gerät-ß-✓" -utf8
req no-subject ec256 "/" -addext "subjectAltName=DNS:only-san.example"
req many-ext ec256 "/CN=dev-ext" \
    -addext "extendedKeyUsage=serverAuth,codeSigning" \
    -addext "nsComment=hello" -addext "subjectKeyIdentifier=hash"
req rsa1024 rsa1024 "/CN=weak"
req rsa-exp3 rsa3exp "/CN=exp3"
req secp256k1 k1 "/CN=k1"
req explicit-curve explicit "/CN=explicit"
req ed25519 ed25519 "/CN=ed"

openssl req -in "$out/csr/device-ec256.der" -inform DER \
    -out "$out/csr/device-ec256.pem"
openssl req -new -key "$tmp/ec256" -subj "/CN=old-header" |
    sed 's/CERTIFICATE REQUEST/NEW CERTIFICATE REQUEST/' \
    > "$out/csr/new-header.pem"
base64 -w 64 "$out/csr/device-ec256.der" > "$out/csr/device-ec256.b64"
# A broken signature, trailing data, a truncated request, PEM trailers.
cp "$out/csr/device-ec256.der" "$tmp/x"
sz=$(wc -c < "$tmp/x")
{ head -c $((sz - 3)) "$tmp/x"; printf '\001\002\003'; } \
    > "$out/csr/bad-signature.der"
{ cat "$tmp/x"; printf '\000'; } > "$out/csr/trailing-byte.der"
head -c $((sz / 2)) "$tmp/x" > "$out/csr/truncated.der"
{ cat "$out/csr/device-ec256.pem"; echo "junk"; } > "$out/csr/pem-junk.pem"
openssl x509 -req -in "$out/csr/device-ec256.der" -inform DER \
    -key "$tmp/ec256" -days 1 -outform PEM -out "$out/csr/a-certificate.pem" \
    2>/dev/null
: > "$out/csr/empty"

# ---- EST requests: path, Content-Type, body ----
est() {	# est NAME PATH CTYPE BODYFILE
	{ printf '%s\n%s\n' "$2" "$3"; cat "$4"; } > "$out/est/$1"
}
b64=$out/csr/device-ec256.b64
: > "$tmp/empty"
base64 -w 0 "$out/csr/server-ec384.der" > "$tmp/srv.b64"
base64 -w 76 "$out/csr/ask-ca.der" | sed 's/$/\r/' > "$tmp/ca-crlf.b64"
base64 -w 0 "$out/csr/bad-signature.der" > "$tmp/badsig.b64"
printf 'MIIB!!==' > "$tmp/bad.b64"
est enroll /.well-known/est/simpleenroll application/pkcs10 "$b64"
est reenroll-query '/.well-known/est/simplereenroll?x=1' application/pkcs10 "$b64"
est edge-serverkeygen /.well-known/est/edge/serverkeygen \
    'application/pkcs10; charset=utf-8' "$tmp/ca-crlf.b64"
est srv-oneline /.well-known/est/srv/simpleenroll application/pkcs10 "$tmp/srv.b64"
est wrong-ctype /.well-known/est/simpleenroll text/plain "$b64"
est no-ctype /.well-known/est/simpleenroll '' "$b64"
est bad-base64 /.well-known/est/simpleenroll application/pkcs10 "$tmp/bad.b64"
est bad-signature /.well-known/est/simpleenroll application/pkcs10 "$tmp/badsig.b64"
est empty-body /.well-known/est/simpleenroll application/pkcs10 "$tmp/empty"
est cacerts /.well-known/est/cacerts '' "$tmp/empty"
est csrattrs-label /.well-known/est/edge/csrattrs '' "$tmp/empty"
est unknown-label /.well-known/est/nope/simpleenroll application/pkcs10 "$b64"
est unknown-op /.well-known/est/simpleenrol application/pkcs10 "$b64"
est not-est /ocsp application/pkcs10 "$b64"
est long-label "/.well-known/est/$(printf 'a%.0s' $(seq 80))/simpleenroll" \
    application/pkcs10 "$b64"

# ---- OCSP requests for the fixture in fuzz_ocsp.c ----
for g in 1 2; do
	awk -v n="fx_key$g" '
	    $0 ~ n "\\[\\]" { on = 1; next }
	    on { s = $0; sub(/^[ \t]*"/, "", s); sub(/\\n";?$/, "", s)
		 print s; if ($0 ~ /;$/) exit }' "$here/fuzz_ocsp.c" \
	    > "$tmp/ca$g.key"
	openssl req -new -x509 -key "$tmp/ca$g.key" -days 30 \
	    -subj "/CN=Fuzz OCSP CA $g/O=hsmca" -out "$tmp/ca$g.pem"
done
ocspreq() {	# ocspreq NAME GEN OPTS...
	n=$1 g=$2; shift 2
	openssl ocsp -issuer "$tmp/ca$g.pem" -reqout "$out/ocsp/$n" "$@" \
	    >/dev/null
}
ocspreq good-sha1 1 -serial 0x4e1f0a99c2d3e4f5061728394a5b6c7d
ocspreq good-sha256-nonce 1 -sha256 -serial 0x4e1f0a99c2d3e4f5061728394a5b6c7d -nonce
ocspreq revoked-sha1 1 -serial 0x01 -no_nonce
ocspreq gen2-good 2 -serial 0x7fffffffffffffffffffffffffffffff -no_nonce
ocspreq gen2-revoked-sha256 2 -sha256 -serial 0xff -no_nonce
ocspreq unknown-serial 1 -serial 0x1234 -no_nonce
ocspreq unknown-sha256 2 -sha256 -serial 0x00 -no_nonce
ocspreq sha384-id 1 -sha384 -serial 0x01 -no_nonce
ocspreq two-ids 1 -serial 0x01 -serial 0x02 -no_nonce
ocspreq serial-21-octets 1 -serial 0x0102030405060708090a0b0c0d0e0f101112131415 -no_nonce
openssl req -new -x509 -key "$tmp/ec256" -days 1 -subj "/CN=stranger" \
    -out "$tmp/other.pem"
openssl ocsp -issuer "$tmp/other.pem" -serial 0x01 -no_nonce \
    -reqout "$out/ocsp/other-issuer" >/dev/null
# The GET form (RFC 6960 A.1): URL-encoded base64 after /ocsp/.
get() {	# get NAME FILE [sed-expr]
	{ printf 'GET /ocsp/'; base64 -w 0 "$2" |
	    sed -e 's,/,%2F,g; s,+,%2B,g; s,=,%3D,g' ${3:+-e "$3"}; } \
	    > "$out/ocsp/$1"
}
get get-good "$out/ocsp/good-sha1"
get get-unknown "$out/ocsp/unknown-sha256"
{ printf 'GET /ocsp/'; base64 -w 0 "$out/ocsp/revoked-sha1"; } \
    > "$out/ocsp/get-raw-base64"
printf 'GET /ocsp/%%zz%%' > "$out/ocsp/get-bad-escape"
printf 'GET /ocsp/AAA' > "$out/ocsp/get-short"
printf 'GET /ocsp/====' > "$out/ocsp/get-padding"
head -c 40 "$out/ocsp/good-sha1" > "$out/ocsp/truncated"
{ cat "$out/ocsp/good-sha1"; printf '\000'; } > "$out/ocsp/trailing-byte"

# ---- configs ----
golden=$here/../unit/golden
for f in minimal full profile-new profile-override quoting daemon-est; do
	cp "$golden/$f.conf" "$out/config/$f.conf"
done
printf '[hsm]\nmodule = /m.so\ntoken = pkcs11:token=t\npin-source = env:P\n[store]\npath = /s.db\n[hsm]\n' \
    > "$out/config/duplicate-section.conf"
printf '[hsm]\nmodule = "unterminated\n' > "$out/config/bad-quote.conf"
printf '[daemon]\ntimeout = 99999999999999999999d\nmax-body = 16m1\n' \
    > "$out/config/big-numbers.conf"
printf '[est a/b]\nprofile = nope\n[profile x]\nkey-usage = ,,\n' \
    > "$out/config/bad-names.conf"
printf 'key = value\n\000[hsm]\n' > "$out/config/nul-byte.conf"
