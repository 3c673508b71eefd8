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
curl -s --cacert "$TA" -o "$WORK/cacerts.b64" "$URL/cacerts"
cat >"$WORK/fake.py" <<'EOP'
import base64, os, random, socket, ssl, subprocess, sys, tempfile, threading
chain, key, cacerts, ca, cakey = sys.argv[1:6]
real = open(cacerts, "rb").read()

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
            return reply(real)
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
python3 "$WORK/fake.py" "$CADIR/server-chain.pem" "$CADIR/server.key" "$WORK/cacerts.b64" \
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

done_testing
