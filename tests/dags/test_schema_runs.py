"""Whole DAG runs and the schema: the migrate task as the schema's owner and a loading role that may
only read and write the project's tables; a schema newer than the code stops the run before Ozon is
asked anything."""

from __future__ import annotations

import psycopg

from tests.dags.test_dag_runs import env, run_dag, states  # noqa: F401 - the fixture

LOADER = "ozon_loader"


def loader_dsn(owner_dsn: str) -> str:
    """A role granted, as a DBA would before the first migration, only SELECT, INSERT, UPDATE and
    DELETE on the tables the owner creates (and the sequences behind their ids)."""
    with psycopg.connect(owner_dsn, autocommit=True) as owner:
        if not owner.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (LOADER,)).fetchone():
            owner.execute(f"CREATE ROLE {LOADER} LOGIN")
        owner.execute(
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {LOADER}"
        )
        owner.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE ON SEQUENCES TO {LOADER}")
    scheme, _, rest = owner_dsn.partition("://")
    return f"{scheme}://{LOADER}@{rest.partition('@')[2]}"


def test_migrate_as_the_owner_and_load_as_a_least_privilege_role(env, pg_empty_dsn, monkeypatch, simulator):  # noqa: F811
    from ozon_inventory.schema import SCHEMA_VERSION

    loader = loader_dsn(pg_empty_dsn)
    monkeypatch.setenv("AIRFLOW_CONN_OZON_OWNER", pg_empty_dsn)
    monkeypatch.setenv("AIRFLOW_CONN_OZON_POSTGRES", loader)
    conf = {"migrate_conn_id": "ozon_owner"}
    for hour in (10, 11):  # the first run migrates, the second finds the schema current
        dag_run = run_dag(hour, conf, day=4)
        assert str(dag_run.state) == "success", states(dag_run)
    with psycopg.connect(loader) as conn:
        assert conn.execute("SELECT has_schema_privilege('public', 'CREATE')").fetchone() == (False,)
        owners = conn.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE tablename LIKE 'ozon\\_%%'"
        ).fetchall()
        assert owners == [("ozon",)]
        assert conn.execute("SELECT max(version) FROM ozon_schema_version").fetchone() == (SCHEMA_VERSION,)
        ledger = conn.execute("SELECT status, products, warehouse_rows FROM ozon_sync_run ORDER BY loaded_at")
        assert ledger.fetchall() == [("complete", 175, 511)] * 2
        expected = sum(len(p.stocks) for p in simulator.sim.accounts["100200"].catalogue.products)
        assert conn.execute("SELECT count(*) FROM inventory_data WHERE source = 'Ozon'").fetchone() == (
            expected,
        )


def test_a_newer_schema_stops_the_run_before_any_request(env, pg_dsn, simulator):  # noqa: F811
    from ozon_inventory.schema import SCHEMA_VERSION

    with psycopg.connect(pg_dsn) as conn:
        conn.execute("INSERT INTO ozon_schema_version (version) VALUES (%s)", (SCHEMA_VERSION + 1,))
    asked = len(simulator.sim.request_log())
    dag_run = run_dag(12, day=4)
    got = states(dag_run)
    assert str(dag_run.state) == "failed"
    assert got[("migrate", -1)] == "failed"
    fetches = {s for (task, _), s in got.items() if task.startswith("account.fetch_")}
    assert fetches == {"upstream_failed"}, got  # validate and report run whatever happened, and fail
    assert len(simulator.sim.request_log()) == asked  # Ozon was asked nothing
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM ozon_sync_run").fetchone() == (0,)
