#!/usr/bin/env bash
# The test suite: lint, format and type checks, then pytest (it starts its own PostgreSQL,
# Ozon simulator, SMTP server and Airflow components).
#
# OZON_TEST_CLOCK=+365d (a libfaketime offset: +30d, -2d, +1y ...) runs pytest with the wall clock of
# every process it starts moved by that much - PostgreSQL, Airflow's components and Chromium
# included - to show that no test depends on today's date.
source "$(dirname "$0")/env.sh"
source "$ROOT/scripts/system_deps.sh"
ruff check .
ruff format --check .
mypy -p ozon_inventory
if [ -n "${OZON_TEST_CLOCK:-}" ]; then
  faketime_lib="$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -n 1)"
  [ -n "$faketime_lib" ] || { echo "libfaketime.so.1 not found (Debian package libfaketime)" >&2; exit 1; }
  # see scripts/faketime/waits.c: why the waits bypass libfaketime. The tests' PostgreSQL runs as the
  # postgres user when we are root, and the loader silently skips a preload it cannot read (a clone
  # in a private folder, as mktemp -d makes): its timeouts (lock_timeout, statement_timeout) would
  # then never fire. So the shim goes to a folder every user can read, named by its source's hash.
  waits_dir="${TMPDIR:-/tmp}/ozon-inventory-faketime"
  mkdir -p "$waits_dir" && chmod 755 "$waits_dir"
  waits="$waits_dir/waits-$(sha256sum "$ROOT/scripts/faketime/waits.c" | cut -c1-16).so"
  if [ ! -f "$waits" ]; then
    gcc -O2 -shared -fPIC -o "$waits.tmp.$$" "$ROOT/scripts/faketime/waits.c" && mv "$waits.tmp.$$" "$waits"
  fi
  chmod 755 "$waits"
  export LD_PRELOAD="$waits:$faketime_lib" FAKETIME="$OZON_TEST_CLOCK"
  # Monotonic clocks stay real (Python and PostgreSQL time their waits by them), so libfaketime's
  # monotonic fix has nothing to fix and is off: it made Chromium's waits late (docs/contributing.md, "Tests").
  export FAKETIME_DONT_FAKE_MONOTONIC=1 FAKETIME_FORCE_MONOTONIC_FIX=0
  echo "pytest with the clock moved by $OZON_TEST_CLOCK: $(date -u)" >&2
fi
exec python -m pytest "$@"
