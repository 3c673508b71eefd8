#!/bin/sh
# hsmca est against an EST server that passes TLS verification but
# misbehaves (a compromised or buggy server, here a small Python one
# that issues with the factory CA's key): what reaches the terminal and
# which answers the client refuses.
. "$top_srcdir/tests/integration/lib.sh"
command -v curl >/dev/null 2>&1 || skip_all "curl not installed"
command -v python3 >/dev/null 2>&1 || skip_all "python3 not installed (the fake EST server)"

est_setup estr
hsmcad_start
ok "hsmcad answers on port $PORT"
TA="$CADIR/root.pem"
BOOT="--cert $WORK/dev-1.boot.pem --key $WORK/dev-1.boot.key"
not() { ! "$@"; }

# The fake server: hsmcad's TLS certificate, so --cacert root.pem and
# https://localhost verify; the label picks what it does wrong.
hsmca est cacerts --server "https://localhost:$PORT" --cacert "$TA" --out "$WORK/cacerts.pem"
cat >"$WORK/fake.py" <<'EOP'
import base64, os, random, socket, ssl, subprocess, sys, tempfile, threading
chain, key, cacerts, ca, cakey = sys.argv[1:6]
real = open(cacerts, "rb").read()    # hsmcad's CA certificates, PEM
DEVICE = "keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
# What simpleenroll and simplereenroll issue, by label: extensions, and
# more arguments for openssl x509 -req.
ENROLL = {
    "good":   ("basicConstraints=critical,CA:FALSE\n" + DEVICE, ("-copy_extensions", "copy")),
    "subj":   ("basicConstraints=critical,CA:FALSE\n" + DEVICE, ("-subj", "/CN=someone-else")),
    "san":    ("basicConstraints=critical,CA:FALSE\nsubjectAltName=URI:urn:dev:other\n" + DEVICE, ()),
    "ca":     ("basicConstraints=critical,CA:TRUE\n" + DEVICE, ("-copy_extensions", "copy")),
    "server": ("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
               "extendedKeyUsage=serverAuth\n", ("-copy_extensions", "copy")),
}
# Labels that issue as "good" but answer whoami (no whoami elsewhere: 404).
WHOAMI = {
    "revoked": b"403 Forbidden", "bootstrap": b"200 OK",
}
for l in WHOAMI:
    ENROLL[l] = ENROLL["good"]

def openssl(*args):
    return subprocess.run(("openssl",) + args, check=True, capture_output=True).stdout

def reply(body, ctype=b"application/pkcs7-mime; smime-type=certs-only"):
    return (b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype + b"\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)

def p7(d, pem):
    open(d + "/out.pem", "wb").write(pem)
    return base64.encodebytes(openssl("crl2pkcs7", "-nocrl", "-certfile", d + "/out.pem", "-outform", "DER"))

def issue(d, csr_b64, ext, *more):
    """A certificate for the request (the CA's key signs), its extensions from ext."""
    open(d + "/csr.der", "wb").write(base64.b64decode(csr_b64))
    open(d + "/ext", "w").write(ext)
    return openssl("x509", "-req", "-inform", "DER", "-in", d + "/csr.der", "-CA", ca, "-CAkey", cakey,
                   "-set_serial", str(random.randrange(1 << 60)), "-days", "30", "-extfile", d + "/ext", *more)

def serverkeygen(d, label, csr_b64):
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", d + "/k.pem")
    k = base64.encodebytes(openssl("pkcs8", "-topk8", "-nocrypt", "-in", d + "/k.pem", "-outform", "DER"))
    openssl("pkey", "-in", d + "/k.pem", "-pubout", "-out", d + "/pub.pem")
    c = p7(d, issue(d, csr_b64, "basicConstraints=critical,CA:FALSE\n", "-force_pubkey", d + "/pub.pem"))
    b = b"bnd"
    if label == "skg-xboundary":    # a parameter whose name ends in boundary
        ctype = b"multipart/mixed; xboundary=zzz; boundary=" + b
    elif label == "skg-quoted":     # RFC 2046: a quoted boundary may hold spaces
        b = b"a b"
        ctype = b'multipart/mixed; boundary="a b"'
    else:
        ctype = b"multipart/mixed; boundary=" + b
    return reply(b"--" + b + b"\r\nContent-Type: application/pkcs8\r\n\r\n" + k +
                 b"\r\n--" + b + b"\r\nContent-Type: application/pkcs7-mime; smime-type=certs-only\r\n\r\n" + c +
                 b"\r\n--" + b + b"--\r\n", ctype)

def answer(label, op, body):
    if label == "esc-ctype":
        return (b"HTTP/1.1 200 OK\r\nContent-Type: text/\x1b]0;pwned\x07plain\r\n"
                b"Content-Length: 0\r\nConnection: close\r\n\r\n")
    if label == "esc-status":
        return b"HTTP/1.1 503 \x1b[2J\x1b]0;pwned\x07fake\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    with tempfile.TemporaryDirectory() as d:
        if op == "cacerts":
            # hsmcad's, and the CA this server issues with, self-signed:
            # no trust anchor for the client.
            return reply(p7(d, real + open(ca, "rb").read()))
        if op == "whoami" and label in WHOAMI:
            body = b"client certificate 0a is revoked\n" if label == "revoked" else b"bootstrap\n"
            return (b"HTTP/1.1 " + WHOAMI[label] + b"\r\nContent-Type: text/plain\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        if op in ("simpleenroll", "simplereenroll") and label in ENROLL:
            ext, more = ENROLL[label]
            return reply(p7(d, issue(d, body, ext, *more)))
        if op == "serverkeygen":
            return serverkeygen(d, label, body)
    return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

def serve(raw, ctx):
    try:
        c = ctx.wrap_socket(raw, server_side=True)
        req = b""
        while b"\r\n\r\n" not in req:
            d = c.recv(65536)
            if not d:
                return
            req += d
        head, _, body = req.partition(b"\r\n\r\n")
        clen = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                clen = int(v)
        while len(body) < clen:
            body += c.recv(65536)
        parts = head.split(b" ")[1].decode().split("/")  # '', .well-known, est, [LABEL,] OP
        label, op = (parts[3], parts[4]) if len(parts) > 4 else ("", parts[3])
        c.sendall(answer(label, op, body))
        c.unwrap()
        c.close()
    except Exception as ex:
        print("fake:", ex, file=sys.stderr, flush=True)

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(chain, key)
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(16)
print(ls.getsockname()[1], flush=True)
while True:
    raw, _ = ls.accept()
    threading.Thread(target=serve, args=(raw, ctx), daemon=True).start()
EOP
python3 "$WORK/fake.py" "$CADIR/server-chain.pem" "$CADIR/server.key" "$WORK/cacerts.pem" \
	"$CADIR/factory.pem" "$CADIR/factory.key" \
	>"$WORK/fake.port" 2>"$WORK/fake.err" &
FAKE_PID=$!
trap 'kill "$FAKE_PID" 2>/dev/null; hsmcad_stop; cleanup' EXIT
i=0; until [ -s "$WORK/fake.port" ] || [ $i -ge 200 ]; do i=$((i + 1)); sleep 0.05; done
[ -s "$WORK/fake.port" ] || bail "the fake EST server did not start: $(cat "$WORK/fake.err")"
FAKE="--server https://localhost:$(cat "$WORK/fake.port") --cacert $TA"
# Trust anchors that also hold the CA the fake server issues with.
cat "$TA" "$CADIR/factory.pem" >"$WORK/ta+factory.pem"
FAKE_F="--server https://localhost:$(cat "$WORK/fake.port") --cacert $WORK/ta+factory.pem"
pubkey_of_cert() { openssl x509 -in "$1" -noout -pubkey 2>/dev/null; }
pubkey_of_key() { openssl pkey -in "$1" -pubout 2>/dev/null; }
pair_matches() { [ -n "$(pubkey_of_key "$2")" ] && [ "$(pubkey_of_cert "$1")" = "$(pubkey_of_key "$2")" ]; }
ESC=$(printf '\033')
BEL=$(printf '\007')

# ---- what the server says reaches the terminal filtered ----
# shellcheck disable=SC2086
expect_fail "a Content-Type with control characters: refused" 1 "Content-Type 'text/\?]0;pwned\?plain'" \
	hsmca est cacerts $FAKE --label esc-ctype
check "no escape or bell character reaches stderr" not grep -q "[$ESC$BEL]" "$WORK/last.err"
# shellcheck disable=SC2086
expect_fail "a status phrase with control characters: refused" 1 "server refused \(503\): \?\[2J\?]0;pwned\?fake" \
	hsmca est cacerts $FAKE --label esc-status
check "no escape or bell character reaches stderr" not grep -q "[$ESC$BEL]" "$WORK/last.err"

# ---- serverkeygen: the boundary parameter of multipart/mixed ----
for m in skg-plain skg-xboundary skg-quoted; do
	# shellcheck disable=SC2086
	expect_ok "serverkeygen, $m" hsmca est serverkeygen $FAKE_F --label $m $BOOT --subject CN=gw \
		--out "$WORK/$m.pem" --key-out "$WORK/$m.key"
	check "$m: the key is the certificate's" pair_matches "$WORK/$m.pem" "$WORK/$m.key"
done

# ---- the certificate issued: for the request, from a trusted CA ----
# enroll_refused DESC PATTERN LABEL [ARGS...]: est enroll against the fake
# server (--cacert $3... given in ARGS) is refused and writes nothing.
enroll_refused() {
	desc=$1; pattern=$2; shift 2
	rm -f "$WORK/e.key" "$WORK/e.pem"
	# shellcheck disable=SC2086
	expect_fail "$desc" 1 "$pattern" hsmca est enroll "$@" $BOOT --subject CN=dev-1 \
		--san URI:urn:dev:1 --new-key "$WORK/e.key" --out "$WORK/e.pem"
	check "$desc: no key, no certificate written" test ! -e "$WORK/e.key" -a ! -e "$WORK/e.pem"
}
# shellcheck disable=SC2086
expect_ok "enroll: a device certificate from a CA in --cacert is taken" \
	hsmca est enroll $FAKE_F --label good $BOOT --subject CN=dev-1 --san URI:urn:dev:1 \
	--new-key "$WORK/good.key" --out "$WORK/good.pem"
check "the pair matches" pair_matches "$WORK/good.pem" "$WORK/good.key"
# shellcheck disable=SC2086
enroll_refused "enroll: from a CA that is not in --cacert (cacerts offers it as a root)" \
	"does not chain to a trust anchor in $TA" $FAKE --label good
# shellcheck disable=SC2086
enroll_refused "enroll --chain: the same" "does not chain to a trust anchor in $TA" \
	$FAKE --label good --chain
# shellcheck disable=SC2086
enroll_refused "enroll: a certificate for another subject" \
	"the new certificate is for 'CN=someone-else', not the subject requested" $FAKE_F --label subj
# shellcheck disable=SC2086
enroll_refused "enroll: another subjectAltName" "subjectAltName is not the one requested" \
	$FAKE_F --label san
# shellcheck disable=SC2086
enroll_refused "enroll: a CA certificate for a device" "is a CA certificate; a device's must be CA:FALSE" \
	$FAKE_F --label ca
# shellcheck disable=SC2086
enroll_refused "enroll: a certificate not for TLS client authentication" \
	"not for TLS client authentication" $FAKE_F --label server

# reenroll and renew: the current certificate's subject and SAN.
# shellcheck disable=SC2086
hsmca est enroll --server "https://localhost:$PORT" --cacert "$TA" $BOOT --subject CN=dev-1 \
	--san URI:urn:dev:1 --new-key "$WORK/d1.key" --out "$WORK/d1.pem" >/dev/null ||
	bail "enroll with hsmcad failed"
# shellcheck disable=SC2086
expect_fail "reenroll: a certificate for another subject" 1 "is for 'CN=someone-else'" \
	hsmca est reenroll $FAKE_F --label subj --cert "$WORK/d1.pem" --key "$WORK/d1.key" \
	--out "$WORK/r.pem" --new-key "$WORK/r.key"
check "reenroll: nothing written" test ! -e "$WORK/r.key" -a ! -e "$WORK/r.pem"
DEV="$WORK/device"
mkdir -p "$DEV"
cp "$WORK/d1.pem" "$DEV/cert.pem"
(umask 077; cp "$WORK/d1.key" "$DEV/key.pem")
untouched() {
	cmp -s "$DEV/cert.pem" "$WORK/d1.pem" && cmp -s "$DEV/key.pem" "$WORK/d1.key" &&
		test "$(ls "$DEV" | wc -l)" -eq 2
}
# shellcheck disable=SC2086
expect_fail "renew: another subject from a CA cacerts offers as a root" 1 \
	"does not chain to a trust anchor in $TA" \
	hsmca est renew $FAKE --label subj --cert "$DEV/cert.pem" --key "$DEV/key.pem" --force
check "the pair is untouched, nothing beside it" untouched
# shellcheck disable=SC2086
expect_fail "renew: another subject from a CA in --cacert" 1 "is for 'CN=someone-else'" \
	hsmca est renew $FAKE_F --label subj --cert "$DEV/cert.pem" --key "$DEV/key.pem" --force
check "the pair is untouched, nothing beside it" untouched
# shellcheck disable=SC2086
expect_fail "renew: a CA certificate" 1 "is a CA certificate" \
	hsmca est renew $FAKE_F --label ca --cert "$DEV/cert.pem" --key "$DEV/key.pem" --force
check "the pair is untouched, nothing beside it" untouched

# renew asks the server, with the new pair, whether it takes it (whoami).
# shellcheck disable=SC2086
expect_fail "renew: the server refuses the new pair (revoked)" 1 \
	"the new pair does not work with the server: server refused \(403\): client certificate 0a is revoked" \
	hsmca est renew $FAKE_F --label revoked --cert "$DEV/cert.pem" --key "$DEV/key.pem" --force
check "the pair is untouched, nothing beside it" untouched
# shellcheck disable=SC2086
expect_fail "renew: the server takes the new pair for a bootstrap certificate" 1 \
	"the new pair does not work with the server: the server does not take the certificate for one it issued" \
	hsmca est renew $FAKE_F --label bootstrap --cert "$DEV/cert.pem" --key "$DEV/key.pem" --force
check "the pair is untouched, nothing beside it" untouched
# shellcheck disable=SC2086
expect_ok "renew with a server that has no whoami (404)" \
	hsmca est renew $FAKE_F --label good --cert "$DEV/cert.pem" --key "$DEV/key.pem" --force
check "it says the new pair was checked only by a TLS handshake" \
	grep -q "the server has no whoami (not hsmcad?): the new pair was only seen to complete a TLS handshake" "$WORK/last.err"
check "the new pair is in place" sh -c "! cmp -s '$DEV/cert.pem' '$WORK/d1.pem' && cmp -s '$DEV/cert.pem.old' '$WORK/d1.pem'"

# shellcheck disable=SC2086
expect_fail "serverkeygen: from a CA that is not in --cacert" 1 "does not chain to a trust anchor" \
	hsmca est serverkeygen $FAKE --label skg-plain $BOOT --subject CN=gw \
	--out "$WORK/skg.pem" --key-out "$WORK/skg.key"
check "serverkeygen: nothing written" test ! -e "$WORK/skg.key" -a ! -e "$WORK/skg.pem"

done_testing
