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
import socket, ssl, sys, threading
chain, key, cacerts = sys.argv[1:4]
real = open(cacerts, "rb").read()

def answer(label, op):
    if label == "esc-ctype":
        return (b"HTTP/1.1 200 OK\r\nContent-Type: text/\x1b]0;pwned\x07plain\r\n"
                b"Content-Length: 0\r\nConnection: close\r\n\r\n")
    if label == "esc-status":
        return b"HTTP/1.1 503 \x1b[2J\x1b]0;pwned\x07fake\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
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
        c.sendall(answer(label, op))
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
	>"$WORK/fake.port" 2>"$WORK/fake.err" &
FAKE_PID=$!
trap 'kill "$FAKE_PID" 2>/dev/null; hsmcad_stop; cleanup' EXIT
i=0; until [ -s "$WORK/fake.port" ] || [ $i -ge 200 ]; do i=$((i + 1)); sleep 0.05; done
[ -s "$WORK/fake.port" ] || bail "the fake EST server did not start: $(cat "$WORK/fake.err")"
FAKE="--server https://localhost:$(cat "$WORK/fake.port") --cacert $TA"
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

done_testing
