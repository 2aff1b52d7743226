#!/usr/bin/env bash
# The main job on this machine: a local PostgreSQL (.pgdata/), the bundled Ozon simulator with the
# old system's catalogue, one full run of ozon_inventory_sync, and a summary.
source "$(dirname "$0")/env.sh"
exec python scripts/demo.py "$@"
