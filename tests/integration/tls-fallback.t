#!/bin/sh
# tls-fallback.t: a connection the front cannot set up (no memory for its
# TLS state) is closed unserved, never served over plain HTTP: libevent
# 2.1 serves a connection its bufferevent callback gave up on over a
# plain socket of its own, which on the EST and admin ports was a
# cleartext EST or admin API. The faults come from
# tests/front-fault/front-fault.so, preloaded into the daemon (its front
# runs under seccomp: the shim only stat()s its control files and
# writes to stderr). The listener keeps serving TLS clients afterwards,
# and its count of open connections comes back to zero.
. "$top_srcdir/tests/integration/lib.sh"

command -v curl >/dev/null 2>&1 || skip_all "curl not installed"
command -v python3 >/dev/null 2>&1 || skip_all "python3 not installed"
SHIM="$top_builddir/tests/front-fault/front-fault.so"
[ -r "$SHIM" ] || skip_all "the front-fault shim is not built (make check builds it)"

est_setup tfb
all_listeners

FRONT_FAULT_SSL_NEW=$CADIR/ssl_new.ctl
FRONT_FAULT_BEVCB=$CADIR/bevcb.ctl
FRONT_FAULT_BUFFEREVENT=$CADIR/bufferevent.ctl
export FRONT_FAULT_SSL_NEW FRONT_FAULT_BEVCB FRONT_FAULT_BUFFEREVENT
# Under AddressSanitizer its runtime must come first.
ASAN_RT=$(ldd "$top_builddir/daemon/hsmcad" | awk '$1 ~ /^libasan/ { print $3 }')
HSMCAD_PRELOAD="${ASAN_RT:+$ASAN_RT }$SHIM"
hsmcad_start
HSMCAD_PRELOAD=
[ -n "$HTTP_PORT" ] && [ -n "$ADMIN_PORT" ] || bail "no HTTP or admin listener in the log"

# fault WHICH N: the next N calls of WHICH fail (a new file: the shim
# sees the change).
fault() {
	head -c "$2" /dev/zero >"$CADIR/$1.ctl.new" && mv "$CADIR/$1.ctl.new" "$CADIR/$1.ctl"
}

# injected WHAT: how many times the shim said it made WHAT fail.
injected() {
	grep -c "^front-fault: $1 fails" "$CADIR/hsmcad.log"
}

# unanswered: the server closed the connection and sent nothing.
unanswered() {
	[ "$RC" = 0 ] && [ ! -s "$WORK/last.out" ]
}

# served: GET cacerts over TLS, a PKCS#7 of the CA certificates.
served() {
	curl -s -o "$WORK/cacerts.b64" -w '%{http_code}' --cacert "$CADIR/root.pem" \
		"$URL/cacerts" >"$WORK/status" 2>/dev/null &&
		[ "$(cat "$WORK/status")" = 200 ] &&
		base64 -d "$WORK/cacerts.b64" | openssl pkcs7 -inform DER -print_certs 2>/dev/null |
		grep -q '^subject=.*hsmca Test Device CA tfb'
}

# open_is LISTENER N: /metrics (admin API) comes to say N connections are
# open on LISTENER (the answer's own connection aside). Polls: a closed
# connection is counted out on the front's next turn.
open_is() {
	oi=0
	while [ $oi -lt 100 ]; do
		curl -s -o "$WORK/metrics.txt" --cacert "$CADIR/root.pem" \
			--cert "$WORK/dev-1.boot.pem" --key "$WORK/dev-1.boot.key" \
			"https://localhost:$ADMIN_PORT/metrics"
		grep -q "^hsmca_connections{listener=\"$1\"} $2\$" "$WORK/metrics.txt" && return 0
		oi=$((oi + 1))
		sleep 0.05
	done
	return 1
}

GET_CACERTS='GET /.well-known/est/cacerts HTTP/1.1\r\nHost: localhost\r\n\r\n'
check "before any fault: cacerts over TLS" served

# ---- SSL_new fails: the connection is closed, nothing is read or answered ----
n0=$(injected SSL_new)
fault ssl_new 1
raw_request "$PORT" "$GET_CACERTS"
check "SSL_new failed for the connection (the shim works in the sandboxed front)" \
	test "$(injected SSL_new)" -eq $((n0 + 1))
check "a plain GET cacerts on the EST port then: closed, no answer at all" unanswered
check "... the log says the connection was not set up" \
	grep -q 'EST listener: a connection could not be set up .*closed unserved' "$CADIR/hsmcad.log"
check "the EST listener serves TLS clients afterwards" served
check "... and counts no connection open" open_is est 0

fault ssl_new 1
raw_request "$ADMIN_PORT" 'GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n'
check "on the admin port too: closed, no answer" unanswered
check "... the admin API serves its operators afterwards" open_is admin 1
check "... the front counts no EST connection open" open_is est 0

# ---- a bufferevent callback that gave up, as before the fix: libevent ----
# ---- makes a plain connection of its own; the handlers close it      ----
n0=$(injected 'evhttp bufferevent callback')
fault bevcb 1
raw_request "$PORT" "$GET_CACERTS"
check "a request that reaches EST without TLS behind it: closed, no answer" unanswered
check "... the shim made the callback give up" \
	test "$(injected 'evhttp bufferevent callback')" -eq $((n0 + 1))
check "... and the log says why" \
	grep -q 'a request came without TLS on a TLS listener' "$CADIR/hsmcad.log"
check "... EST serves TLS clients afterwards" served
fault bevcb 1
raw_request "$ADMIN_PORT" 'GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n'
check "the same on the admin port: closed, no answer (no 401 in clear text)" unanswered
check "... and the admin API serves afterwards" open_is admin 1

# ---- plain HTTP: a connection not set up is closed, never served uncounted ----
CRL_GET='GET /crl/2.crl HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'
raw_request "$HTTP_PORT" "$CRL_GET"
check "before any fault: GET /crl/2.crl, 200" grep -q '^HTTP/1.1 200 ' "$WORK/last.out"
# No bufferevent for a connection, nor for the listener's next spare:
# the listener pauses (the log tells the first of a minute), and takes
# connections again once it has a spare.
fault bufferevent 2
raw_request "$HTTP_PORT" "$CRL_GET"
check "no bufferevent for a plain HTTP connection: closed, no answer" unanswered
check "... the log says so, and that the listener pauses without a spare" \
	grep -q 'HTTP listener: a connection could not be set up .*closed unserved; pausing the listener' \
	"$CADIR/hsmcad.log"
raw_request "$HTTP_PORT" "$CRL_GET"
check "... then it serves again" grep -q '^HTTP/1.1 200 ' "$WORK/last.out"
fault bufferevent 1
raw_request "$HTTP_PORT" "$CRL_GET"
check "one connection not set up, its spare replaced: closed, no answer" unanswered
raw_request "$HTTP_PORT" "$CRL_GET"
check "... and the next one is served at once" grep -q '^HTTP/1.1 200 ' "$WORK/last.out"
check "the shim failed all three" test "$(injected bufferevent_socket_new)" -eq 3
check "... and counts no HTTP connection open" open_is http 0
check "the front is still the one that started (no seccomp kill)" \
	sh -c "! grep -q 'seccomp' '$CADIR/hsmcad.log'"

hsmcad_stop
check "hsmcad stops cleanly" sh -c "! grep -qi 'ERROR: \\(Address\\|Leak\\)Sanitizer\\|runtime error' '$CADIR/hsmcad.log'"

done_testing
