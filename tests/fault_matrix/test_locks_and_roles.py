"""Other sessions and roles around a load: an analyst's idle transaction, a session holding a table
lock, a least-privilege loading role, a schema migrated by a newer version. Each case: a good run,
the fault run, a recovery run, and the matrix's five checks (catalogue, history, nothing lost while
the fault lasted, the error naming its cause, no secret anywhere).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest

from tests.fault_matrix.conftest import Matrix, assert_names, permanent

READER = "analyst notebook"


def reader(matrix: Matrix, name: str = READER, autocommit: bool = False) -> Any:
    """A session of someone else's; a reader queued behind a lock would be cancelled after 3 s."""
    return psycopg.connect(
        matrix.dsn, application_name=name, autocommit=autocommit, options="-c statement_timeout=3000"
    )


def read_while(matrix: Matrix, running: threading.Event, seen: list[float]) -> None:
    """A dashboard: reads the views and the ledger over and over while ``running``, timing each read."""
    with reader(matrix, "dashboard", autocommit=True) as conn:
        while running.is_set():
            started = time.monotonic()
            conn.execute("SELECT count(*) FROM inventory_data").fetchone()
            conn.execute("SELECT count(*) FROM ozon_sync_run").fetchone()
            conn.execute("SELECT count(*) FROM ozon_stock_by_warehouse").fetchone()
            seen.append(time.monotonic() - started)
            time.sleep(0.02)


def run_with_dashboard(matrix: Matrix, **kwargs: Any) -> tuple[Any, list[float]]:
    running, seen = threading.Event(), []
    running.set()
    dashboard = threading.Thread(target=read_while, args=(matrix, running, seen))
    dashboard.start()
    try:
        result = matrix.run(**kwargs)
    finally:
        running.clear()
        dashboard.join(10)
    return result, seen


def test_an_idle_reader_of_the_views_and_the_ledger_never_stalls_a_load(matrix):
    """The analyst read ``inventory_data`` and the ledger and left the transaction open: the load goes
    through (no DDL on its path), and a dashboard reading all along is never queued behind it."""
    matrix.good_run()
    matrix.catalogue.change_stock(0.1, seed=31)
    matrix.catalogue.remove_products(3)
    idle = reader(matrix)
    idle.execute("SELECT count(*) FROM inventory_data").fetchone()
    idle.execute("SELECT count(*) FROM ozon_sync_run").fetchone()  # idle in transaction from here
    try:
        started = time.monotonic()
        result, reads = run_with_dashboard(matrix)
        took = time.monotonic() - started
    finally:
        idle.close()
    assert result.complete, result.text
    assert took < 30, f"the run took {took:.1f} s"
    assert reads and max(reads) < 1.5, f"a dashboard read waited {max(reads):.2f} s"
    matrix.assert_recovered()
    matrix.good_run()  # and the next run, the idle session gone
    matrix.assert_recovered()


def test_a_session_holding_a_table_lock_fails_the_load_naming_it(matrix, monkeypatch):
    """``LOCK TABLE … IN SHARE MODE`` left open in a session: the load gives way after its lock timeout,
    tries again, then fails naming that session (pid, application, since when); nothing changed, and
    readers went on reading all the while."""
    from ozon_inventory import load
    from ozon_inventory.exceptions import LockNotGranted

    monkeypatch.setattr(load, "LOAD_LOCK_TIMEOUT_S", 0.5)
    monkeypatch.setattr(load, "LOAD_ATTEMPTS", 2)
    matrix.good_run()
    matrix.catalogue.change_stock(0.1, seed=32)
    before = matrix.state()
    holder = reader(matrix, "nightly export")
    holder.execute("LOCK TABLE ozon_stock_by_type_history IN SHARE MODE")
    (pid,) = holder.execute("SELECT pg_backend_pid()").fetchone()
    try:
        result, reads = run_with_dashboard(matrix)
        matrix.assert_unchanged(before)
    finally:
        holder.close()
    assert isinstance(result.error, LockNotGranted), result.text
    assert not permanent(result.error)  # a retry goes through once the session ends
    assert_names(
        rf"the load waited 0\.5 s for a lock held by session pid {pid} \(nightly export, user \w+, "
        r"idle in transaction, in a transaction since [0-9T:+-]+, last query at [0-9T:+-]+: "
        r"'SELECT pg_backend_pid\(\)'; holds ozon_stock_by_type_history \(ShareLock\)\), in each of 2 attempts; "
        r"nothing was loaded and the previous snapshot is untouched",
        str(result.error),
    )
    assert reads and max(reads) < 1.5, f"a dashboard read waited {max(reads):.2f} s"
    matrix.assert_history()
    matrix.good_run()
    matrix.assert_recovered()


def _grant_loader(matrix: Matrix, role: str) -> str:
    """A role with only SELECT, INSERT, UPDATE and DELETE on the project's tables (and the sequences
    their ids come from), as a DBA grants it; its DSN."""
    with matrix.connect() as owner:
        owner.autocommit = True
        owner.execute(f"DROP ROLE IF EXISTS {role}")
        owner.execute(f"CREATE ROLE {role} LOGIN")
        owner.execute(f"REVOKE CREATE ON SCHEMA public FROM PUBLIC, {role}")
        owner.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
        owner.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}")
    rest = matrix.dsn.partition("://")[2].partition("@")[2]
    return f"postgresql://{role}@{rest}"


def test_a_least_privilege_role_loads(matrix):
    """The schema's owner migrated it; the loading role may only read and write the tables: it loads."""
    matrix.good_run()  # as the owner: the schema is current
    role = "ozon_loader_" + matrix.dsn.rsplit("/", 1)[1][-8:]
    owner_dsn, matrix.dsn = matrix.dsn, _grant_loader(matrix, role)
    try:
        with matrix.connect() as conn:
            assert conn.execute("SELECT has_schema_privilege('public', 'CREATE')").fetchone() == (False,)
        matrix.catalogue.change_stock(0.1, seed=33)
        matrix.catalogue.remove_products(2)
        result = matrix.run(client=matrix.client(budget_db=matrix.dsn))  # the rate budget as the role too
        assert result.complete, result.text
        matrix.assert_recovered()
        matrix.good_run()
        matrix.assert_recovered()
    finally:
        matrix.dsn = owner_dsn
        with matrix.connect() as conn:
            conn.autocommit = True
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


@pytest.mark.parametrize("ahead", [1, 5])
def test_a_schema_newer_than_the_code_is_refused_by_name(matrix, ahead):
    """A newer ozon-inventory migrated the database: this code touches nothing and says to upgrade."""
    from ozon_inventory.exceptions import SchemaVersionError
    from ozon_inventory.schema import SCHEMA_VERSION

    newer = SCHEMA_VERSION + ahead

    matrix.good_run()
    matrix.catalogue.change_stock(0.1, seed=34)
    with matrix.connect() as conn:
        conn.execute("INSERT INTO ozon_schema_version (version) VALUES (%s)", (newer,))
    before = matrix.state()
    result = matrix.run()
    assert isinstance(result.error, SchemaVersionError), result.text
    assert permanent(result.error)
    assert_names(
        rf"schema version {newer} is newer than this code's {SCHEMA_VERSION}: upgrade ozon-inventory",
        str(result.error),
    )
    matrix.assert_unchanged(before)
    with matrix.connect() as conn:
        conn.execute("DELETE FROM ozon_schema_version WHERE version = %s", (newer,))
    matrix.good_run()
    matrix.assert_recovered()
