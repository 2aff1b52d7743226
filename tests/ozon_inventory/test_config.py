"""Run settings: every error names the param or Variable, what it must be and what it is; the
accounts are a JSON list of non-empty strings, one seller (Client-Id) and one name each."""

from __future__ import annotations

import re

import pytest

from ozon_inventory import naming
from ozon_inventory.config import parse_accounts, refuse_shared_client_ids, run_settings
from ozon_inventory.exceptions import ConfigError

VAR = "AIRFLOW_VAR_OZON_INVENTORY_ACCOUNTS"


def refused(params: dict | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        run_settings(params or {})
    return str(caught.value)


def test_accounts_come_from_the_param_then_the_variable_then_the_default(monkeypatch):
    monkeypatch.delenv(VAR, raising=False)
    assert run_settings({}).accounts == ("ozon_default",)
    monkeypatch.setenv(VAR, '["shop:1", "ozon_магазин", " padded "]')
    settings = run_settings({})
    assert settings.accounts == ("shop:1", "ozon_магазин", "padded")
    assert settings.where("accounts") == "Variable ozon_inventory_accounts"
    assert run_settings({"accounts": ["my shop"]}).accounts == ("my shop",)
    monkeypatch.setenv(VAR, "  ")  # a blank Variable is not set
    assert run_settings({}).accounts == ("ozon_default",)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        (
            '["ozon_default",',
            r"found '\[\"ozon_default\",': not JSON \(Expecting value: line 1 column 17 \(char 16\)\)",
        ),
        ('{"ozon_default": 1}', r"found a JSON object: '\{\"ozon_default\": 1\}'"),
        ('"ozon_default"', r"found a JSON string"),
        ("ozon_default,ozon_second", r"found 'ozon_default,ozon_second': not a JSON list"),
        ("42", r"found a JSON number: '42'"),
        ('["ozon_default", ""]', r"entry 2 is an empty string: '' in '\[\"ozon_default\", \"\"\]'"),
        ('["ozon_default", null]', r"entry 2 is a JSON null: None"),
        ('[["a"]]', r"entry 1 is a JSON list"),
        ('[{"id": "a"}]', r"entry 1 is a JSON object"),
    ],
)
def test_an_accounts_variable_that_is_no_json_list_of_ids_names_the_variable(monkeypatch, text, found):
    monkeypatch.setenv(VAR, text)
    message = refused()
    assert message.startswith(
        "Variable ozon_inventory_accounts must be a JSON list of Ozon connection ids"
    ), message
    assert re.search(found, message), message


def test_an_accounts_param_is_checked_the_same_way_and_named():
    assert refused({"accounts": ["a", 5]}).startswith("param accounts must be a JSON list")
    assert "entry 2 is a JSON number: 5" in refused({"accounts": ["a", 5]})
    assert refused({"accounts": []}).startswith(
        "param accounts is empty: name at least one Ozon connection id"
    )
    assert refused({"accounts": ["a", " a", "b"]}) == (
        "param accounts lists a connection twice: 'a' in ['a', 'a', 'b']"
    )


def test_ids_whose_names_would_meet_are_refused_by_name(monkeypatch):
    from ozon_inventory.staging import safe_part

    assert parse_accounts(["shop:1", "shop_1", "Shop", "shop"]) == ("shop:1", "shop_1", "Shop", "shop")
    monkeypatch.setattr(naming, "account_name", safe_part)  # a lossy naming, as the old folders had
    with pytest.raises(ConfigError) as caught:
        parse_accounts(["ozon_default", "shop:1", "shop_1"], "param accounts")
    assert str(caught.value).startswith(
        "param accounts: accounts 'shop:1' and 'shop_1' would share the staging folder and asset 'shop_1'"
    )


def test_two_accounts_of_one_client_id_are_refused_by_name():
    refuse_shared_client_ids({"a": "100", "b": "200", "c": None, "d": None})  # None: not read, not judged
    with pytest.raises(ConfigError) as caught:
        refuse_shared_client_ids(
            {"shop:1": "100", "shop_1": "100", "x": "200", "y": "300", "z": "300"}, "param accounts"
        )
    assert str(caught.value) == (
        "param accounts: each account must be a different seller (Client-Id), found 'shop:1', 'shop_1' "
        "all hold Client-Id 100; 'y', 'z' all hold Client-Id 300; keep one connection per seller in the list"
    )


def test_numbers_and_switches_name_their_source(monkeypatch):
    assert refused({"shrink_threshold": 1.5}) == "param shrink_threshold must be in [0, 1), got 1.5"
    monkeypatch.setenv("AIRFLOW_VAR_OZON_INVENTORY_SHRINK_THRESHOLD", "half")
    assert refused() == "Variable ozon_inventory_shrink_threshold must be a number, got 'half'"
    monkeypatch.delenv("AIRFLOW_VAR_OZON_INVENTORY_SHRINK_THRESHOLD")
    assert refused({"retention_days": -1}) == "param retention_days must be a number of days >= 0, got -1.0"
    assert refused({"key_warn_days": True}) == "param key_warn_days must be a number, got True"
    monkeypatch.setenv("AIRFLOW_VAR_OZON_INVENTORY_ALLOW_SHRINK", "maybe")
    assert refused() == "Variable ozon_inventory_allow_shrink must be true or false, got 'maybe'"
    for text, allowed in (("true", True), ("Yes", True), ("off", False), ("0", False)):
        monkeypatch.setenv("AIRFLOW_VAR_OZON_INVENTORY_ALLOW_SHRINK", text)
        assert run_settings({}).allow_shrink is allowed
    assert run_settings({"allow_shrink": True}).allow_shrink is True
    assert refused({"postgres_conn_id": 5}) == "param postgres_conn_id must be a non-empty string, got 5"


def test_a_broken_alert_notifier_names_the_variable():
    from ozon_inventory.alerts import Alert, notifiers_for

    alert = Alert("acc", "degraded", "d", "subject", "text")
    for text, problem in (('{"class": ', "not JSON"), ('["x"]', "not a JSON object")):
        with pytest.raises(ConfigError) as caught:
            notifiers_for(alert, None, text)
        assert str(caught.value).startswith("Variable ozon_inventory_alert_notifier must be a JSON object"), (
            caught.value
        )
        assert problem in str(caught.value)
