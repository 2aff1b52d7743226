"""The schema's version and its migration: once per version, never in readers' way, never downgrading."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from ozon_inventory.exceptions import LockNotGranted, SchemaVersionError
from ozon_inventory.schema import SCHEMA_VERSION, migrate, require_current, schema_version

V6_TABLES = ("ozon_rate_budget", "ozon_account_key", "ozon_alert_state")


def at_version_5(conn) -> None:
    """The schema as version 5 of the code left it."""
    conn.execute(f"DROP TABLE {', '.join(V6_TABLES)}")
    conn.execute("ALTER TABLE ozon_sync_run DROP COLUMN shrink_decision")
    conn.execute("DELETE FROM ozon_schema_version WHERE version > 5")
    conn.commit()


def test_a_first_migration_then_nothing_to_do(pg_empty_dsn):
    with psycopg.connect(pg_empty_dsn) as conn:
        assert schema_version(conn) is None
        with pytest.raises(
            SchemaVersionError, match=r"has no ozon-inventory schema.*run the DAG's migrate task"
        ):
            require_current(conn, "connection ozon_postgres")
        assert migrate(conn) == (None, SCHEMA_VERSION)
        assert migrate(conn) == (SCHEMA_VERSION, SCHEMA_VERSION)
        assert require_current(conn) == SCHEMA_VERSION
        versions = [v for (v,) in conn.execute("SELECT version FROM ozon_schema_version ORDER BY 1")]
        assert versions == list(range(1, SCHEMA_VERSION + 1))


def test_an_older_schema_is_named_and_migrated(pg_dsn):
    with psycopg.connect(pg_dsn) as conn:
        at_version_5(conn)
        with pytest.raises(
            SchemaVersionError,
            match=rf"connection x is at schema version 5, and this code needs version {SCHEMA_VERSION}: run the DAG's "
            "migrate task",
        ):
            require_current(conn, "connection x")
        assert migrate(conn) == (5, SCHEMA_VERSION)
        found = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = ANY(%s)", (list(V6_TABLES),))
        assert found.fetchone() == (3,)


def test_a_newer_schema_is_refused_and_left_alone(pg_dsn):
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("INSERT INTO ozon_schema_version (version) VALUES (%s)", (SCHEMA_VERSION + 1,))
        conn.execute("DROP VIEW inventory_data")  # a newer version's change, which must stay
        conn.commit()
        message = rf"schema version {SCHEMA_VERSION + 1} is newer than this code's {SCHEMA_VERSION}: upgrade ozon-inventory"
        with pytest.raises(SchemaVersionError, match=message):
            migrate(conn)
        with pytest.raises(SchemaVersionError, match=message):
            require_current(conn)
        assert conn.execute("SELECT to_regclass('inventory_data')").fetchone() == (None,)


def test_a_migration_gives_way_to_readers_and_names_the_one_in_its_way(pg_dsn):
    """An analyst's transaction that read a view stays open: each attempt waits at most its lock
    timeout (a dashboard reading meanwhile waits no longer), the migration fails naming the session and
    changes nothing; once the session ends, it goes through."""
    with psycopg.connect(pg_dsn) as conn:
        at_version_5(conn)
    idle = psycopg.connect(pg_dsn, application_name="analyst notebook")
    idle.execute("SELECT count(*) FROM inventory_data").fetchone()  # idle in transaction
    (pid,) = idle.execute("SELECT pg_backend_pid()").fetchone()
    reads: list[float] = []
    stop = threading.Event()

    def dashboard() -> None:
        with psycopg.connect(pg_dsn, autocommit=True, options="-c statement_timeout=3000") as conn:
            while not stop.is_set():
                started = time.monotonic()
                conn.execute("SELECT count(*) FROM inventory_data").fetchone()
                reads.append(time.monotonic() - started)
                time.sleep(0.02)

    reading = threading.Thread(target=dashboard)
    reading.start()
    try:
        with psycopg.connect(pg_dsn) as conn, pytest.raises(LockNotGranted) as caught:
            migrate(conn, "connection owner", lock_timeout_s=0.3, attempts=3, sleep=lambda _: time.sleep(0.1))
    finally:
        stop.set()
        reading.join(10)
    message = str(caught.value)
    assert (
        f"connection owner: migrating the schema from version 5 to {SCHEMA_VERSION} needs exclusive locks"
        in message
    )
    assert f"session pid {pid} (analyst notebook, user " in message and "idle in transaction" in message
    assert (
        "holds inventory_data (AccessShareLock)" in message
        and "in each of 3 attempts; nothing was changed" in message
    )
    assert reads and max(reads) < 1.0, f"a reader waited {max(reads):.2f} s behind the migration"
    with psycopg.connect(pg_dsn) as conn:
        assert schema_version(conn) == 5
        idle.close()
        assert migrate(conn, lock_timeout_s=0.3) == (5, SCHEMA_VERSION)


def test_a_current_schema_is_only_read_whoever_holds_its_tables(pg_dsn):
    """Once current, migrate takes no lock a reader holds: it returns at once past an idle reader."""
    idle = psycopg.connect(pg_dsn, application_name="analyst notebook")
    idle.execute("SELECT count(*) FROM inventory_data").fetchone()
    idle.execute("SELECT count(*) FROM ozon_sync_run").fetchone()  # idle in transaction
    try:
        with psycopg.connect(pg_dsn) as conn:
            started = time.monotonic()
            assert migrate(conn, lock_timeout_s=0.1, attempts=1) == (SCHEMA_VERSION, SCHEMA_VERSION)
            assert time.monotonic() - started < 1.0
    finally:
        idle.close()
