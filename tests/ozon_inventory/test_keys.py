"""The Api-Key's expiry: read from /v1/roles at most once a day, warned ahead, refused when expired."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from ozon_inventory.client import OzonClient
from ozon_inventory.exceptions import OzonKeyExpired
from ozon_inventory.keys import check_key
from ozon_inventory.methods import V1_ROLES
from tests.conftest import API_KEY, CLIENT_ID


def expire_in(simulator, days: float) -> datetime:
    moment = datetime.now(UTC) + timedelta(days=days)
    simulator.sim.accounts[CLIENT_ID].key_expires_at = moment
    return moment


def roles_requests(simulator) -> int:
    return simulator.sim.stats_snapshot()["requests"].get(V1_ROLES, 0)


def test_expiry_is_read_once_a_day_and_stored(client, simulator, pg_conn):
    expires = expire_in(simulator, 80)
    first = check_key(client, pg_conn, "acc", "ozon_default")
    assert first.asked_ozon and abs(first.expires_at - expires) < timedelta(seconds=1)
    assert 79.9 < first.days_left <= 80
    again = check_key(OzonClient(simulator.url, CLIENT_ID, API_KEY), pg_conn, "acc", "ozon_default")
    assert not again.asked_ozon and again.expires_at == first.expires_at
    assert roles_requests(simulator) == 1
    # a day later (the stored check is old) Ozon is asked again
    pg_conn.execute("UPDATE ozon_account_key SET checked_at = checked_at - interval '25 hours'")
    pg_conn.commit()
    assert check_key(client, pg_conn, "acc", "ozon_default").asked_ozon
    assert roles_requests(simulator) == 2


def test_a_key_about_to_expire_is_warned_about(client, simulator, pg_conn, caplog):
    caplog.set_level(logging.WARNING)
    expires = expire_in(simulator, 5)
    check_key(client, pg_conn, "acc", "ozon_default", warn_days=14)
    assert (
        f"KEY_EXPIRING account=acc: the Api-Key expires on {expires.date().isoformat()} (in 5.0 days)"
        in caplog.text
    )
    assert "update connection ozon_default" in caplog.text and API_KEY not in caplog.text


def test_an_expired_key_fails_with_what_to_do(client, simulator, pg_conn):
    expires = expire_in(simulator, -2)
    with pytest.raises(OzonKeyExpired) as caught:
        check_key(client, pg_conn, "shop-7", "ozon_shop_7")
    assert str(caught.value) == (
        f"the Api-Key of account shop-7 expired on {expires.date().isoformat()}: issue a new one in "
        "Seller Center → Settings → API keys and update connection ozon_shop_7"
    )
    assert caught.value.permanent


def test_an_unreadable_expiry_does_not_block_fetching(client, simulator, pg_conn, caplog):
    from ozon_simulator import Fault

    simulator.sim.add_fault(
        Fault(
            V1_ROLES,
            "status",
            status=403,
            times=-1,
            message="Api-Key is missing a required role for a method",
        )
    )
    caplog.set_level(logging.WARNING)
    status = check_key(client, pg_conn, "acc", "ozon_default")
    assert status.expires_at is None and "could not read the Api-Key's expiry of account acc" in caplog.text


def test_three_fetch_tasks_checking_at_once_ask_ozon_once(simulator, pg_dsn):
    """The three fetch tasks of an account start together, each in its own process, on a new database."""
    import multiprocessing

    expire_in(simulator, 60)
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        asked = pool.starmap(_check_in_a_process, [(simulator.url, pg_dsn)] * 3)
    assert sorted(asked) == [False, False, True]
    assert roles_requests(simulator) == 1


def _check_in_a_process(url: str, dsn: str) -> bool:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return check_key(OzonClient(url, CLIENT_ID, API_KEY), conn, "acc", "ozon_default").asked_ozon
