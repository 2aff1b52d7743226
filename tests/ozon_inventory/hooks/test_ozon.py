"""OzonHook builds a client from an Airflow connection and says clearly what is wrong with one."""

from __future__ import annotations

import json

import pytest

from ozon_inventory.exceptions import ConfigError
from ozon_inventory.hooks.ozon import OzonHook
from tests.conftest import API_KEY, CLIENT_ID


def set_conn(monkeypatch, **fields):
    monkeypatch.setenv("AIRFLOW_CONN_OZON_TEST", json.dumps({"conn_type": "http", **fields}))


def test_client_from_connection(monkeypatch, simulator):
    set_conn(
        monkeypatch,
        host=simulator.url,
        login=CLIENT_ID,
        password=API_KEY,
        extra={"rate_limit": 20, "timeout": 3},
    )
    hook = OzonHook("ozon_test")
    client = hook.get_conn()
    assert (client.base_url, client.client_id, client.rate_limit, client.timeout) == (
        simulator.url,
        CLIENT_ID,
        20,
        3,
    )
    assert hook.test_connection() == (True, "Ozon answered /v4/product/info/stocks")
    assert API_KEY not in repr(hook) + repr(client)


def test_default_host_is_ozon(monkeypatch):
    set_conn(monkeypatch, login=CLIENT_ID, password=API_KEY)
    assert OzonHook("ozon_test").get_conn().base_url == "https://api-seller.ozon.ru"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"login": "", "password": API_KEY}, "login must be the seller's numeric Client-Id"),
        ({"login": "abc", "password": API_KEY}, "login must be the seller's numeric Client-Id"),
        ({"login": CLIENT_ID, "password": ""}, "password must hold the Api-Key"),
        (
            {"login": CLIENT_ID, "password": API_KEY, "extra": {"timeout": "soon"}},
            "extra 'timeout' must be a number",
        ),
    ],
)
def test_bad_connections_are_named(monkeypatch, fields, message):
    set_conn(monkeypatch, **fields)
    with pytest.raises(ConfigError, match=message) as caught:
        OzonHook("ozon_test").get_conn()
    assert "connection 'ozon_test'" in str(caught.value) and API_KEY not in str(caught.value)


def test_wrong_key_fails_test_connection_without_leaking_it(monkeypatch, simulator):
    set_conn(monkeypatch, host=simulator.url, login=CLIENT_ID, password="wrong-" + API_KEY)
    ok, message = OzonHook("ozon_test").test_connection()
    assert not ok and "Invalid Api-Key" in message and API_KEY not in message
