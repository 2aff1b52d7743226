"""Settings of a run: DAG params first, then Airflow Variables, then environment, then defaults.

Parse-time settings (schedule, pool, retries) come only from the environment, so parsing the DAG
never touches the metadata database. Run-time settings are read inside tasks.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
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


class RunSettings:
    """What a task needs at run time, each setting resolved (param, Variable, default) when first
    read: a Variable is a round trip to Airflow's API server, and most tasks read few settings
    (``run_settings`` reads and checks them all at once)."""

    def __init__(self, params: dict[str, Any] | None):
        self._params = dict(params or {})

    def _get(self, name: str) -> Any:
        return _setting(self._params, name)

    def _number(self, name: str) -> float:
        value = self._get(name)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a number, got {value!r}") from None

    @cached_property
    def accounts(self) -> tuple[str, ...]:
        return parse_accounts(self._get("accounts"))

    @cached_property
    def staging_root(self) -> str:
        home = Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow"))
        return str(self._get("staging") or home / "ozon_inventory_staging")

    @cached_property
    def postgres_conn_id(self) -> str:
        return str(self._get("postgres_conn_id"))

    @cached_property
    def shrink_threshold(self) -> float:
        threshold = self._number("shrink_threshold")
        if not 0 <= threshold < 1:
            raise ConfigError(f"shrink_threshold must be in [0, 1), got {threshold}")
        return threshold

    @cached_property
    def allow_shrink(self) -> bool:
        allow = self._get("allow_shrink")
        if isinstance(allow, str):
            return allow.strip().lower() in ("1", "true", "yes")
        return bool(allow)

    @cached_property
    def warehouse_stock_method(self) -> str:
        return str(self._get("warehouse_stock_method"))

    @cached_property
    def warehouse_list_method(self) -> str:
        return str(self._get("warehouse_list_method"))

    @cached_property
    def retention_days(self) -> float:
        return self._number("retention_days")

    @cached_property
    def retention_mb_per_account(self) -> float:
        """Staging kept per account; the oldest loaded runs go first."""
        retention_mb = self._number("retention_mb_per_account")
        if not retention_mb > 0:
            raise ConfigError(f"retention_mb_per_account must be a positive number of MB, got {retention_mb}")
        return retention_mb

    @cached_property
    def key_warn_days(self) -> float:
        return self._number("key_warn_days")

    @cached_property
    def alert_email(self) -> str | None:
        """Comma-separated recipients (SmtpNotifier, connection smtp_default)."""
        return self._get("alert_email") or None

    @cached_property
    def alert_notifier(self) -> str | None:
        """JSON ``{"class": dotted path, "kwargs": {...}, "text_field": "text"}``."""
        return self._get("alert_notifier") or None

    def method_choice(self, source: str) -> str:
        """The method param of ``source`` (``auto`` or a pinned method, see ``methods.choices``)."""
        if source == "warehouse_stocks":
            return self.warehouse_stock_method
        if source == "warehouses":
            return self.warehouse_list_method
        return "auto"

    def check(self) -> RunSettings:
        """Read and check every setting now (a bad one raises ``ConfigError`` naming it)."""
        for name in dir(type(self)):
            if isinstance(getattr(type(self), name), cached_property):
                getattr(self, name)
        return self


def run_settings(params: dict[str, Any] | None) -> RunSettings:
    """Every setting of a run, read and checked."""
    return RunSettings(params).check()
