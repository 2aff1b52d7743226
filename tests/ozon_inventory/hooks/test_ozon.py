"""OzonHook: the client from an Airflow connection, on HttpHook's session, and clear errors."""

from __future__ import annotations

import json
import logging

import pytest
import requests

from ozon_inventory.exceptions import ConfigError
from ozon_inventory.hooks.ozon import OzonHook
from ozon_inventory.methods import METHODS, V4_STOCKS
from tests.conftest import API_KEY, CLIENT_ID


def set_conn(monkeypatch, **fields):
    monkeypatch.setenv("AIRFLOW_CONN_OZON_TEST", json.dumps({"conn_type": "http", **fields}))


def test_client_from_connection(monkeypatch, simulator):
    set_conn(
        monkeypatch,
        host=simulator.url,
        login=CLIENT_ID,
        password=API_KEY,
        extra={"rate_limit": 20, "timeout": 3, "workers": 2, "X-Trace": "on"},
    )
    hook = OzonHook("ozon_test")
    client = hook.get_client()
    assert (client.base_url, client.client_id, client.rate_limit, client.timeout, client.workers) == (
        simulator.url,
        CLIENT_ID,
        20,
        3,
        2,
    )
    assert hook.test_connection() == (True, "Ozon answered /v4/product/info/stocks")
    assert API_KEY not in repr(hook) + repr(client) + repr(client.auth)


def test_session_comes_from_http_hook_and_tuning_never_becomes_a_header(monkeypatch, simulator):
    set_conn(
        monkeypatch,
        host=simulator.url,
        login=CLIENT_ID,
        password=API_KEY,
        extra={"rate_limit": 20, "workers": 2, "headroom": 0.9, "X-Trace": "on", "verify": False},
    )
    session = OzonHook("ozon_test").get_conn()
    assert isinstance(session, requests.Session)
    assert session.headers["X-Trace"] == "on"  # a real extra header passes through
    assert not {"rate_limit", "workers", "headroom"} & set(session.headers)
    assert session.verify is False  # TLS settings come from HttpHook
    # the client's pages carry Ozon's auth headers from OzonAuth, sent over that session
    client = OzonHook("ozon_test").get_client()
    page = next(client.pages(METHODS[V4_STOCKS], limit=1))
    assert page.rows == 1


def test_default_host_is_ozon_over_https(monkeypatch):
    set_conn(monkeypatch, login=CLIENT_ID, password=API_KEY)
    assert OzonHook("ozon_test").get_client().base_url == "https://api-seller.ozon.ru"
    set_conn(monkeypatch, host="api-seller.ozon.ru", login=CLIENT_ID, password=API_KEY)
    assert OzonHook("ozon_test").get_client().base_url == "https://api-seller.ozon.ru"


def test_the_ozon_connection_type_is_registered_with_its_form():
    """What Airflow's connection form and its "Test" button use: the provider metadata."""
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert manager.hooks["ozon"].hook_class_name == "ozon_inventory.hooks.ozon.OzonHook"
    form = manager.field_behaviours["ozon"]
    assert form["relabeling"]["login"] == "Client-Id"
    assert form["relabeling"]["password"].startswith("Api-Key")
    assert {"schema", "port"} <= set(form["hidden_fields"])


def test_test_button_path_tests_the_account(monkeypatch, simulator):
    """What the UI's "Test" does (POST /api/v2/connections/test): the form's connection as an
    environment variable, then ``Connection.test_connection``, which finds OzonHook by its type."""
    from airflow.models.connection import Connection

    def tested(password: str) -> tuple[bool, str]:
        conn = Connection(
            conn_id="ozon_ui", conn_type="ozon", host=simulator.url, login=CLIENT_ID, password=password
        )
        monkeypatch.setenv("AIRFLOW_CONN_OZON_UI", conn.get_uri())
        return conn.test_connection()

    assert tested(API_KEY) == (True, "Ozon answered /v4/product/info/stocks")
    ok, message = tested("wrong-" + API_KEY)
    assert not ok and "Invalid Api-Key" in message and API_KEY not in message


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"login": "", "password": API_KEY}, "login .the seller's numeric Client-Id. is empty"),
        ({"login": "abc", "password": API_KEY}, "login must be the seller's numeric Client-Id"),
        ({"login": CLIENT_ID, "password": ""}, r"password \(the Api-Key\) is empty"),
        ({"login": CLIENT_ID, "password": "ab\ncd"}, "control character"),
        (
            {"login": CLIENT_ID, "password": API_KEY, "extra": {"timeout": "soon"}},
            "extra 'timeout' must be a number",
        ),
    ],
)
def test_bad_connections_are_named(monkeypatch, fields, message):
    set_conn(monkeypatch, **fields)
    with pytest.raises(ConfigError, match=message) as caught:
        OzonHook("ozon_test").get_client()
    assert "connection 'ozon_test'" in str(caught.value) and API_KEY not in str(caught.value)


def test_key_with_a_trailing_newline_works_and_is_never_printed(monkeypatch, simulator, caplog):
    caplog.set_level(logging.DEBUG)
    set_conn(monkeypatch, host=simulator.url, login=f" {CLIENT_ID}\n", password=API_KEY + "\n")
    client = OzonHook("ozon_test").get_client()
    assert next(client.pages(METHODS[V4_STOCKS], limit=1)).rows == 1
    assert API_KEY not in caplog.text


def test_oauth_token_is_sent_as_bearer_and_never_printed(monkeypatch, simulator):
    set_conn(
        monkeypatch,
        host=simulator.url,
        password="tok-secret-1",
        extra={"auth": "oauth", "client_id": CLIENT_ID},
    )
    client = OzonHook("ozon_test").get_client()
    prepared = client._session().prepare_request(requests.Request("POST", simulator.url + V4_STOCKS))
    assert prepared.headers["Authorization"] == "Bearer tok-secret-1"
    assert "Api-Key" not in prepared.headers and client.client_id == CLIENT_ID
    assert "tok-secret-1" not in repr(client) + repr(client.auth)


def test_wrong_key_fails_test_connection_without_leaking_it(monkeypatch, simulator):
    set_conn(monkeypatch, host=simulator.url, login=CLIENT_ID, password="wrong-" + API_KEY)
    ok, message = OzonHook("ozon_test").test_connection()
    assert not ok and "Invalid Api-Key" in message and API_KEY not in message


def test_the_hook_uses_only_http_hooks_public_api():
    """No private member of HttpHook (or BaseHook) is overridden or called: an upgrade of the
    providers-http package that renames one cannot break the hook silently."""
    import inspect
    import re

    from airflow.providers.http.hooks.http import HttpHook

    from ozon_inventory.hooks import ozon

    inherited = {name for klass in HttpHook.__mro__ for name in vars(klass) if name.startswith("_")}
    inherited -= {name for name in inherited if name.startswith("__") and name.endswith("__")}
    overridden = {name for name in vars(OzonHook) if name in inherited}
    called = set(re.findall(r"\.(_[a-z]\w*)", inspect.getsource(ozon))) & inherited
    assert not overridden and not called, (overridden, called)


def test_the_session_carries_ozons_auth_not_basic_auth(monkeypatch, simulator):
    set_conn(monkeypatch, host=simulator.url, login=CLIENT_ID, password=API_KEY, extra={"workers": 2})
    session = OzonHook("ozon_test").get_conn()
    prepared = session.prepare_request(requests.Request("POST", simulator.url + V4_STOCKS))
    assert prepared.headers["Client-Id"] == CLIENT_ID and "Authorization" not in prepared.headers
    assert "workers" not in prepared.headers
