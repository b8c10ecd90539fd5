#!/usr/bin/env bash
# Sanitizer.PqxxLostConnectionLeak: proves that the libpqxx leak named in
# lsan_suppressions.txt is real and is all that the suppression hides.
#   1. without suppressions, the reproduction leaks exactly 2,264 bytes in a
#      PGresult made by PQmakeEmptyPGresult (a libpqxx that no longer leaks
#      fails here: remove the suppression then);
#   2. with the suppression file, it exits cleanly.
# Usage: check_pqxx_leak.sh REPRO_BINARY SUPPRESSIONS   (needs TEST_DATABASE_URL)
set -euo pipefail
repro=$1
suppressions=$2
: "${TEST_DATABASE_URL:?TEST_DATABASE_URL is not set (run through scripts/test)}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# Reports to stderr here, not to the run's report folder: this leak is expected.
status=0
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=stderr:detect_leaks=1:exitcode=23" \
  LSAN_OPTIONS="" "$repro" "$TEST_DATABASE_URL" >"$out" 2>&1 || status=$?
if [[ $status -ne 23 ]] || ! grep -q 'in PQmakeEmptyPGresult' "$out" ||
  ! grep -q 'SUMMARY: AddressSanitizer: 2264 byte(s) leaked in 2 allocation(s)' "$out" ||
  ! grep -q 'Could not obtain client encoding: not connected' "$out"; then
  echo "FAIL: expected the libpqxx leak (exit 23, 2264 bytes, PQmakeEmptyPGresult); got exit $status:"
  cat "$out"
  exit 1
fi
echo "ok: without suppressions the reproduction leaks 2,264 bytes in a PGresult"

status=0
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=stderr:detect_leaks=1:exitcode=23" \
  LSAN_OPTIONS="suppressions=$suppressions" "$repro" "$TEST_DATABASE_URL" >"$out" 2>&1 || status=$?
if [[ $status -ne 0 ]] || grep -q 'ERROR: LeakSanitizer' "$out"; then
  echo "FAIL: with $suppressions the reproduction still fails (exit $status):"
  cat "$out"
  exit 1
fi
echo "ok: with the suppression it exits cleanly"
