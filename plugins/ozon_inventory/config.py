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

from ozon_inventory import naming
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
    #: how long a load the shrink guard stopped waits for an operator's decision; 0: fail at once
    shrink_approval_hours: float

    @classmethod
    def from_env(cls) -> DagSettings:
        schedule = os.environ.get("OZON_INVENTORY_SCHEDULE", "@hourly").strip()
        return cls(
            schedule=None if schedule.lower() in ("", "none", "manual") else schedule,
            pool=os.environ.get("OZON_INVENTORY_POOL", "ozon_api"),
            retries=_env_number("OZON_INVENTORY_RETRIES", 3, int),
            retry_delay_s=_env_number("OZON_INVENTORY_RETRY_DELAY", 60.0, float),
            fetch_timeout_min=_env_number("OZON_INVENTORY_FETCH_TIMEOUT_MIN", 30.0, float),
            shrink_approval_hours=_env_number("OZON_INVENTORY_SHRINK_APPROVAL_HOURS", 6.0, float),
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
    "migrate_conn_id": None,  # the postgres_conn_id
    "shrink_threshold": 0.5,
    "allow_shrink": False,
    "warehouse_stock_method": "auto",
    "warehouse_list_method": "auto",
    "retention_days": 30,
    "retention_mb_per_account": 2048,
    "key_warn_days": 14,
    "alert_email": None,
    "alert_notifier": None,
    "alert_stock_events": False,
}


def _variable(name: str) -> Any:
    """An Airflow Variable ``ozon_inventory_<name>`` (also ``AIRFLOW_VAR_OZON_INVENTORY_<NAME>``)."""
    try:
        from airflow.sdk import Variable

        return Variable.get(VARIABLE_PREFIX + name, default=None)
    except Exception:  # noqa: BLE001 - outside a task there may be no Variable backend
        return os.environ.get(f"AIRFLOW_VAR_{(VARIABLE_PREFIX + name).upper()}")


def _setting(params: dict[str, Any], name: str) -> tuple[Any, str]:
    """The setting's value and where it came from, as an error names it (``param accounts``,
    ``Variable ozon_inventory_accounts``, ``default accounts``); a blank value defers to the next."""
    value = params.get(name)
    if not _blank(value):
        return value, f"param {name}"
    value = _variable(name)
    if not _blank(value):
        return value, f"Variable {VARIABLE_PREFIX}{name}"
    return DEFAULTS[name], f"default {name}"


def _blank(value: Any) -> bool:
    """Not given: None, or an empty field of the trigger form (blank text)."""
    return value is None or (isinstance(value, str) and not value.strip())


#: what ``accounts`` must hold, as its errors say
ACCOUNTS_FORM = 'a JSON list of Ozon connection ids, such as ["ozon_default", "ozon_shop2"]'


def parse_accounts(value: Any, where: str = "accounts") -> tuple[str, ...]:
    """The accounts (connection ids) of a run: a list of non-empty strings, or its JSON text.

    ``where`` names the param or Variable the value came from; every error names it, what was
    expected and what was found. Whitespace around an id is not part of it. Two ids whose names
    meet (``naming.clashes``) are refused, as they would share a staging folder and an asset.
    """
    found = value
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            detail = f"not JSON ({exc})" if value.lstrip().startswith("[") else "not a JSON list"
            raise ConfigError(f"{where} must be {ACCOUNTS_FORM}; found {found!r}: {detail}") from None
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{where} must be {ACCOUNTS_FORM}; found a JSON {_json_kind(value)}: {found!r}")
    accounts: list[str] = []
    for position, entry in enumerate(value, start=1):
        if not isinstance(entry, str) or not entry.strip():
            what = "an empty string" if isinstance(entry, str) else f"a JSON {_json_kind(entry)}"
            raise ConfigError(
                f"{where} must be {ACCOUNTS_FORM}; entry {position} is {what}: {entry!r} in {found!r}"
            )
        accounts.append(entry.strip())
    if not accounts:
        raise ConfigError(f"{where} is empty: name at least one Ozon connection id ({ACCOUNTS_FORM})")
    twice = sorted({a for a in accounts if accounts.count(a) > 1})
    if twice:
        raise ConfigError(f"{where} lists a connection twice: {', '.join(map(repr, twice))} in {accounts}")
    clash = naming.clashes(accounts)
    if clash:
        first, second = clash[0]
        raise ConfigError(
            f"{where}: accounts {first!r} and {second!r} would share the staging folder and asset "
            f"{naming.account_name(first)!r}; rename one of the connections"
        )
    return tuple(accounts)


def _json_kind(value: Any) -> str:
    """How JSON calls the type of a parsed value."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list | tuple):
        return "list"
    return "null" if value is None else "string"


def refuse_shared_client_ids(client_ids: dict[str, str | None], where: str = "accounts") -> None:
    """Refuse a run in which two accounts are one seller: their connections hold the same Client-Id.

    ``client_ids`` maps each account to its connection's Client-Id (None: the connection could not
    be read here; that account's fetches say why). Loading one seller under two ids would keep two
    copies of its stock, and their fetches would share one rate budget without knowing it.
    """
    owners: dict[str, list[str]] = {}
    for account, client_id in client_ids.items():
        if client_id:
            owners.setdefault(client_id, []).append(account)
    shared = {cid: names for cid, names in owners.items() if len(names) > 1}
    if shared:
        pairs = "; ".join(
            f"{', '.join(map(repr, names))} all hold Client-Id {cid}" for cid, names in sorted(shared.items())
        )
        raise ConfigError(
            f"{where}: each account must be a different seller (Client-Id), found {pairs}; "
            "keep one connection per seller in the list"
        )


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class RunSettings:
    """What a task needs at run time, each setting resolved (param, Variable, default) when first
    read: a Variable is a round trip to Airflow's API server, and most tasks read few settings
    (``run_settings`` reads and checks them all at once). A bad value raises ``ConfigError`` naming
    the param or Variable it came from, what it must be and what it is."""

    def __init__(self, params: dict[str, Any] | None):
        self._params = dict(params or {})
        self._resolved: dict[str, tuple[Any, str]] = {}

    def _resolve(self, name: str) -> tuple[Any, str]:
        """The setting's value and where it came from (read once)."""
        if name not in self._resolved:
            self._resolved[name] = _setting(self._params, name)
        return self._resolved[name]

    def _get(self, name: str) -> Any:
        return self._resolve(name)[0]

    def where(self, name: str) -> str:
        """Where the setting came from, as errors name it (``param accounts``, ``Variable …``)."""
        return self._resolve(name)[1]

    def _number(self, name: str) -> float:
        value, where = self._resolve(name)
        if not isinstance(value, bool):
            try:
                return float(value)
            except (TypeError, ValueError):
                pass
        raise ConfigError(f"{where} must be a number, got {value!r}")

    def _text(self, name: str) -> str:
        value, where = self._resolve(name)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where} must be a non-empty string, got {value!r}")
        return value.strip()

    @cached_property
    def accounts(self) -> tuple[str, ...]:
        value, where = self._resolve("accounts")
        return parse_accounts(value, where)

    @cached_property
    def staging_root(self) -> str:
        if self._get("staging") is None:
            home = Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow"))
            return str(home / "ozon_inventory_staging")
        return self._text("staging")

    @cached_property
    def postgres_conn_id(self) -> str:
        return self._text("postgres_conn_id")

    @cached_property
    def migrate_conn_id(self) -> str:
        """The connection the migrate task changes the schema through: the schema's owner, so that
        ``postgres_conn_id`` may be a role with only SELECT, INSERT, UPDATE and DELETE."""
        return (
            self.postgres_conn_id if self._get("migrate_conn_id") is None else self._text("migrate_conn_id")
        )

    @cached_property
    def shrink_threshold(self) -> float:
        threshold = self._number("shrink_threshold")
        if not 0 <= threshold < 1:
            raise ConfigError(f"{self.where('shrink_threshold')} must be in [0, 1), got {threshold}")
        return threshold

    def _flag(self, name: str) -> bool:
        value, where = self._resolve(name)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(f"{where} must be true or false, got {value!r}")

    @cached_property
    def allow_shrink(self) -> bool:
        return self._flag("allow_shrink")

    @cached_property
    def alert_stock_events(self) -> bool:
        """Send a digest of the run's stock events (out of / back in stock) through the alert channels."""
        return self._flag("alert_stock_events")

    @cached_property
    def warehouse_stock_method(self) -> str:
        return self._text("warehouse_stock_method")

    @cached_property
    def warehouse_list_method(self) -> str:
        return self._text("warehouse_list_method")

    @cached_property
    def retention_days(self) -> float:
        days = self._number("retention_days")
        if not days >= 0:
            raise ConfigError(f"{self.where('retention_days')} must be a number of days >= 0, got {days}")
        return days

    @cached_property
    def retention_mb_per_account(self) -> float:
        """Staging kept per account; the oldest loaded runs go first."""
        retention_mb = self._number("retention_mb_per_account")
        if not retention_mb > 0:
            raise ConfigError(
                f"{self.where('retention_mb_per_account')} must be a positive number of MB, got {retention_mb}"
            )
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
