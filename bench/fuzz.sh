#!/bin/sh
# fuzz.sh: build the libFuzzer targets of tests/fuzz with clang, ASan and
# UBSan (configure --enable-fuzzing) and run each for a set time, one
# after the other. Seeds come from tests/fuzz/corpus/TARGET (read only);
# what libFuzzer adds goes to the work directory, and so does any input
# that crashes (artifacts/TARGET/crash-*): fix the code, then copy the
# input into the seed corpus and list it in Makefile.am (FUZZ_CORPUS) so
# `make check` replays it from then on. docs/fuzzing.md keeps the results.
#
# The last line holds, per target: executions, executions per second,
# and crashes.
#
# usage: bench/fuzz.sh [SECONDS [TARGET...]]
#   SECONDS  per target, default 60
#   TARGET   csr est ocsp config admin ipc (default: all)
# Environment:
#   FUZZ_BUILD  build directory (default /tmp/hsmca-fuzz-build)
#   FUZZ_WORK   corpus and artifacts (default /tmp/hsmca-fuzz-work)
#   CC          clang with libFuzzer (default clang-14, installed from
#               Debian's clang-14 and libclang-rt-14-dev when missing)
set -eu

secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-csr est ocsp config admin ipc}
src=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD:-/tmp/hsmca-fuzz-build}
work=${FUZZ_WORK:-/tmp/hsmca-fuzz-work}
CC=${CC:-clang-14}

# libFuzzer: clang's runtime library, not part of the normal build.
if ! command -v "$CC" >/dev/null 2>&1 ||
    ! dpkg -s libclang-rt-14-dev >/dev/null 2>&1; then
	echo "fuzz.sh: installing clang-14 and libclang-rt-14-dev" >&2
	sudo=""
	[ "$(id -u)" -ne 0 ] && sudo=sudo
	$sudo apt-get install -y --no-install-recommends clang-14 \
	    libclang-rt-14-dev >&2
fi

mkdir -p "$build" "$work"
cd "$build"
if [ ! -f Makefile ] || ! grep -q 'FUZZ_LDFLAGS = -fsanitize=fuzzer' Makefile; then
	"$src/configure" -q CC="$CC" --enable-fuzzing >&2
fi
bins=""
for t in $targets; do
	bins="$bins tests/fuzz/fuzz_$t"
done
make -j2 $bins >&2

summary=""
for t in $targets; do
	case $t in
	config)	maxlen=16384 ;;
	ocsp)	maxlen=4200 ;;
	*)	maxlen=8192 ;;
	esac
	mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
	log=$work/$t.log
	before=$(find "$work/artifacts/$t" -type f | wc -l)
	echo "fuzz.sh: fuzz_$t for ${secs}s (log $log)" >&2
	# Crashes end a run early; -fork would go on but hides the count
	# behind its own bookkeeping: one crash per run is enough to act on.
	set +e
	"$build/tests/fuzz/fuzz_$t" -max_total_time="$secs" \
	    -max_len="$maxlen" -timeout=10 -rss_limit_mb=2048 \
	    -print_final_stats=1 \
	    -artifact_prefix="$work/artifacts/$t/" \
	    "$work/corpus/$t" "$src/tests/fuzz/corpus/$t" >"$log" 2>&1
	rc=$?
	set -e
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	cov=$(grep -E '^#[0-9]+' "$log" | tail -1 |
	    sed -n 's/.* cov: \([0-9]*\).*corp: \([0-9]*\).*/cov \1 corp \2/p')
	crashes=$(( $(find "$work/artifacts/$t" -type f | wc -l) - before ))
	echo "fuzz_$t: rc $rc, ${execs:-?} execs, ${rate:-?}/s, ${cov:-?}," \
	    "$crashes new artifacts in $work/artifacts/$t" >&2
	[ "$rc" -ne 0 ] && grep -E 'ERROR|invariant|SUMMARY' "$log" | head -5 >&2
	summary="$summary $t: ${execs:-?} execs ${rate:-?}/s $crashes crashes;"
done
echo "fuzz ${secs}s each:$summary"
