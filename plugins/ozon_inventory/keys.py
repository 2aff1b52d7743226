"""The expiry of an account's Api-Key, checked before fetching.

Ozon's keys live three months, and a dead key fails every method at once (403 "Api-key is
deactivated"). ``/v1/roles`` tells the expiry (``expires_at``), so the fetch asks it at most once a
day per account (the answer is kept in the target database, shared by every worker), warns
``warn_days`` ahead, and refuses to fetch with a key that has expired, saying what to do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ozon_inventory.client import OzonClient
from ozon_inventory.exceptions import OzonApiError, OzonKeyExpired, OzonSchemaChanged, OzonTransientError
from ozon_inventory.methods import V1_ROLES, method
from ozon_inventory.sql import statements

log = logging.getLogger(__name__)

DEFAULT_WARN_DAYS = 14


@dataclass(frozen=True)
class KeyStatus:
    account: str
    expires_at: datetime | None
    checked_at: datetime | None
    now: datetime
    asked_ozon: bool

    @property
    def days_left(self) -> float | None:
        if self.expires_at is None:
            return None
        return (self.expires_at - self.now) / timedelta(days=1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "days_left": None if self.days_left is None else round(self.days_left, 1),
            "asked_ozon": self.asked_ozon,
        }


def check_key(
    client: OzonClient, conn: Any, account: str, conn_id: str, warn_days: float = DEFAULT_WARN_DAYS
) -> KeyStatus:
    """The key's expiry (from the database when read in the last day, else from Ozon).

    Raises ``OzonKeyExpired`` when the key has expired; warns when it expires within ``warn_days``.
    An OAuth token has no key expiry; an unreadable answer is logged, not fatal: the fetch itself
    will tell whether the key works.
    """
    if client.token:
        return KeyStatus(account, None, None, datetime.now().astimezone(), asked_ozon=False)
    status = _read_or_ask(client, conn, account)
    days = status.days_left
    if status.expires_at is not None and days is not None:
        if days <= 0:
            raise OzonKeyExpired(account, conn_id, status.expires_at)
        if days <= warn_days:
            log.warning(
                "KEY_EXPIRING account=%s: the Api-Key expires on %s (in %.1f days): issue a new one in "
                "Seller Center → Settings → API keys and update connection %s",
                account,
                status.expires_at.date().isoformat(),
                days,
                conn_id,
            )
    return status


def _read_or_ask(client: OzonClient, conn: Any, account: str) -> KeyStatus:
    sql = statements("keys")
    params: dict[str, Any] = {"account": account, "client_id": client.client_id}
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(sql["lock_account"], params)
        cur.execute(sql["cached"], params)
        row = cur.fetchone()
        if row is not None:
            return KeyStatus(account, row[0], row[1], row[2], asked_ozon=False)
        try:
            page = client.post(method(V1_ROLES), {})
        except (OzonApiError, OzonTransientError, OzonSchemaChanged) as exc:
            log.warning("could not read the Api-Key's expiry of account %s: %s", account, exc)
            cur.execute("SELECT now()")
            return KeyStatus(account, None, None, cur.fetchone()[0], asked_ozon=True)
        expires_at = _parse_time(page.data.get("expires_at"))
        roles = [str(r.get("name")) for r in method(V1_ROLES).rows(page.data) if isinstance(r, dict)]
        cur.execute(sql["store"], params | {"expires_at": expires_at, "roles": roles})
        stored = cur.fetchone()
        return KeyStatus(account, stored[0], stored[1], stored[2], asked_ozon=True)


def stored_expiry(conn: Any, account: str, run_id: str | None = None) -> KeyStatus:
    """The expiry last read for ``account`` (no request to Ozon); written into the run's ledger row."""
    sql = statements("keys")
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(sql["stored"], {"account": account})
        row = cur.fetchone()
        if run_id is not None:
            cur.execute(sql["to_ledger"], {"account": account, "run_id": run_id})
    if row is None:
        return KeyStatus(account, None, None, datetime.now().astimezone(), asked_ozon=False)
    return KeyStatus(account, row[0], row[1], row[2], asked_ozon=False)


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        log.warning("unreadable expires_at %r from %s", value, V1_ROLES)
        return None
    return moment if moment.tzinfo else moment.astimezone()
