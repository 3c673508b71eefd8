#!/bin/sh
# cfssl.sh [start] [--tls] | stop
#
# The cfssl peer for the enrollment benchmarks: an EC P-256 CA with a file
# key and a signing profile equivalent to a device client certificate
# (365 days, digital signature, client auth), served by `cfssl serve` on
# 127.0.0.1.  start prints shell assignments for eval:
#   CFSSL_PID=... CFSSL_PORT=... CFSSL_URL=http://127.0.0.1:PORT/api/v1/cfssl/sign
# With --tls cfssl serves HTTPS and requires a client certificate, like
# hsmcad's EST; the client files are printed too (CFSSL_CACERT,
# CFSSL_CLIENT_CERT, CFSSL_CLIENT_KEY).
#
# Environment: CFSSL_DIR (state, default $TMPDIR/hsmca-bench-cfssl),
# CFSSL_PORT (default: a free one), CFSSL_LOGLEVEL (cfssl's, default 1).
set -eu

dir=${CFSSL_DIR:-${TMPDIR:-/tmp}/hsmca-bench-cfssl}
pidfile=$dir/cfssl.pid

die() {
	echo "cfssl.sh: $*" >&2
	exit 1
}

# The pid in the pid file, if that process is still a cfssl.
running_pid() {
	[ -s "$pidfile" ] || return 1
	pid=$(cat "$pidfile")
	case $pid in ''|*[!0-9]*) return 1 ;; esac
	[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = cfssl ] || return 1
	echo "$pid"
}

stop() {
	if ! pid=$(running_pid); then
		rm -f "$pidfile"
		echo "cfssl.sh: not running" >&2
		return 0
	fi
	kill "$pid"
	i=0
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -eq 200 ]; then
			kill -9 "$pid" 2>/dev/null || true
		elif [ $i -gt 300 ]; then
			die "pid $pid does not exit"
		fi
		sleep 0.05
	done
	rm -f "$pidfile"
	echo "cfssl.sh: stopped pid $pid" >&2
}

install_cfssl() {
	command -v cfssl >/dev/null 2>&1 && return 0
	[ "$(id -u)" -eq 0 ] || die "cfssl missing; run as root to install golang-cfssl"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y golang-cfssl >&2 ||
	    { apt-get update >&2 && apt-get install -y golang-cfssl >&2; } ||
	    die "cannot install golang-cfssl"
}

make_ca() {
	[ -s "$dir/ca.pem" ] && [ -s "$dir/ca-key.pem" ] && return 0
	( umask 077; openssl ecparam -name prime256v1 -genkey -noout \
	    -out "$dir/ca-key.pem" )
	openssl req -new -x509 -key "$dir/ca-key.pem" -sha256 -days 3650 \
	    -subj "/CN=hsmca bench cfssl CA" \
	    -addext basicConstraints=critical,CA:TRUE \
	    -addext keyUsage=critical,keyCertSign,cRLSign \
	    -out "$dir/ca.pem" 2>/dev/null
}

# A separate CA for the transport, a server cert for 127.0.0.1, a client.
make_tls() {
	[ -s "$dir/tls-client.pem" ] && return 0
	( umask 077
	  for k in tls-ca tls-server tls-client; do
		openssl ecparam -name prime256v1 -genkey -noout \
		    -out "$dir/$k-key.pem"
	  done )
	openssl req -new -x509 -key "$dir/tls-ca-key.pem" -sha256 -days 3650 \
	    -subj "/CN=hsmca bench TLS CA" \
	    -addext basicConstraints=critical,CA:TRUE \
	    -addext keyUsage=critical,keyCertSign \
	    -out "$dir/tls-ca.pem" 2>/dev/null
	printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" \
	    "extendedKeyUsage=serverAuth" \
	    "keyUsage=critical,digitalSignature" > "$dir/tls-server.ext"
	printf '%s\n' "extendedKeyUsage=clientAuth" \
	    "keyUsage=critical,digitalSignature" > "$dir/tls-client.ext"
	for k in server client; do
		cn=127.0.0.1
		[ $k = client ] && cn=bench-client
		openssl req -new -key "$dir/tls-$k-key.pem" -subj "/CN=$cn" \
		    -out "$dir/tls-$k.csr"
		openssl x509 -req -in "$dir/tls-$k.csr" -CA "$dir/tls-ca.pem" \
		    -CAkey "$dir/tls-ca-key.pem" -CAcreateserial -days 365 \
		    -sha256 -extfile "$dir/tls-$k.ext" \
		    -out "$dir/tls-$k.pem" 2>/dev/null
	done
}

make_config() {
	cat > "$dir/config.json" <<-EOF2
	{
	  "signing": {
	    "default": {
	      "expiry": "8760h",
	      "usages": ["digital signature", "client auth"]
	    },
	    "profiles": {
	      "device": {
	        "expiry": "8760h",
	        "usages": ["digital signature", "client auth"]
	      }
	    }
	  }
	}
	EOF2
}

free_port() {
	used=$(ss -Htln 2>/dev/null | awk '{ n = split($4, a, ":"); print a[n] }')
	while :; do
		p=$(( $(od -An -N2 -tu2 /dev/urandom) % 40000 + 20000 ))
		echo "$used" | grep -qx "$p" || { echo "$p"; return; }
	done
}

# Poll until cfssl answers HTTP at all (any status); fail if it died.
wait_up() {
	i=0
	while :; do
		kill -0 "$1" 2>/dev/null || return 1
		# shellcheck disable=SC2086 # curl_tls is a list of options
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
		    $curl_tls -X POST -d '{}' "$url" 2>/dev/null) || true
		[ "${code:-000}" != 000 ] && return 0
		i=$((i + 1))
		[ $i -lt 600 ] || return 1
		sleep 0.05
	done
}

start() {
	tls=0
	for a; do
		case $a in
		--tls)	tls=1 ;;
		*)	die "usage: $0 [start] [--tls] | stop" ;;
		esac
	done
	if pid=$(running_pid); then
		die "already running (pid $pid); run $0 stop first"
	fi
	install_cfssl
	command -v curl >/dev/null 2>&1 || die "curl is needed to poll cfssl"
	mkdir -p "$dir"
	make_ca
	make_config
	tlsargs=
	curl_tls=
	scheme=http
	if [ $tls -eq 1 ]; then
		make_tls
		tlsargs="-tls-cert $dir/tls-server.pem -tls-key $dir/tls-server-key.pem -mutual-tls-ca $dir/tls-ca.pem"
		curl_tls="--cacert $dir/tls-ca.pem --cert $dir/tls-client.pem --key $dir/tls-client-key.pem"
		scheme=https
	fi

	tries=0
	while :; do
		port=${CFSSL_PORT:-$(free_port)}
		url=$scheme://127.0.0.1:$port/api/v1/cfssl/sign
		# shellcheck disable=SC2086
		cfssl serve -address 127.0.0.1 -port "$port" \
		    -ca "$dir/ca.pem" -ca-key "$dir/ca-key.pem" \
		    -config "$dir/config.json" \
		    -loglevel "${CFSSL_LOGLEVEL:-1}" $tlsargs \
		    > "$dir/cfssl.log" 2>&1 < /dev/null &
		pid=$!
		if wait_up "$pid"; then
			break
		fi
		kill "$pid" 2>/dev/null || true
		tries=$((tries + 1))
		if [ -n "${CFSSL_PORT:-}" ] || [ $tries -ge 5 ]; then
			tail -5 "$dir/cfssl.log" >&2
			die "cfssl serve did not come up"
		fi
	done
	echo "$pid" > "$pidfile"
	echo "CFSSL_PID=$pid CFSSL_PORT=$port CFSSL_URL=$url"
	if [ $tls -eq 1 ]; then
		echo "CFSSL_CACERT=$dir/tls-ca.pem CFSSL_CLIENT_CERT=$dir/tls-client.pem CFSSL_CLIENT_KEY=$dir/tls-client-key.pem"
	fi
}

case ${1:-} in
stop)	stop ;;
start)	shift; start "$@" ;;
*)	start "$@" ;;
esac
