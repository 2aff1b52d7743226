"""Settings of a run: DAG params first, then Airflow Variables, then environment, then defaults.

Parse-time settings (schedule, pool, retries) come only from the environment, so parsing the DAG
never touches the metadata database. Run-time settings are read inside tasks.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ozon_inventory.exceptions import ConfigError

VARIABLE_PREFIX = "ozon_inventory_"


@dataclass(frozen=True)
class DagSettings:
    """What the DAG file needs at parse time (environment only)."""

    schedule: str | None
    pool: str
    retries: int
    retry_delay_s: float
    fetch_timeout_min: float

    @classmethod
    def from_env(cls) -> DagSettings:
        schedule = os.environ.get("OZON_INVENTORY_SCHEDULE", "@hourly").strip()
        return cls(
            schedule=None if schedule.lower() in ("", "none", "manual") else schedule,
            pool=os.environ.get("OZON_INVENTORY_POOL", "ozon_api"),
            retries=_env_number("OZON_INVENTORY_RETRIES", 3, int),
            retry_delay_s=_env_number("OZON_INVENTORY_RETRY_DELAY", 60.0, float),
            fetch_timeout_min=_env_number("OZON_INVENTORY_FETCH_TIMEOUT_MIN", 30.0, float),
        )


def _env_number(name: str, default: Any, kind: type) -> Any:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return kind(value)
    except ValueError as exc:
        raise ConfigError(f"environment variable {name} must be a number, got {value!r}") from exc


@dataclass(frozen=True)
class RunSettings:
    """What a task needs at run time."""

    accounts: tuple[str, ...]
    staging_root: str
    postgres_conn_id: str
    shrink_threshold: float
    allow_shrink: bool
    warehouse_stock_method: str
    warehouse_list_method: str
    retention_days: float
    key_warn_days: float = 14.0
    alert_email: str | None = None  # comma-separated recipients (SmtpNotifier, connection smtp_default)
    alert_notifier: str | None = None  # JSON {"class": dotted path, "kwargs": {...}, "text_field": "text"}
    retention_mb_per_account: float = 2048.0  # staging kept per account; the oldest loaded runs go first

    def method_choice(self, source: str) -> str:
        """The method param of ``source`` (``auto`` or a pinned method, see ``methods.choices``)."""
        return {
            "warehouse_stocks": self.warehouse_stock_method,
            "warehouses": self.warehouse_list_method,
        }.get(source, "auto")


DEFAULTS: dict[str, Any] = {
    "accounts": ["ozon_default"],
    "staging": None,  # AIRFLOW_HOME/ozon_inventory_staging
    "postgres_conn_id": "ozon_postgres",
    "shrink_threshold": 0.5,
    "allow_shrink": False,
    "warehouse_stock_method": "auto",
    "warehouse_list_method": "auto",
    "retention_days": 30,
    "retention_mb_per_account": 2048,
    "key_warn_days": 14,
    "alert_email": None,
    "alert_notifier": None,
}


def _variable(name: str) -> Any:
    """An Airflow Variable ``ozon_inventory_<name>`` (also ``AIRFLOW_VAR_OZON_INVENTORY_<NAME>``)."""
    try:
        from airflow.sdk import Variable

        return Variable.get(VARIABLE_PREFIX + name, default=None)
    except Exception:  # noqa: BLE001 - outside a task there may be no Variable backend
        return os.environ.get(f"AIRFLOW_VAR_{(VARIABLE_PREFIX + name).upper()}")


def _setting(params: dict[str, Any], name: str) -> Any:
    value = params.get(name)
    if value is None:
        value = _variable(name)
    if value is None:
        value = DEFAULTS[name]
    return value


def parse_accounts(value: Any) -> tuple[str, ...]:
    """Accounts (connection ids) from a list, a JSON list or a comma-separated string."""
    if isinstance(value, str):
        text = value.strip()
        value = json.loads(text) if text.startswith("[") else [p for p in text.split(",")]
    if not isinstance(value, list | tuple):
        raise ConfigError(f"accounts must be a list of connection ids, got {value!r}")
    accounts = tuple(str(a).strip() for a in value if str(a).strip())
    if not accounts:
        raise ConfigError("accounts is empty: name at least one Ozon connection id")
    if len(set(accounts)) != len(accounts):
        raise ConfigError(f"accounts lists a connection twice: {list(accounts)}")
    return accounts


def run_settings(params: dict[str, Any] | None) -> RunSettings:
    params = dict(params or {})
    staging = _setting(params, "staging") or str(
        Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow")) / "ozon_inventory_staging"
    )
    try:
        threshold = float(_setting(params, "shrink_threshold"))
        retention = float(_setting(params, "retention_days"))
        key_warn_days = float(_setting(params, "key_warn_days"))
        retention_mb = float(_setting(params, "retention_mb_per_account"))
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            "shrink_threshold, retention_days, retention_mb_per_account and key_warn_days must be numbers: "
            f"{exc}"
        ) from exc
    if not retention_mb > 0:
        raise ConfigError(f"retention_mb_per_account must be a positive number of MB, got {retention_mb}")
    if not 0 <= threshold < 1:
        raise ConfigError(f"shrink_threshold must be in [0, 1), got {threshold}")
    allow = _setting(params, "allow_shrink")
    if isinstance(allow, str):
        allow = allow.strip().lower() in ("1", "true", "yes")
    return RunSettings(
        accounts=parse_accounts(_setting(params, "accounts")),
        staging_root=str(staging),
        postgres_conn_id=str(_setting(params, "postgres_conn_id")),
        shrink_threshold=threshold,
        allow_shrink=bool(allow),
        warehouse_stock_method=str(_setting(params, "warehouse_stock_method")),
        warehouse_list_method=str(_setting(params, "warehouse_list_method")),
        retention_days=retention,
        key_warn_days=key_warn_days,
        alert_email=_setting(params, "alert_email") or None,
        alert_notifier=_setting(params, "alert_notifier") or None,
        retention_mb_per_account=retention_mb,
    )
