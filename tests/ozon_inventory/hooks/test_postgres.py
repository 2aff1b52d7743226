"""Connections to the target database: named, autocommit, and described without the password."""

from __future__ import annotations

import json

from ozon_inventory.hooks.postgres import as_database, describe_dsn, hook_database


def test_a_database_connection_is_named_and_autocommit(pg_dsn):
    with as_database(pg_dsn).connect("ozon_inventory test") as conn:
        assert conn.autocommit
        assert conn.execute("SELECT current_setting('application_name')").fetchone() == (
            "ozon_inventory test",
        )


def test_an_airflow_connection_opens_through_postgres_hook_with_its_options(pg_dsn, monkeypatch):
    user, rest = pg_dsn.partition("://")[2].split("@")
    host_port, dbname = rest.split("/")
    host, port = host_port.split(":")
    conn = {"conn_type": "postgres", "host": host, "port": int(port), "login": user, "schema": dbname}
    extra = {"options": "-c statement_timeout=4321", "connect_timeout": 7}
    monkeypatch.setenv("AIRFLOW_CONN_TARGET_X", json.dumps(conn | {"extra": extra}))
    database = hook_database("target_x")
    assert database.name == "connection target_x"
    with database.connect("ozon_inventory test") as opened:
        assert opened.execute("SELECT current_setting('statement_timeout')").fetchone() == ("4321ms",)
        assert opened.info.get_parameters()["connect_timeout"] == "7"


def test_a_conninfo_is_described_without_its_password():
    text = describe_dsn("postgresql://ozon:s3cret@db.example:6543/inventory")
    assert text == "database inventory on db.example:6543 as ozon"
    assert "s3cret" not in repr(as_database("postgresql://ozon:s3cret@db.example/inventory"))
    assert describe_dsn("not a :: conninfo ===") == "(unparsable conninfo)"
