# Sourced by the scripts: create .venv once and keep it in step with the pinned requirements.
# OZON_VENV_AS_IS=1 (set by a script that measures): an existing .venv is used as it is, nothing is
# installed into it; only a missing .venv is created and installed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"
as_is="${OZON_VENV_AS_IS:-0}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV" >&2
  "$PYTHON" -m venv "$VENV"
  as_is=0
fi
stamp="$VENV/.requirements.sha256"
if [ "$as_is" != 1 ]; then
  want="$(cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" "$ROOT/constraints.txt" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "installing pinned requirements into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      -r "$ROOT/requirements-dev.txt" -c "$ROOT/constraints.txt"
    # the project itself, editable and without dependencies: Airflow reads its provider metadata
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$ROOT"
    echo "$want" > "$stamp"
  fi
fi
export PATH="$VENV/bin:$PATH"
export PYTHONPATH="$ROOT/plugins:$ROOT/dags${PYTHONPATH:+:$PYTHONPATH}"
cd "$ROOT"
