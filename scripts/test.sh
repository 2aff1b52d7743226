#!/usr/bin/env bash
# The test suite: starts its own PostgreSQL (from the machine's binaries) and Ozon simulator.
source "$(dirname "$0")/env.sh"
ruff check .
exec python -m pytest "$@"
