#!/bin/sh
# Install what is needed, build, and run the whole test suite: unit tests
# (cmocka), integration tests (a fresh SoftHSM2 token per test, real
# openssl, certtool, pkcs11-tool), then `make distcheck`. Ends with the
# line "N passed, N failed"; exits non-zero on any failure.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

"$top/scripts/install-deps.sh" || { echo "0 passed, 1 failed"; exit 1; }
"$top/scripts/build.sh" || { echo "0 passed, 1 failed"; exit 1; }

cd "$top/build"
make -j"$(nproc)" check >check.out 2>&1
check_rc=$?
# Every TAP result counts: unit test cases and integration assertions.
count() { sed -n "s/^# $1: *//p" test-suite.log 2>/dev/null | head -1; }
# failures [DIR]: each failing assertion with the lines after it in its
# test's log (what the test printed about it), under DIR (default tests).
failures() {
	for log in $(grep -El '^(not ok|Bail out)' $(find "${1:-tests}" -name '*.log') 2>/dev/null); do
		echo "---- $log"; grep -E -B6 -A12 '^(not ok|Bail out)' "$log" | head -60
	done
}
pass=$(count PASS); fail=$(count FAIL); error=$(count ERROR); xpass=$(count XPASS)
skip=$(count SKIP)
pass=${pass:-0}; fail=$((${fail:-0} + ${error:-0} + ${xpass:-0}))
if [ "$check_rc" -ne 0 ]; then
	grep -E '^(FAIL|ERROR|XPASS):' check.out || tail -40 check.out
	failures
	[ "$fail" -gt 0 ] || fail=1
fi
echo "make check: $pass passed, $fail failed, ${skip:-0} skipped"

# The same suite again under AddressSanitizer, UBSan and LeakSanitizer.
if [ "${HSMCA_SKIP_ASAN:-0}" != 1 ]; then
	mkdir -p "$top/build-asan"
	cd "$top/build-asan"
	if { [ -f Makefile ] || ../configure --enable-werror --enable-asan >configure.out 2>&1; } &&
	    make -j"$(nproc)" >make.out 2>&1; then
		make -j"$(nproc)" check >check.out 2>&1
		asan_rc=$?
		apass=$(count PASS); afail=$(count FAIL); aerror=$(count ERROR)
		apass=${apass:-0}; afail=$((${afail:-0} + ${aerror:-0}))
		if [ "$asan_rc" -ne 0 ]; then
			grep -E '^(FAIL|ERROR):' check.out || tail -40 check.out
			failures
			[ "$afail" -gt 0 ] || afail=1
		fi
	else
		tail -40 configure.out make.out 2>/dev/null
		apass=0; afail=1
	fi
	echo "make check (ASan+UBSan): $apass passed, $afail failed"
	pass=$((pass + apass)); fail=$((fail + afail))
	cd "$top/build"
fi

if [ "${HSMCA_SKIP_DISTCHECK:-0}" != 1 ]; then
	if make distcheck DISTCHECK_CONFIGURE_FLAGS=--enable-werror >distcheck.out 2>&1; then
		echo "make distcheck: ok"
		pass=$((pass + 1))
	else
		tail -40 distcheck.out
		failures "$(ls -d hsmca-*/_build 2>/dev/null | head -1)"
		echo "make distcheck: FAILED"
		fail=$((fail + 1))
	fi
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
