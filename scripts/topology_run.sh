#!/usr/bin/env bash
# Production-topology run time (see scripts/topology_run.py): one whole ozon_inventory_sync run
# through the real scheduler (PostgreSQL metadata DB, LocalExecutor, api-server, scheduler,
# dag-processor, triggerer) against the Ozon simulator in a strict fixed window of 50 requests/s.
#
#   bash scripts/topology_run.sh --products 100000 --runs 2 --json
#
# Uses .venv as it is when it exists (a measurement installs nothing); creates it only when missing.
OZON_VENV_AS_IS=1 source "$(dirname "$0")/env.sh"
exec python scripts/topology_run.py "$@"
