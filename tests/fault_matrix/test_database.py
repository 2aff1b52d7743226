"""The database and the processes around it: kill -9 mid-load or mid-fetch, PostgreSQL stopped or crashed,
concurrent loads of one account. One transaction per load: the previous snapshot is whole or the new one is.
"""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import psycopg
import pytest

from tests.conftest import ROOT
from tests.fault_matrix.conftest import (
    ACCOUNT,
    SECRET,
    Matrix,
    assert_names,
    db_state,
    diff_states,
    expected_state,
)

LOAD_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import psycopg
    from ozon_inventory.load import load_run
    from ozon_inventory.staging import StagingArea
    from ozon_inventory.validate import ValidationReport

    root, run_key, dsn = sys.argv[1:4]
    staging = StagingArea(root, "acc", run_key)
    report = ValidationReport.from_dict(json.loads((staging.dir("validated") / "report.json").read_text()))
    with psycopg.connect(dsn) as conn:
        load_run(conn, staging, report, "run-" + run_key, {})
    """
)
FETCH_SCRIPT = textwrap.dedent(
    """
    import sys
    from ozon_inventory.client import OzonClient
    from ozon_inventory.fetch import fetch_source
    from ozon_inventory.staging import StagingArea

    root, run_key, url, client_id, key = sys.argv[1:6]
    client = OzonClient(url, client_id, key, rate_limit=1000, workers=1)
    fetch_source(client, StagingArea(root, "acc", run_key), "warehouse_stocks", "v2")
    """
)


def python(script: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "plugins"), str(ROOT)]))
    return subprocess.Popen(
        [sys.executable, "-c", script, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def prepare(matrix: Matrix, key: str) -> None:
    """Fetch, validate and merge a run (its load comes later, elsewhere)."""
    result = matrix.run(key, before_load=lambda _: (_ for _ in ()).throw(_Stop()))
    assert isinstance(result.error, _Stop), result.text
    matrix.errors.remove(result.error)


class _Stop(Exception):
    """Stops a run after merge."""


def wait_for(check, timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def blocked_backends(conn) -> list[int]:
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ).fetchall()
    return [pid for (pid,) in rows]


@pytest.mark.parametrize("table", ["ozon_stock_by_warehouse_history", "ozon_sync_run"])
def test_kill_9_in_the_middle_of_a_load(matrix, table):
    """The load is killed while it waits (mid-transaction: stocks applied, ``table`` next): nothing of it stays."""
    matrix.good_run()
    matrix.catalogue.change_stock(0.1, seed=13)
    matrix.catalogue.remove_products(5)
    before = matrix.state()
    key = matrix.next_key()
    prepare(matrix, key)
    with matrix.connect() as blocker, matrix.connect() as watcher:
        watcher.autocommit = True
        blocker.execute(f"LOCK TABLE {table} IN SHARE MODE")
        load = python(LOAD_SCRIPT, str(matrix.staging_root), key, matrix.dsn)
        wait_for(lambda: blocked_backends(watcher), what="the load to block")
        victim = blocked_backends(watcher)[0]
        os.kill(load.pid, signal.SIGKILL)
        assert load.wait(10) == -signal.SIGKILL
        blocker.rollback()
        wait_for(
            lambda: (
                not watcher.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (victim,)).fetchone()
            ),
            what="the killed load's backend to end",
        )
    matrix.assert_unchanged(before)
    matrix.assert_history()
    matrix.good_run(run_key=key)  # the task runs again
    matrix.assert_recovered()


@pytest.mark.parametrize("sim_size", [{"products": 1200}])
def test_kill_9_in_the_middle_of_a_fetch(matrix):
    """A fetch killed between pages leaves pages without a manifest: the source counts as not fetched."""
    matrix.good_run()
    matrix.catalogue.change_stock(0.05, seed=20)
    before = matrix.state()
    key = matrix.next_key()
    staging = matrix.staging(key)
    matrix.sim.configure({"latency": 0.3})
    fetch = python(FETCH_SCRIPT, str(matrix.staging_root), key, matrix.running.url, "100200", SECRET)
    wait_for(lambda: (staging.dir("warehouse_stocks") / "page-000001.json.gz").exists(), what="a first page")
    os.kill(fetch.pid, signal.SIGKILL)
    assert fetch.wait(10) == -signal.SIGKILL
    assert staging.manifest("warehouse_stocks") is None
    matrix.assert_unchanged(before)
    matrix.sim.configure({"latency": 0.0})
    matrix.good_run(run_key=key)  # the retried task fetches again over its own leftovers
    matrix.assert_recovered()


@pytest.fixture
def pg(pg_server):
    """The session's PostgreSQL, always running again after the case."""
    yield pg_server
    if not pg_server.running():
        pg_server.start()


def test_postgres_down_during_a_run(matrix, pg):
    matrix.good_run()
    matrix.catalogue.change_stock(0.05, seed=14)
    before = matrix.state()
    result = matrix.run(between=lambda _: pg.stop())
    assert result.loaded is None and isinstance(result.error, psycopg.OperationalError), result.text
    assert_names(
        rf'connection to server at "127\.0\.0\.1", port {pg.port} failed: Connection refused',
        str(result.error),
    )
    pg.start()
    matrix.assert_unchanged(before)
    matrix.good_run()
    matrix.assert_recovered()


def test_postgres_restarted_between_runs_with_a_shared_rate_budget(matrix, pg):
    """The client's rate budget lives in PostgreSQL: its connection dies with the restart and is reopened."""
    client = matrix.client(budget_db=matrix.dsn)
    matrix.good_run(client=client)
    matrix.catalogue.change_stock(0.05, seed=15)
    pg.stop()
    pg.start()
    result = matrix.run(client=client)
    assert result.complete, result.text
    matrix.assert_recovered()


def test_postgres_crashes_in_the_middle_of_a_load(matrix, pg):
    """``pg_ctl stop -m immediate`` while a load waits mid-transaction: after crash recovery, the old snapshot."""
    matrix.good_run()
    matrix.catalogue.change_stock(0.1, seed=16)
    before = matrix.state()
    key = matrix.next_key()
    prepare(matrix, key)
    errors: list[BaseException] = []

    def load() -> None:
        from ozon_inventory.load import load_run
        from ozon_inventory.validate import ValidationReport

        staging = matrix.staging(key)
        report = ValidationReport.from_dict(staging.read_json("validated", "report.json"))
        try:
            with matrix.connect() as conn:
                load_run(conn, staging, report, f"run-{key}", {})
        except Exception as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    blocker = matrix.connect()
    watcher = matrix.connect()
    watcher.autocommit = True
    blocker.execute("LOCK TABLE ozon_sync_run IN SHARE MODE")
    worker = threading.Thread(target=load)
    worker.start()
    wait_for(lambda: blocked_backends(watcher), what="the load to block")
    # The test server runs with synchronous_commit off (LocalPostgres fast=True): a crash may lose the
    # last commits of up to 0.6 s ago, the good run's among them. What is committed goes to disk first.
    watcher.execute("CHECKPOINT")
    pg._run("pg_ctl", "-D", str(pg.datadir), "-m", "immediate", "-w", "stop")
    worker.join(15)
    for conn in (blocker, watcher):
        try:
            conn.close()
        except psycopg.Error:
            pass
    assert errors and isinstance(errors[0], psycopg.OperationalError), errors
    assert_names(
        r"server closed the connection unexpectedly|terminating connection|consuming input failed",
        str(errors[0]),
    )
    matrix.errors.extend(errors)
    pg.start()
    matrix.assert_unchanged(before)
    matrix.assert_history()
    matrix.good_run(run_key=key)
    matrix.assert_recovered()


def test_concurrent_loads_of_one_account_never_show_half_a_snapshot(matrix):
    """Two runs of one account load at once (an older and a newer one): readers see whole snapshots only,
    and the newer one wins whatever the order."""
    matrix.good_run()
    before = matrix.state(full=False)
    older, newer = matrix.next_key(), matrix.next_key()
    matrix.catalogue.change_stock(0.1, seed=17)
    prepare(matrix, older)
    state_older = expected_state(copy.deepcopy(matrix.catalogue))
    time.sleep(1.1)  # Ozon's clock (the Date header) counts whole seconds
    matrix.catalogue.change_stock(0.1, seed=18)
    matrix.catalogue.remove_products(3)
    prepare(matrix, newer)
    state_newer = expected_state(matrix.catalogue)
    seen: list[str] = []
    stop = threading.Event()

    def read() -> None:
        with matrix.connect() as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            while not stop.is_set():
                state = db_state(conn)
                if diff_states(state, before) == []:
                    seen.append("before")
                elif diff_states(state, state_older) == []:
                    seen.append("older")
                elif diff_states(state, state_newer) == []:
                    seen.append("newer")
                else:
                    seen.append("HALF: " + "; ".join(diff_states(state, state_newer))[:300])

    def load(key: str) -> None:
        proc = python(LOAD_SCRIPT, str(matrix.staging_root), key, matrix.dsn)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()

    reader = threading.Thread(target=read)
    reader.start()
    loaders = [threading.Thread(target=load, args=(k,)) for k in (newer, older)]
    for t in loaders:
        t.start()
    for t in loaders:
        t.join(90)
    time.sleep(0.2)
    stop.set()
    reader.join(10)
    assert seen and not [s for s in seen if s.startswith("HALF")], sorted(set(seen))
    assert seen[-1] == "newer"
    matrix.assert_recovered()
    with matrix.connect() as conn:
        stale = conn.execute(
            "SELECT stale_sources FROM ozon_sync_run WHERE account = %s AND run_id = %s",
            (ACCOUNT, f"run-{older}"),
        ).fetchone()
    assert stale is None or set(stale[0]) in (set(), {"stocks", "warehouse_stocks", "warehouses"})


def test_the_same_run_loaded_twice_at_once(matrix):
    """A task that runs twice at once (a zombie and its retry): one load applies, the other finds nothing new."""
    matrix.good_run()
    matrix.catalogue.change_stock(0.1, seed=19)
    key = matrix.next_key()
    prepare(matrix, key)
    loads = [python(LOAD_SCRIPT, str(matrix.staging_root), key, matrix.dsn) for _ in range(2)]
    for proc in loads:
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    matrix.assert_recovered()
    with matrix.connect() as conn:
        changed = conn.execute(
            "SELECT count(*) FROM ozon_stock_by_warehouse_history WHERE account = %s AND run_id = %s",
            (ACCOUNT, f"run-{key}"),
        ).fetchone()[0]
    assert 0 < changed <= round(len(matrix.catalogue.rows) * 0.1) + 1
