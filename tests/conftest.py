"""Shared fixtures: an Airflow home on SQLite, the Ozon simulator on 127.0.0.1, a real PostgreSQL.

The Airflow environment is set before anything imports Airflow.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="ozon-inventory-airflow-"))
os.environ.setdefault("AIRFLOW_HOME", str(_AIRFLOW_HOME))
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")
os.environ["OZON_INVENTORY_RETRIES"] = "0"  # a failing task fails at once in tests
os.environ["OZON_INVENTORY_SCHEDULE"] = "@hourly"
for path in (ROOT / "plugins", ROOT / "dags", ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import pytest  # noqa: E402

from ozon_simulator import SimulatorConfig, default_simulator, serve  # noqa: E402

CLIENT_ID = "100200"
API_KEY = "fake-key-never-logged"  # a simulator key, not a secret


@pytest.fixture(autouse=True)
def fresh_rate_budgets():
    """Each test starts with untouched per-Client-Id budgets (they are process-wide by design)."""
    from ozon_inventory import ratelimit

    ratelimit._registry.clear()
    yield


@pytest.fixture
def simulator():
    """The old system's dataset (175 products, 27 warehouses, 511 rows) served on 127.0.0.1."""
    sim = default_simulator(client_id=CLIENT_ID, api_key=API_KEY, config=SimulatorConfig())
    running = serve(sim)
    yield running
    running.stop()


@pytest.fixture
def client(simulator):
    from ozon_inventory.client import OzonClient

    return OzonClient(
        simulator.url, CLIENT_ID, API_KEY, rate_limit=1000, timeout=2, backoff=0.01, backoff_max=0.05
    )


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL 15 started from the machine's binaries for the whole test session.

    Its folder is world-readable because, as root, the server runs as the ``postgres`` user.
    """
    import shutil

    from scripts.localpg import LocalPostgres

    folder = Path(tempfile.mkdtemp(prefix="ozon-inventory-pg-"))
    os.chmod(folder, 0o755)
    server = LocalPostgres(folder / "data").start()
    _check_timeouts_fire(server)
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


def _new_database(pg_server, template: str = "template1") -> str:
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return f"postgresql://{pg_server.user}@127.0.0.1:{pg_server.port}/{name}"


@pytest.fixture(scope="session")
def pg_template(pg_server):
    """A database at the current schema version, which each ``pg_dsn`` database is copied from: the
    DAG's migrate task would have made it so before any task used it."""
    import psycopg

    from ozon_inventory.schema import migrate

    dsn = _new_database(pg_server)
    with psycopg.connect(dsn) as conn:
        migrate(conn)
    return dsn.rpartition("/")[2]


def _check_timeouts_fire(server) -> None:
    """The server's own timeouts must fire, or a test of a lock wait hangs instead of failing: under
    ``OZON_TEST_CLOCK`` they depend on ``scripts/faketime/waits.c`` being preloaded by the server."""
    import psycopg

    with psycopg.connect(server.dsn, autocommit=True, options="-c statement_timeout=100") as conn:
        started = time.monotonic()
        try:
            conn.execute("SELECT pg_sleep(3)")
        except psycopg.errors.QueryCanceled:
            return
    raise RuntimeError(
        f"the tests' PostgreSQL ignored statement_timeout (pg_sleep(3) ran {time.monotonic() - started:.1f} s): "
        "its timeouts do not fire, so lock-wait tests would hang. Under OZON_TEST_CLOCK the server must "
        "preload scripts/faketime/waits.c's library (LD_PRELOAD, readable by the user the server runs as)"
    )


@pytest.fixture
def pg_dsn(pg_server, pg_template):
    """A fresh database per test, at the current schema version and holding no rows; its DSN."""
    return _new_database(pg_server, pg_template)


@pytest.fixture
def pg_empty_dsn(pg_server):
    """A fresh, empty database per test (no schema): what a first migration starts from; its DSN."""
    return _new_database(pg_server)


@pytest.fixture
def pg_conn(pg_dsn):
    import psycopg

    with psycopg.connect(pg_dsn) as conn:
        yield conn


@pytest.fixture(scope="session")
def airflow_db():
    """Airflow's metadata database (SQLite in the session's AIRFLOW_HOME), created once."""
    from airflow.utils import db

    db.resetdb()
    return True
