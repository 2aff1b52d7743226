#!/usr/bin/env bash
# The test suite: lint, format and type checks, then pytest (it starts its own PostgreSQL,
# Ozon simulator, SMTP server and Airflow components).
source "$(dirname "$0")/env.sh"
ruff check .
ruff format --check .
mypy -p ozon_inventory
exec python -m pytest "$@"
