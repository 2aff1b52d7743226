#!/usr/bin/env bash
# The Celery scale-out proof (docs/operations.md, "Scale-out on Celery"): ozon_inventory_sync on
# CeleryExecutor with two worker hosts (network namespaces on a bridge), Redis as the broker, staging
# on an S3 object store (moto_server), against the Ozon simulator in a strict fixed one-second window.
#
#   bash scripts/celery_proof.sh                       # 20 accounts, 100,000 products, kill a worker
#   bash scripts/celery_proof.sh --big-products 20000  # a quicker run; any option of tests/celery_proof/proof.py
#
# Needs root (ip netns), the PostgreSQL server binaries and Debian's redis-server (installed here with
# apt-get when missing). Everything it starts, and the namespaces, veths and bridge, are removed at the
# end, also when it fails or is interrupted; its work folder (logs, figures.json) is kept on failure
# or with KEEP_WORK=1. Takes about 6 minutes on 2 cores.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"   # .venv with the pinned requirements (celery, amazon, s3fs, moto)

if [ "$(id -u)" != 0 ]; then
  echo "celery_proof: network namespaces need root (ip netns add); run as root" >&2
  exit 2
fi
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "$@" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "$@" >/dev/null; }
}
if ! command -v redis-server >/dev/null; then
  echo "installing redis-server (Debian package)" >&2
  apt_install redis-server
fi
if ! command -v ip >/dev/null; then
  echo "installing iproute2 (Debian package)" >&2
  apt_install iproute2
fi
python -c "from scripts.localpg import find_bindir; find_bindir()"  # says how to get PostgreSQL if missing

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ozon-celery-proof.XXXXXX")"
chmod 755 "$WORK"  # the PostgreSQL server runs as the postgres user and must reach its folder
status=1
cleanup() {
  trap - EXIT INT TERM
  # normally done by the proof itself; this is for a proof that was killed before it could
  if [ -f "$WORK/sessions" ]; then
    while read -r sid; do pkill -KILL -s "$sid" 2>/dev/null || true; done < "$WORK/sessions"
  fi
  if [ -f "$WORK/pg/postmaster.pid" ]; then
    runuser -u postgres -- "$(python -c 'from scripts.localpg import find_bindir; print(find_bindir())')/pg_ctl" \
      -D "$WORK/pg" -m immediate stop >/dev/null 2>&1 || true
  fi
  python -c "from pathlib import Path; from tests.celery_proof.topology import destroy_from_state; \
destroy_from_state(Path('$WORK/netns.state'))" || true
  if [ "$status" = 0 ] && [ "${KEEP_WORK:-0}" != 1 ]; then
    rm -rf "$WORK"
  else
    echo "celery_proof: logs and figures kept in $WORK" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'status=130; cleanup' INT TERM
export PYTHONPATH="$ROOT:$PYTHONPATH"
set +e
python -m tests.celery_proof.proof --work "$WORK" "$@"
status=$?
set -e
