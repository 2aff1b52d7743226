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
  waits="$VENV/faketime-waits.so"  # see scripts/faketime/waits.c: why the waits bypass libfaketime
  if [ ! -f "$waits" ] || [ "$ROOT/scripts/faketime/waits.c" -nt "$waits" ]; then
    gcc -O2 -shared -fPIC -o "$waits" "$ROOT/scripts/faketime/waits.c"
  fi
  export LD_PRELOAD="$waits:$faketime_lib" FAKETIME="$OZON_TEST_CLOCK"
  # Monotonic clocks stay real (Python and PostgreSQL time their waits by them), so libfaketime's
  # monotonic fix has nothing to fix and is off: it made Chromium's waits late (docs/contributing.md, "Tests").
  export FAKETIME_DONT_FAKE_MONOTONIC=1 FAKETIME_FORCE_MONOTONIC_FIX=0
  echo "pytest with the clock moved by $OZON_TEST_CLOCK: $(date -u)" >&2
fi
exec python -m pytest "$@"
