"""Bad keys, missing roles, bad settings and leaked secrets: fail at once, say why, never show the key."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from ozon_inventory.config import run_settings
from ozon_inventory.exceptions import ConfigError
from ozon_inventory.methods import V2_STOCK_ON_WAREHOUSES, V4_STOCKS
from ozon_simulator import Fault
from tests.conftest import CLIENT_ID
from tests.fault_matrix.conftest import SECRET, assert_names, permanent, secret_in


def hook_client(monkeypatch, url: str, **fields):
    """A factory of the client ``OzonHook`` builds from an Airflow connection (an environment variable)."""
    from ozon_inventory.hooks.ozon import OzonHook

    conn = {"conn_type": "http", "host": url, "login": CLIENT_ID, "password": SECRET} | fields
    conn["extra"] = {"rate_limit": 1000, "backoff": 0.005, "timeout": 1} | fields.get("extra", {})
    monkeypatch.setenv("AIRFLOW_CONN_OZON_FM", json.dumps(conn))
    return lambda: OzonHook("ozon_fm").get_client()


def fail_all_fetches(matrix, client, cause, *, is_permanent=True):
    """The fault run: every fetch fails with ``cause``; nothing is loaded; the previous snapshot stays."""
    before = matrix.state()
    result = matrix.run(client=client)
    assert result.fetch_errors and result.loaded is None, result.text
    for error in result.fetch_errors.values():
        assert_names(cause, str(error))
        assert permanent(error) is is_permanent, error
    matrix.assert_unchanged(before)
    return result


#: Ozon's auth answers: how the simulator is made to give it, and the error text.
AUTH = {
    "wrong-api-key": (
        lambda m: m.client(),
        lambda m: setattr(m.sim.accounts[CLIENT_ID], "api_key", "another-key"),
        r"answered HTTP 404, code 5: Invalid Api-Key, please check the key and try again",
    ),
    "key-deactivated": (
        lambda m: m.client(),
        lambda m: setattr(m.sim.accounts[CLIENT_ID], "key_expires_at", datetime.now(UTC) - timedelta(days=1)),
        r"answered HTTP 403, code 7: Api-key is deactivated, use another one or generate a new one",
    ),
    "unknown-client-id": (
        lambda m: __import__("ozon_inventory.client").client.OzonClient(m.running.url, "999999", SECRET),
        lambda m: None,
        r"answered HTTP 404, code 5: Invalid Api-Key",
    ),
}


@pytest.mark.parametrize("case", list(AUTH))
def test_auth_error_fails_every_fetch_at_once(matrix, case):
    client, break_it, cause = AUTH[case]
    matrix.good_run()
    account = matrix.sim.accounts[CLIENT_ID]
    saved = (account.api_key, account.key_expires_at)
    break_it(matrix)
    sent = sum(matrix.sim.stats_snapshot()["requests"].values())
    result = fail_all_fetches(matrix, client(matrix), cause)
    assert sum(matrix.sim.stats_snapshot()["requests"].values()) - sent <= 3 + 3  # no retries
    assert_names(r"no source was fetched", str(result.error))
    account.api_key, account.key_expires_at = saved
    matrix.good_run()
    matrix.assert_recovered()


def test_missing_role_fails_only_its_source(matrix):
    matrix.good_run()
    before = matrix.state()
    account = matrix.sim.accounts[CLIENT_ID]
    account.methods = frozenset(
        {V4_STOCKS, "/v1/analytics/stocks", "/v2/warehouse/list", "/v1/warehouse/list"}
    )
    result = matrix.run()
    error = result.fetch_errors["warehouse_stocks"]
    assert_names(
        rf"Ozon {V2_STOCK_ON_WAREHOUSES} answered HTTP 403, code 7: Api-Key is missing a required role",
        str(error),
    )
    assert permanent(error) and result.degraded
    matrix.assert_unchanged(before, ("stock_by_warehouse", "ozon_warehouses"))
    account.methods = None
    matrix.good_run()
    matrix.assert_recovered()


def test_ozon_echoing_the_api_key_in_an_error_does_not_leak_it(matrix):
    """An error body (Ozon's or a proxy's) that repeats the request's key: masked before anyone sees it."""
    matrix.good_run()
    before = matrix.state()
    matrix.fault(
        Fault(
            V4_STOCKS,
            "status",
            status=401,
            times=-1,
            message=f"Invalid Api-Key {SECRET} for Client-Id {CLIENT_ID}",
        )
    )
    result = matrix.run()
    error = result.fetch_errors["stocks"]
    assert_names(r"answered HTTP 401, code 13: Invalid Api-Key \*+ for Client-Id 100200", str(error))
    assert permanent(error)
    matrix.assert_unchanged(before, ("stock_by_type", "products", "skus"))
    matrix.assert_no_secret()
    matrix.heal()
    matrix.good_run()
    matrix.assert_recovered()


def test_proxy_page_echoing_the_api_key_on_retries_does_not_leak_it(matrix):
    matrix.good_run()
    matrix.fault(Fault(V4_STOCKS, "status", status=502, times=2, message=f"upstream said: Api-Key: {SECRET}"))
    result = matrix.run()
    assert result.complete, result.text
    assert_names(r"attempt 1 failed \(HTTP 502: upstream said: Api-Key: \*+\)", matrix.caplog.text)
    matrix.good_run()
    matrix.assert_recovered()


#: Connection fields an operator may get wrong, and what the error must say.
BAD_CONNECTION = {
    "login-not-numeric": (
        {"login": "seller-100200"},
        r"connection 'ozon_fm': login must be the seller's numeric Client-Id",
    ),
    "password-empty": ({"password": ""}, r"connection 'ozon_fm': password \(the Api-Key\) is empty"),
    "d8-api-key-inner-newline": (
        {"password": SECRET[:10] + "\n" + SECRET[10:]},
        r"connection 'ozon_fm': password \(the Api-Key\) holds a control character \(a line break\?\)",
    ),
    "extra-rate-limit-not-a-number": (
        {"extra": {"rate_limit": "fast"}},
        r"extra 'rate_limit' must be a number, got 'fast'",
    ),
    "extra-workers-zero": ({"extra": {"workers": 0}}, r"workers must be at least 1, got 0"),
    "extra-timeout-zero": ({"extra": {"timeout": 0}}, r"timeout must be more than 0 s, got 0"),
    "extra-max-retries-negative": ({"extra": {"max_retries": -1}}, r"max_retries must be at least 0, got -1"),
    "extra-rate-limit-zero": (
        {"extra": {"rate_limit": 0}},
        r"rate_limit must be more than 0 requests/s, got 0",
    ),
    "extra-max-pages-zero": ({"extra": {"max_pages": 0}}, r"max_pages must be at least 1, got 0"),
}


@pytest.mark.parametrize("case", list(BAD_CONNECTION))
def test_bad_connection_setting_fails_at_once_and_names_it(matrix, monkeypatch, case):
    fields, cause = BAD_CONNECTION[case]
    matrix.good_run()
    matrix.catalogue.change_stock(0.05, seed=8)
    sent = sum(matrix.sim.stats_snapshot()["requests"].values())
    result = fail_all_fetches(matrix, hook_client(monkeypatch, matrix.running.url, **fields), cause)
    assert sum(matrix.sim.stats_snapshot()["requests"].values()) == sent  # not one request
    assert not secret_in(result.text)
    matrix.good_run(client=hook_client(monkeypatch, matrix.running.url))  # the operator fixes the connection
    matrix.assert_recovered()


def test_d8_api_key_with_a_trailing_newline_works_and_never_shows(matrix, monkeypatch):
    matrix.good_run()
    matrix.catalogue.change_stock(0.05, seed=9)
    result = matrix.run(client=hook_client(monkeypatch, matrix.running.url, password=f"  {SECRET}\r\n"))
    assert result.complete, result.text
    matrix.assert_recovered()


def test_ozon_host_unreachable_names_the_host(matrix, monkeypatch):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    matrix.good_run()
    result = fail_all_fetches(
        matrix,
        hook_client(monkeypatch, dead),
        rf"is down for this run after 5 consecutive failures .*cannot connect to {dead} \(Connection refused\)",
    )
    assert not result.loaded
    matrix.good_run()
    matrix.assert_recovered()


#: Run params (or Variables) an operator may get wrong.
BAD_PARAMS = {
    "shrink-threshold-above-1": (
        {"shrink_threshold": 1.5},
        r"shrink_threshold must be in \[0, 1\), got 1\.5",
    ),
    "shrink-threshold-text": ({"shrink_threshold": "half"}, r"shrink_threshold must be a number, got 'half'"),
    "accounts-empty": ({"accounts": []}, r"accounts is empty: name at least one Ozon connection id"),
    "accounts-twice": ({"accounts": ["a", "a"]}, r"accounts lists a connection twice"),
}


@pytest.mark.parametrize("case", list(BAD_PARAMS))
def test_bad_run_param_is_refused_with_its_name(matrix, case):
    params, cause = BAD_PARAMS[case]
    matrix.good_run()
    before = matrix.state()
    with pytest.raises(ConfigError) as caught:
        run_settings(params)
    assert_names(cause, str(caught.value))
    assert permanent(caught.value)
    matrix.assert_unchanged(before)
    matrix.good_run()
    matrix.assert_recovered()


def test_unknown_method_param_fails_its_source_and_lists_the_choices(matrix):
    matrix.good_run()
    before = matrix.state()
    result = matrix.run(warehouse_stock_method="v9")
    error = result.fetch_errors["warehouse_stocks"]
    assert_names(
        r"warehouse_stocks method must be one of \['auto', 'v2', 'v1', 'fbo'\], not 'v9'", str(error)
    )
    assert permanent(error) and result.degraded
    matrix.assert_unchanged(before, ("stock_by_warehouse", "ozon_warehouses"))
    matrix.good_run()
    matrix.assert_recovered()
