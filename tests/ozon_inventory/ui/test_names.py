"""The page's routes take an account's name (``naming.account_name``), never its raw id: servers
decode ``%2F`` before routing, so an id holding ``/`` would reach another route or account (the
test client decodes a path twice, as a proxy in front of the api-server may: a name passes both)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import psycopg
import pytest

from ozon_inventory.client import OzonClient
from ozon_inventory.naming import LONG_MARK, account_name
from ozon_inventory.staging import StagingArea
from ozon_simulator import SimulatorConfig, default_simulator, serve
from tests.conftest import API_KEY, CLIENT_ID
from tests.ozon_inventory.ui.conftest import Page, new_database, sync_account

LONG = "ozon_" + "магазин" * 6  # its full encoding would pass MAX_NAME: a hashed name
IDS = ["shop/rejects", "shop", "ozon_магазин", "Shop #1", LONG]


@pytest.fixture(scope="module")
def named(pg_server, tmp_path_factory) -> Iterator[str]:
    """A target database the real stages loaded for each of ``IDS`` (run keys differ per account)."""
    dsn = new_database(pg_server)
    sim = default_simulator(client_id=CLIENT_ID, api_key=API_KEY, config=SimulatorConfig())
    running = serve(sim)
    root = tmp_path_factory.mktemp("ui-names-staging")
    try:
        with psycopg.connect(dsn) as conn:
            for hour, account in enumerate(IDS):
                client = OzonClient(running.url, CLIENT_ID, API_KEY, rate_limit=1000, timeout=2, backoff=0.01)
                run_key = f"20261120T{hour:02d}0000Z"
                sync_account(client, StagingArea(str(root), account, run_key), conn, f"manual__{account}")
        yield dsn
    finally:
        running.stop()


@pytest.fixture
def page(named, auth_manager) -> Page:
    return Page(named, auth_manager)


def route(name: str) -> str:
    return "/api/accounts/" + quote(name, safe="")  # as the page's encodeURIComponent sends it


def test_rows_carry_the_name_and_each_name_opens_its_own_account(page):
    rows = {row["account"]: row for row in page.json("/api/accounts")["accounts"]}
    assert set(rows) == set(IDS)
    assert LONG_MARK in account_name(LONG)
    for account in IDS:
        assert rows[account]["name"] == account_name(account)
        detail = page.json(route(rows[account]["name"]))
        assert detail["account"] == account and detail["run_id"] == f"manual__{account}"
        assert page.json(route(rows[account]["name"]) + "/rejects")["run_id"] == f"manual__{account}"
        assert page.json(route(rows[account]["name"]) + "/mismatches")["total"] == 0


def test_the_raw_id_is_no_route(page):
    # shop/rejects sent as an id: decoded to /api/accounts/shop/rejects, another account's route
    answer = page.json("/api/accounts/" + quote("shop/rejects", safe=""))
    assert answer["run_id"] == "manual__shop"  # shop's rejects: why the routes take names
    for text in ("Shop #1", "ozon_магазин", LONG):
        answer = page.get(route(text))
        assert answer.status_code == 404, text
        assert "is no account's name" in answer.json()["detail"]
    assert page.get(route(account_name("nobody/else"))).status_code == 404
