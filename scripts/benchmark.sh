#!/usr/bin/env bash
# The performance benchmark (see scripts/benchmark.py); figures are printed, never asserted.
source "$(dirname "$0")/env.sh"
exec python scripts/benchmark.py "$@"
