"""The package's SQL files: ``include/sql/{name}.sql``, split into ``-- name: x`` sections."""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

from ozon_inventory.exceptions import ConfigError

_SQL_DIR = Path(__file__).resolve().parents[2] / "include" / "sql"
_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def sql_dir() -> Path:
    return Path(os.environ.get("OZON_INVENTORY_SQL_DIR", _SQL_DIR))


@cache
def statements(name: str) -> dict[str, str]:
    """The ``-- name: x`` sections of ``include/sql/{name}.sql``."""
    path = sql_dir() / f"{name}.sql"
    if not path.exists():
        raise ConfigError(
            f"SQL file {path} is missing (set OZON_INVENTORY_SQL_DIR to the include/sql folder)"
        )
    parts = _NAME.split(path.read_text(encoding="utf-8"))
    return {parts[i]: parts[i + 1].strip().rstrip(";") for i in range(1, len(parts), 2)}
