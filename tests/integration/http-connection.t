#!/bin/sh
# http-connection.t: every answer of every listener (EST over mutual TLS,
# plain HTTP for CRLs and OCSP, the admin API and its /metrics) carries
# one Connection header, and the connection does what it says. libevent
# 2.1 adds "Connection: keep-alive" to the answer of an HTTP/1.0 request
# that asked for it, whatever it then does: a refusal that closed the
# connection said both close and keep-alive. Each request here is sent
# with a second one behind it on the same connection (HTTP/1.1, asking
# for close): a connection kept open answers both, one closed answers the
# first alone.
. "$top_srcdir/tests/integration/lib.sh"

command -v python3 >/dev/null 2>&1 || skip_all "python3 not installed"

est_setup hco
all_listeners
hsmcad_start
[ -n "$HTTP_PORT" ] && [ -n "$ADMIN_PORT" ] || bail "no HTTP or admin listener in the log"

# answers: each answer in $WORK/last.out as "STATUS CONNECTION", the
# Connection headers' values joined by "+" ("-" for none), answers
# separated by "|". A body is as long as its Content-Length says, none
# to a HEAD (the first request's method is $FIRST), the rest of the
# stream without one.
answers() {
	python3 - "$WORK/last.out" "${FIRST:-GET}" <<'EOP'
import sys
data = open(sys.argv[1], "rb").read()
head_first = sys.argv[2] == "HEAD"
out = []
while data:
    end = data.find(b"\r\n\r\n")
    if end < 0:
        out.append("partial")
        break
    lines = data[:end].decode("latin-1").split("\r\n")
    data = data[end + 4:]
    status = lines[0].split(" ")[1] if " " in lines[0] else "?"
    conn, length = [], None
    for l in lines[1:]:
        k, _, v = l.partition(":")
        if k.strip().lower() == "connection":
            conn.append(v.strip().lower())
        elif k.strip().lower() == "content-length":
            length = int(v.strip())
    if head_first and not out:
        length = 0
    if length is None:
        length = len(data)
    data = data[length:]
    out.append(status + " " + ("+".join(conn) if conn else "-"))
print("|".join(out))
EOP
}

# conn DESC WANT PORT REQUEST [CAFILE [CERT KEY]]: REQUEST, then a GET of
# $NEXT asking for close, on one connection: the answers are WANT (as
# answers prints them) and the server closed the connection.
conn() {
	desc=$1; want=$2; port=$3; req=$4; shift 4
	FIRST=${req%% *}
	raw_request "$port" "$req""GET $NEXT HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n" "$@"
	got=$(answers)
	if [ "$RC" = 0 ] && [ "$got" = "$want" ]; then
		ok "$desc"
	else
		: >"$WORK/last.out"	# binary (a CRL): the summary says it
		not_ok "$desc (got \"$got\", rc $RC; wanted \"$want\")"
	fi
}

H10='HTTP/1.0\r\nHost: localhost\r\n'
KA='Connection: keep-alive\r\n'
H11='HTTP/1.1\r\nHost: localhost\r\n'
BYE='Connection: close\r\n'
# A body libevent reads for none of these methods (or none at all).
BODY='Content-Length: 4\r\n\r\nabcd'

# probe NAME PATH REFUSED PORT [CAFILE [CERT KEY]]: PATH served by GET,
# refused (405) for REFUSED.
probe() {
	name=$1; path=$2; refused=$3; port=$4; shift 4
	NEXT=$path
	conn "$name: HTTP/1.0 with keep-alive: kept, and says so once" \
		"200 keep-alive|200 close" "$port" "GET $path $H10$KA\\r\\n" "$@"
	conn "$name: HTTP/1.0 without: closed, and says so" \
		"200 close" "$port" "GET $path $H10\\r\\n" "$@"
	conn "$name: HTTP/1.1: kept, and says so" \
		"200 keep-alive|200 close" "$port" "GET $path $H11\\r\\n" "$@"
	conn "$name: HTTP/1.1 asking for close: closed" \
		"200 close" "$port" "GET $path $H11$BYE\\r\\n" "$@"
	conn "$name: HEAD, HTTP/1.0 with keep-alive: kept" \
		"200 keep-alive|200 close" "$port" "HEAD $path $H10$KA\\r\\n" "$@"
	conn "$name: HEAD with a body, HTTP/1.0 with keep-alive: one close" \
		"200 close" "$port" "HEAD $path $H10$KA$BODY" "$@"
	conn "$name: $refused (405), HTTP/1.0 with keep-alive: one close" \
		"405 close" "$port" "$refused $path $H10$KA\\r\\n" "$@"
	conn "$name: $refused (405), HTTP/1.1: one close" \
		"405 close" "$port" "$refused $path $H11\\r\\n" "$@"
	conn "$name: an unknown method (501), HTTP/1.0 with keep-alive: one close" \
		"501 close" "$port" "BREW $path $H10$KA\\r\\n" "$@"
}

probe "EST cacerts" /.well-known/est/cacerts DELETE "$PORT" "$CADIR/root.pem"
probe "CRL" /crl/2.crl DELETE "$HTTP_PORT"
# An OCSP GET that does not parse is answered (malformedRequest) all the same.
probe "OCSP" /ocsp/AAAA DELETE "$HTTP_PORT"
probe "admin /metrics" /metrics POST "$ADMIN_PORT" \
	"$CADIR/root.pem" "$WORK/dev-1.boot.pem" "$WORK/dev-1.boot.key"

# A request with an absolute URI, as sent to a proxy: libevent took it
# for one and closed the connection after an answer with no Connection
# header (which, to HTTP/1.1, says it stays open).
NEXT=/metrics
conn "admin API: /metrics as an absolute URI, HTTP/1.1: kept, and says so" \
	"200 keep-alive|200 close" "$ADMIN_PORT" \
	"GET https://localhost:$ADMIN_PORT/metrics $H11\\r\\n" \
	"$CADIR/root.pem" "$WORK/dev-1.boot.pem" "$WORK/dev-1.boot.key"

# Every listener routes an absolute URI as its path (RFC 9112 3.2.2):
# EST, CRLs and OCSP routed the raw URI and answered 404.
NEXT=/.well-known/est/cacerts
conn "EST: cacerts as an absolute URI: served, kept" \
	"200 keep-alive|200 close" "$PORT" \
	"GET https://localhost:$PORT/.well-known/est/cacerts $H11\\r\\n" \
	"$CADIR/root.pem"
NEXT=/crl/2.crl
conn "CRL: as an absolute URI: served, kept" \
	"200 keep-alive|200 close" "$HTTP_PORT" \
	"GET http://localhost:$HTTP_PORT/crl/2.crl $H11\\r\\n"
NEXT=/ocsp/AAAA
conn "OCSP: a GET as an absolute URI: answered, kept" \
	"200 keep-alive|200 close" "$HTTP_PORT" \
	"GET http://localhost:$HTTP_PORT/ocsp/AAAA $H11\\r\\n"
conn "CRL listener: an absolute URI without a path: 404, kept" \
	"404 keep-alive|200 close" "$HTTP_PORT" \
	"GET http://localhost:$HTTP_PORT $H11\\r\\n"

# A refusal that is not a method's keeps the connection.
NEXT=/.well-known/est/cacerts
conn "EST: a 404, HTTP/1.0 with keep-alive: kept" \
	"404 keep-alive|200 close" "$PORT" "GET /.well-known/est/nope $H10$KA\\r\\n" \
	"$CADIR/root.pem"
NEXT=/metrics
conn "admin API: a 404, HTTP/1.1: kept" \
	"404 keep-alive|200 close" "$ADMIN_PORT" "GET /nope $H11\\r\\n" \
	"$CADIR/root.pem" "$WORK/dev-1.boot.pem" "$WORK/dev-1.boot.key"
# The admin API's gate answers a client that is no operator itself,
# before evhttp parses the request.
conn "admin API: no client certificate (401), HTTP/1.0 with keep-alive: one close" \
	"401 close" "$ADMIN_PORT" "GET /metrics $H10$KA\\r\\n" "$CADIR/root.pem"

done_testing
