#!/bin/sh
# ocsp-bench.sh: OCSP responses/s of hsmcad (issue 4) against its peers,
# side by side on the same machine with the same request mix:
#
#   hsmcad        a real hsmcad on a fresh SoftHSM2 token (hsmcad-bench-env.sh,
#                 HTTP=1): N device certificates issued with `hsmca issue`,
#                 a quarter of them revoked (keyCompromise); answered from
#                 its cache of pre-signed responses.
#   openssl-ocsp  `openssl ocsp -index index.txt -port P` (the reference
#                 responder) for a software CA (P-256 key file, like the
#                 token's CA key), whose index.txt lists the same serials
#                 with the same status; it signs every response on the fly
#                 and answers one request at a time (OSSL_MULTI=n for
#                 `-multi n` processes); its responses carry the CA's key
#                 id and no certificate (hsmcad's, with the default
#                 ocsp-signer = responder, carry the delegated responder's
#                 certificate: 748 bytes instead of 280). Its GET is at
#                 /<base64> (it ignores any path), HTTP/1.0 without
#                 keep-alive; it is driven by curl, not wrk (see run_curl).
#   nginx         a static file the size of one hsmcad response at the same
#                 URL shape (/ocsp/<base64>): the ceiling for serving
#                 pre-signed responses over HTTP.
#
# Each side gets one GET per certificate (RFC 6960 Appendix A: base64 of
# the DER request, URL-encoded; no nonce), cycled by wrk (keep-alive,
# -c 32 -t 2 -d 5s). ROUNDS rounds alternate the order of the sides; the
# last line prints the ratios of the medians. Not part of `make check`.
#
# usage: bench/ocsp-bench.sh
# Environment: N (200 certificates), ROUNDS (5), DURATION (5s),
#   CONNS (32), THREADS (2), OSSL_MULTI (1), KEEP=1 (keep the work
#   directory), PERF=1 (perf top-like profile of hsmcad for 5 s), BUILD
#   (the build directory, default ./build, as for hsmcad-bench-env.sh).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-200}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
OSSL_MULTI=${OSSL_MULTI:-1}

# ---- tools (idempotent) ----
if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
	apt-get install -y wrk nginx-light >/dev/null 2>&1 ||
	    { apt-get update >/dev/null 2>&1 || true; apt-get install -y wrk nginx-light >/dev/null; }
fi
for t in wrk nginx openssl curl softhsm2-util; do
	command -v $t >/dev/null || { echo "$0: $t is missing" >&2; exit 2; }
done

W=$(mktemp -d /tmp/ocsp-bench.XXXXXX)
chmod 755 "$W"	# nginx workers (nobody) read $W/www
NGINX_PID=
OSSL_PID=
cleanup() {
	[ -n "$OSSL_PID" ] && kill "$OSSL_PID" 2>/dev/null
	[ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null
	true
	BENCH_DIR=$W/hsmcad "$top/bench/hsmcad-bench-env.sh" stop
	[ -n "${HSMCAD_PID:-}" ] && kill "$HSMCAD_PID" 2>/dev/null
	if [ "${KEEP:-0}" = 1 ]; then echo "work directory: $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# urlenc FILE: base64 of FILE, URL-encoded
urlenc() { base64 -w0 "$1" | sed 's|+|%2B|g; s|/|%2F|g; s|=|%3D|g'; }

# ---- hsmcad, N certificates, a quarter revoked ----
eval "$(BENCH_DIR=$W/hsmcad HTTP=1 "$top/bench/hsmcad-bench-env.sh" start)"
export SOFTHSM2_CONF
[ -n "$HSMCAD_HTTP_PORT" ] || { echo "$0: hsmcad has no HTTP listener" >&2; exit 1; }
HSMCA="${BUILD:-$top/build}/cli/hsmca -c $W/hsmcad/hsmca.conf"
$HSMCA ca download 2 >"$W/gen2.pem"
cat "$W/gen2.pem" "$W/hsmcad/root.pem" >"$W/chain.pem"
"$top/bench/make-csrs.sh" "$N" "$W/csrs" >/dev/null
mkdir -p "$W/certs"
# One at a time, retried: SoftHSM2's file store can miss the token while
# another process holds it.
for f in "$W/csrs"/bench-device-*.csr; do
	b=$(basename "$f" .csr); t=0
	until $HSMCA issue --csr "$f" --profile device --out "$W/certs/$b.pem" >/dev/null 2>>"$W/issue.log"; do
		t=$((t + 1)); [ $t -lt 5 ] || { cat "$W/issue.log" >&2; exit 1; }; sleep 0.2
	done
done
: >"$W/serials"; : >"$W/revoked"
i=0
for c in "$W/certs"/*.pem; do
	s=$(openssl x509 -in "$c" -noout -serial | sed 's/serial=//')
	echo "$s $c" >>"$W/serials"
	[ $((i % 4)) = 3 ] && echo "$s" >>"$W/revoked"
	i=$((i + 1))
done
NREV=$(wc -l <"$W/revoked")
$HSMCA revoke --serials "$W/revoked" --reason keyCompromise >/dev/null
REVT=$(date -u +%y%m%d%H%M%SZ)
HURL=http://127.0.0.1:$HSMCAD_HTTP_PORT
one_rev=$(grep "^$(head -1 "$W/revoked") " "$W/serials" | cut -d' ' -f2)
i=0
until openssl ocsp -issuer "$W/gen2.pem" -cert "$one_rev" -url "$HURL/ocsp" -noverify 2>/dev/null |
    grep -q ": revoked"; do
	i=$((i + 1)); [ $i -lt 300 ] || { echo "$0: hsmcad never said revoked" >&2; exit 1; }
	sleep 0.1
done

# ---- the request mix: one GET path per certificate ----
mkdir -p "$W/req"
: >"$W/paths.hsmcad"
while read -r s c; do
	openssl ocsp -issuer "$W/gen2.pem" -cert "$c" -no_nonce -reqout "$W/req/h-$s.der" >/dev/null 2>&1
	echo "/ocsp/$(urlenc "$W/req/h-$s.der")" >>"$W/paths.hsmcad"
done <"$W/serials"

# Every path answered from the cache before timing: successful, and
# good/revoked as expected (a miss would be signed on demand, rate-limited).
check_all() {	# check_all BASEURL PATHS ISSUER CAFILE TAG
	n=0; : >"$W/$5.cfg"
	while read -r p; do
		n=$((n + 1)); printf 'url = "%s%s"\noutput = "%s/%s-%d.der"\n' "$1" "$p" "$W" "$5" $n >>"$W/$5.cfg"
	done <"$2"
	curl -s -Z --parallel-max 16 -K "$W/$5.cfg" 2>/dev/null
	good=0; rev=0; n=0
	while read -r s c; do
		n=$((n + 1))
		st=$(openssl ocsp -respin "$W/$5-$n.der" -issuer "$3" -serial "0x$s" -CAfile "$4" 2>&1) || true
		echo "$st" | grep -q "Response verify OK" || continue
		case $st in *": good"*) good=$((good + 1)) ;; *": revoked"*) rev=$((rev + 1)) ;; esac
	done <"$W/serials"
	echo "$good $rev"
}
i=0
while :; do
	r=$(check_all "$HURL" "$W/paths.hsmcad" "$W/gen2.pem" "$W/chain.pem" hsmcad)
	[ "$r" = "$((N - NREV)) $NREV" ] && break
	i=$((i + 1)); [ $i -lt 30 ] || { echo "$0: hsmcad answers $r (good revoked), want $((N - NREV)) $NREV" >&2; exit 1; }
	sleep 1
done
echo "hsmcad: $N verified responses, $r (good revoked)"
RESP_SIZE=$(wc -c <"$W/hsmcad-1.der")

# ---- openssl ocsp: a software CA, the same serials and status ----
mkdir -p "$W/ossl"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/ossl/ca.key" \
	-subj "/CN=hsmca Bench CA" -days 30 -addext basicConstraints=critical,CA:TRUE \
	-addext keyUsage=critical,keyCertSign,cRLSign,digitalSignature -out "$W/ossl/ca.pem" 2>/dev/null
exp=$(date -u -d '+365 days' +%y%m%d%H%M%SZ)
: >"$W/ossl/index.txt"; : >"$W/paths.ossl"
while read -r s c; do
	if grep -qx "$s" "$W/revoked"; then
		printf 'R\t%s\t%s,keyCompromise\t%s\tunknown\t/CN=%s\n' "$exp" "$REVT" "$s" "$(basename "$c" .pem)"
	else
		printf 'V\t%s\t\t%s\tunknown\t/CN=%s\n' "$exp" "$s" "$(basename "$c" .pem)"
	fi >>"$W/ossl/index.txt"
	openssl ocsp -issuer "$W/ossl/ca.pem" -serial "0x$s" -no_nonce -reqout "$W/req/o-$s.der" >/dev/null 2>&1
	echo "/$(urlenc "$W/req/o-$s.der")" >>"$W/paths.ossl"
done <"$W/serials"
OPORT=$(free_port)
openssl ocsp -index "$W/ossl/index.txt" -port "$OPORT" -rsigner "$W/ossl/ca.pem" \
	-rkey "$W/ossl/ca.key" -CA "$W/ossl/ca.pem" -ndays 1 -ignore_err -resp_key_id -resp_no_certs \
	$([ "$OSSL_MULTI" -gt 1 ] && echo "-multi $OSSL_MULTI") >"$W/ossl/log" 2>&1 &
OSSL_PID=$!
OURL=http://127.0.0.1:$OPORT
i=0; until curl -s -o /dev/null "$OURL/"; do
	i=$((i + 1)); [ $i -lt 100 ] || { cat "$W/ossl/log" >&2; exit 1; }; sleep 0.05
done
r=$(check_all "$OURL" "$W/paths.ossl" "$W/ossl/ca.pem" "$W/ossl/ca.pem" ossl)
[ "$r" = "$((N - NREV)) $NREV" ] || { echo "$0: openssl ocsp answers $r (good revoked) to GET" >&2; exit 1; }
echo "openssl-ocsp: $N verified responses (GET), $r (good revoked)"

# ---- nginx: a static file of the size of one hsmcad response ----
mkdir -p "$W/www" "$W/nginx/tmp"
head -c "$RESP_SIZE" "$W/hsmcad-1.der" >"$W/www/resp.der"
NPORT=$(free_port)
cat >"$W/nginx/nginx.conf" <<EOF
worker_processes auto;
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $W/nginx/tmp/body;
	proxy_temp_path $W/nginx/tmp/proxy;
	fastcgi_temp_path $W/nginx/tmp/fastcgi;
	uwsgi_temp_path $W/nginx/tmp/uwsgi;
	scgi_temp_path $W/nginx/tmp/scgi;
	keepalive_requests 1000000;
	server {
		listen 127.0.0.1:$NPORT;
		root $W/www;
		location /ocsp/ {
			default_type application/ocsp-response;
			try_files /resp.der =404;
		}
	}
}
EOF
nginx -p "$W/nginx" -c "$W/nginx/nginx.conf" -g 'daemon off;' &
NGINX_PID=$!
NURL=http://127.0.0.1:$NPORT
i=0; until curl -s -o /dev/null "$NURL/"; do
	i=$((i + 1)); [ $i -lt 100 ] || { cat "$W/nginx/error.log" >&2; exit 1; }; sleep 0.05
done
curl -s -o "$W/nginx-1.der" "$NURL$(head -1 "$W/paths.hsmcad")"
cmp -s "$W/nginx-1.der" "$W/www/resp.der" &&
    openssl ocsp -respin "$W/nginx-1.der" -resp_text -noverify 2>/dev/null | grep -q "Cert Status: good" ||
    { echo "$0: nginx does not serve the response" >&2; exit 1; }
echo "nginx: serves a $RESP_SIZE-byte OCSP response (parsed: good) at /ocsp/<base64>"

# ---- wrk ----
cat >"$W/paths.lua" <<'EOF'
-- GET each path of the file $PATHS in turn, from a random start per thread
local paths = {}
for line in io.lines(os.getenv("PATHS")) do paths[#paths + 1] = line end
local i = 0
init = function(args) math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16)); i = math.random(#paths) end
request = function()
	i = i % #paths + 1
	return wrk.format("GET", paths[i])
end
EOF
# run SIDE URL PATHS: responses/s (wrk's Requests/sec); errors are reported
run() {
	[ "$1" = openssl-ocsp ] && { run_curl "$@"; return; }
	PATHS=$3 wrk -t "$THREADS" -c "$CONNS" -d "$DURATION" -s "$W/paths.lua" "$2" >"$W/wrk.$1" 2>&1
	if grep -Eq "Non-2xx|Socket errors: connect [1-9]|read [1-9]|timeout [1-9]" "$W/wrk.$1"; then
		echo "$0: $1: errors" >&2; cat "$W/wrk.$1" >&2
	fi
	sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$W/wrk.$1"
}
# openssl ocsp (3.0) spins forever on a connection closed without a
# request, which is how wrk checks the address before it starts: its
# side is driven by curl instead, $CONNS transfers at a time (a new
# connection for each, as openssl closes them anyway), OSSL_REQS of them
# cycling through the paths; responses/s counts the 200s.
OSSL_REQS=${OSSL_REQS:-20000}
run_curl() {
	[ -f "$W/curl.$1.cfg" ] || {
		n=0
		while [ $n -lt "$OSSL_REQS" ]; do
			while read -r p && [ $n -lt "$OSSL_REQS" ]; do
				printf 'url = "%s%s"\noutput = "/dev/null"\n' "$2" "$p"; n=$((n + 1))
			done <"$3"
		done >"$W/curl.$1.cfg"
	}
	t0=$(date +%s%N)
	curl -s -Z --parallel-immediate --parallel-max "$CONNS" -w '%{http_code}\n' \
	    -K "$W/curl.$1.cfg" >"$W/curl.$1.out" 2>/dev/null || true
	t1=$(date +%s%N)
	ok=$(grep -c '^200$' "$W/curl.$1.out" || true)
	[ "$ok" = "$OSSL_REQS" ] || echo "$0: $1: $ok of $OSSL_REQS answered 200" >&2
	awk -v n="$ok" -v t=$((t1 - t0)) 'BEGIN { printf "%.2f\n", n / (t / 1e9) }'
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

SIDES="hsmcad openssl-ocsp nginx"
url_of() { case $1 in hsmcad) echo "$HURL" ;; openssl-ocsp) echo "$OURL" ;; nginx) echo "$NURL" ;; esac; }
paths_of() { case $1 in openssl-ocsp) echo "$W/paths.ossl" ;; *) echo "$W/paths.hsmcad" ;; esac; }
echo "$N requests ($NREV revoked), wrk -t $THREADS -c $CONNS -d $DURATION, keep-alive; responses/s:"
r=1
while [ $r -le "$ROUNDS" ]; do
	line="round $r:"
	for s in $SIDES; do
		v=$(run "$s" "$(url_of "$s")" "$(paths_of "$s")")
		echo "$v" >>"$W/res.$s"
		line="$line $s=$v"
	done
	echo "$line"
	SIDES="$(echo "$SIDES" | cut -d' ' -f2-) $(echo "$SIDES" | cut -d' ' -f1)"
	r=$((r + 1))
done

# The same client for both: hsmcad driven by curl like openssl ocsp (once).
echo "cross-check, curl for both (new connection per request): hsmcad=$(run_curl hsmcad-curl "$HURL" "$W/paths.hsmcad") openssl-ocsp=$(run_curl openssl-ocsp "$OURL" "$W/paths.ossl")"

if [ "${PERF:-0}" = 1 ] && command -v perf >/dev/null; then
	PATHS=$W/paths.hsmcad wrk -t "$THREADS" -c "$CONNS" -d 7s -s "$W/paths.lua" "$HURL" >/dev/null 2>&1 &
	wrk_pid=$!
	sleep 1
	perf record -p "$HSMCAD_PID" -o "$W/perf.data" -- sleep 5 >/dev/null 2>&1 || true
	wait "$wrk_pid"
	perf report -i "$W/perf.data" --no-children --sort dso,sym --stdio 2>/dev/null |
	    grep -E '^ +[0-9]' | head -25 >&2 || true
fi

H=$(median <"$W/res.hsmcad"); O=$(median <"$W/res.openssl-ocsp"); X=$(median <"$W/res.nginx")
echo "medians: hsmcad=$H openssl-ocsp=$O nginx=$X (responses/s)"
awk -v h="$H" -v o="$O" -v x="$X" -v n="$ROUNDS" 'BEGIN {
	printf "hsmcad/nginx=%.2f hsmcad/openssl-ocsp=%.2f (median of %d, responses/s: hsmcad %.0f, openssl-ocsp %.0f, nginx %.0f)\n", h / x, h / o, n, h, o, x }'
