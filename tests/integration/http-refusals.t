#!/bin/sh
# http-refusals.t: what each listener (EST over mutual TLS, the admin API,
# plain HTTP for CRLs and OCSP) answers to requests libevent refuses or
# would have: a method libevent does not know is hsmcad's own 501 with
# one line of reason (it was libevent's page of HTML), and the connection
# closes, so a body libevent never read is not taken for a second
# request. What libevent 2.1 still answers itself, with no hook for
# hsmcad (hsmcad.8, BUGS): a request that does not parse (400), an
# Expect it does not know (417), a body over the listener's limit (413,
# on its Content-Length, before the body is read).
. "$top_srcdir/tests/integration/lib.sh"

command -v python3 >/dev/null 2>&1 || skip_all "python3 not installed"

est_setup hre
all_listeners
hsmcad_start
[ -n "$HTTP_PORT" ] && [ -n "$ADMIN_PORT" ] || bail "no HTTP or admin listener in the log"

# answered STATUS BODY: the server answered STATUS with exactly the body
# BODY (a line), Connection: close, and then closed the connection.
answered() {
	[ "$RC" = 0 ] && head -1 "$WORK/last.out" | grep -q "^HTTP/1.1 $1 " &&
		grep -qi '^Connection: close' "$WORK/last.out" &&
		[ "$(sed '1,/^\r$/d' "$WORK/last.out")" = "$2" ] &&
		[ "$(grep -c '^HTTP/1.1 ' "$WORK/last.out")" -eq 1 ]
}

# ---- a method libevent does not know ----
raw_request "$PORT" 'BREW /.well-known/est/cacerts HTTP/1.1\r\nHost: localhost\r\n\r\n' "$CADIR/root.pem"
check "EST: an unknown method gets 501 and one line of reason" \
	answered 501 "unknown method: EST takes GET, HEAD and POST"
check "... as text/plain" grep -qi '^Content-Type: text/plain' "$WORK/last.out"
check "... and the log says so" \
	grep -q 'client=- ? /.well-known/est/cacerts 501' "$CADIR/hsmcad.log"
# libevent reads no body for a method it does not know: what follows
# would be parsed as the next request on the connection.
raw_request "$PORT" 'BREW /.well-known/est/cacerts HTTP/1.1\r\nHost: localhost\r\nContent-Length: 55\r\n\r\nGET /.well-known/est/cacerts HTTP/1.1\r\nHost: localhost\r\n\r\n' \
	"$CADIR/root.pem"
check "... its body is never answered as a request of its own" \
	answered 501 "unknown method: EST takes GET, HEAD and POST"

raw_request "$ADMIN_PORT" 'BREW /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n' \
	"$CADIR/root.pem" "$WORK/dev-1.boot.pem" "$WORK/dev-1.boot.key"
check "admin API: an unknown method gets 501 and the reason in its JSON" \
	answered 501 '{"error":"unknown method: the admin API takes GET, HEAD and POST"}'
check "... audit-logged as a refusal" \
	sh -c "'$HSMCA' -c '$CONF' --json audit list --limit 1000 | grep -A6 'admin:CN=dev-1' | grep -q 'unknown method'"

raw_request "$HTTP_PORT" 'BREW /crl/2.crl HTTP/1.1\r\nHost: localhost\r\n\r\n'
check "plain HTTP: an unknown method on a CRL gets 501 and one line of reason" \
	answered 501 "unknown method: GET and HEAD (CRLs, OCSP), POST (OCSP) only"
raw_request "$HTTP_PORT" 'BREW /ocsp HTTP/1.1\r\nHost: localhost\r\n\r\n'
check "... and on the OCSP responder" \
	answered 501 "unknown method: GET and HEAD (CRLs, OCSP), POST (OCSP) only"
raw_request "$HTTP_PORT" 'PATCH /crl/2.crl HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'
check "a method it knows and the path does not take: still 405 with Allow" \
	sh -c "grep -q '^HTTP/1.1 405 ' '$WORK/last.out' && grep -qi '^Allow: GET, HEAD' '$WORK/last.out'"

# ---- a method the path does not take, with a body ----
# libevent reads no body for some methods (Debian 12's 2.1.12: HEAD and
# TRACE, as for those it does not know; which ones differs between its
# releases): on a kept connection such a body was parsed as the
# next request (a TRACE got its 405, then its body was answered as a
# request of its own). Every 405 closes the connection: the body (here
# a request) and the GET pipelined after it are never answered.
# pipelined METHOD PATH GET: METHOD PATH with a request for GET as its
# body, then that request again on the same connection.
pipelined() {
	b="GET $3 HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n"
	printf '%s %s HTTP/1.1\\r\\nHost: localhost\\r\\nContent-Length: %d\\r\\n\\r\\n%s%s' \
		"$1" "$2" $((${#3} + 34)) "$b" "$b"
}
# answered_head STATUS: as answered, to a HEAD: headers alone.
answered_head() {
	[ "$RC" = 0 ] && head -1 "$WORK/last.out" | grep -q "^HTTP/1.1 $1 " &&
		grep -qi '^Connection: close' "$WORK/last.out" && headers_only &&
		[ "$(grep -c '^HTTP/1.1 ' "$WORK/last.out")" -eq 1 ]
}
raw_request "$HTTP_PORT" "$(pipelined TRACE /crl/2.crl /crl/2.crl)"
check "plain HTTP: TRACE on a CRL, a body and a GET after it: one answer, the 405" \
	answered 405 "GET (or HEAD) only"
check "... with Allow" grep -qi '^Allow: GET, HEAD' "$WORK/last.out"
raw_request "$HTTP_PORT" "$(pipelined DELETE /crl/2.crl /crl/2.crl)"
check "... DELETE (whose body libevent 2.1.12 reads): the same" \
	answered 405 "GET (or HEAD) only"
raw_request "$HTTP_PORT" "$(pipelined TRACE /ocsp/ /crl/2.crl)"
check "... TRACE on the OCSP responder: the same" \
	answered 405 "POST /ocsp or GET (or HEAD) /ocsp/<base64 request>"
raw_request "$HTTP_PORT" "$(pipelined HEAD /ocsp /crl/2.crl)"
check "... HEAD on POST /ocsp: the 405's headers alone" answered_head 405
raw_request "$PORT" "$(pipelined TRACE /.well-known/est/cacerts /.well-known/est/cacerts)" \
	"$CADIR/root.pem"
check "EST: TRACE on cacerts with a body, then a GET: one answer, the 405" \
	answered 405 "cacerts takes GET (or HEAD)"
raw_request "$PORT" "$(pipelined HEAD /.well-known/est/simpleenroll /.well-known/est/cacerts)" \
	"$CADIR/root.pem" "$WORK/dev-1.boot.pem" "$WORK/dev-1.boot.key"
check "... HEAD on an enrollment endpoint: the 405's headers alone" \
	answered_head 405
raw_request "$ADMIN_PORT" "$(pipelined TRACE /metrics /metrics)" \
	"$CADIR/root.pem" "$WORK/dev-1.boot.pem" "$WORK/dev-1.boot.key"
check "admin API: TRACE on /metrics with a body, then a GET: one answer, the 405" \
	answered 405 '{"error":"use GET"}'
raw_request "$ADMIN_PORT" "$(pipelined HEAD /api/v1/run /metrics)" \
	"$CADIR/root.pem" "$WORK/dev-1.boot.pem" "$WORK/dev-1.boot.key"
check "... HEAD on /api/v1/run: the 405's headers alone" answered_head 405
# A HEAD that is served reads no body either.
raw_request "$HTTP_PORT" "$(pipelined HEAD /crl/2.crl /crl/2.crl)"
check "a HEAD of a CRL with a body, then a GET: one answer, its headers" \
	answered_head 200
raw_request "$PORT" "$(pipelined HEAD /.well-known/est/cacerts /.well-known/est/cacerts)" \
	"$CADIR/root.pem"
check "... of cacerts: the same" answered_head 200

# ---- what libevent 2.1 still answers itself ----
# libevent_refused STATUS: libevent's own refusal, STATUS, closing the connection.
libevent_refused() {
	[ "$RC" = 0 ] && head -1 "$WORK/last.out" | grep -q "^HTTP/1.1 $1 " &&
		grep -qi '^Connection: close' "$WORK/last.out"
}
raw_request "$HTTP_PORT" 'GET /crl/2.crl\r\n\r\n'
check "a request line that does not parse: libevent's 400" libevent_refused 400
raw_request "$HTTP_PORT" 'POST /ocsp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/ocsp-request\r\nExpect: a-miracle\r\nContent-Length: 3\r\n\r\nabc'
check "an Expect it does not know: libevent's 417" libevent_refused 417
# The headers of a 1 MB body and none of it: the answer comes all the same.
raw_request "$PORT" 'POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/pkcs10\r\nContent-Length: 1000000\r\n\r\n' \
	"$CADIR/root.pem" "$WORK/dev-1.boot.pem" "$WORK/dev-1.boot.key"
check "EST: a body over max-body is refused on its Content-Length, before it is sent (413)" \
	libevent_refused 413
check "the daemon still serves" \
	sh -c "curl -sf --cacert '$CADIR/root.pem' -o /dev/null '$URL/cacerts'"

done_testing
