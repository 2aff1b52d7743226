"""Account ids that a file system, an object store or a URI cannot hold as they are, in whole
dag.test() runs: every account holds exactly its own seller's stock, its own staging folder and its
own asset event; two accounts of one seller are refused before any fetch; runs staged in the old
folder layout are adopted by their own account.

The old folder naming gave ``shop:1`` and ``shop_1`` (and ``ozon_магазин`` and ``ozon_склад``) one
folder: the second account's tables received the other seller's stock. The catalogues here differ in
size and content, so any mix shows in the exact comparison (``simhost.expected`` / ``loaded``: counts,
sums and a SHA-256 over every row, per account).
"""

from __future__ import annotations

import json
import shutil

import psycopg
import pytest

from ozon_inventory.naming import account_name
from ozon_inventory.staging import legacy_folder, run_key_for
from ozon_inventory.tasks import stock_asset
from ozon_simulator import Account, build_catalogue
from tests.celery_proof.simhost import expected, loaded
from tests.dags.test_dag_runs import env, run_dag, states  # noqa: F401 - env is a fixture

#: ids Airflow tells apart, each its own seller; pairs the old folder naming merged come together
IDS = [
    "shop:1",
    "shop_1",
    "ozon_магазин",
    "ozon_склад",
    "seller/east",
    "..",
    "shop#2",
    "back\\slash",
    "my shop",
    "Shop",
    "shop",
]
#: ids whose environment variables would be one (``AIRFLOW_CONN_SHOP``)
CASED = {"Shop", "shop"}


@pytest.fixture
def sellers(env, simulator, airflow_db):  # noqa: F811 - env is a fixture
    """Add a seller to the simulator (its own Client-Id, key and catalogue) and its connection.

    The connection is an environment variable, as in the other DAG tests, except for ids that
    would share one (``Shop`` and ``shop``: ``AIRFLOW_CONN_SHOP``), which go to Airflow's metadata
    database and are removed afterwards. (A task reads a metadata-database connection through the
    execution API, whose path does not escape the id: one holding ``/`` or ``#`` is found only in
    the environment or another secrets backend.)"""
    from airflow import settings
    from airflow.models.connection import Connection

    added: list[str] = []

    def add(account: str, client_id: str, products: int, seed: int, metastore: bool = False) -> None:
        key = f"key-{client_id}"
        if client_id not in simulator.sim.accounts:
            simulator.sim.accounts[client_id] = Account(
                client_id, key, build_catalogue(products, 5, seed=seed)
            )
        if not metastore:
            env(account, client_id=client_id, api_key=key)
            return
        conn = Connection(
            conn_id=account,
            conn_type="http",
            host=simulator.url,
            login=client_id,
            password=key,
            extra=json.dumps({"rate_limit": 500, "backoff": 0.01, "max_retries": 2, "timeout": 5}),
        )
        with settings.Session() as session:
            session.add(conn)
            session.commit()
        added.append(account)

    yield add
    if added:
        with settings.Session() as session:
            session.query(Connection).filter(Connection.conn_id.in_(added)).delete(synchronize_session=False)
            session.commit()


def catalogue_of(simulator, client_id: str):
    return simulator.sim.accounts[client_id].catalogue


def asset_events(run_id: str) -> dict[str, tuple[str, dict]]:
    """The run's asset events: asset URI -> (asset name, extra)."""
    from airflow import settings
    from airflow.models.asset import AssetEvent, AssetModel

    with settings.Session() as session:
        rows = (
            session.query(AssetModel.uri, AssetModel.name, AssetEvent.extra)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetEvent.source_run_id == run_id)
            .all()
        )
    return {uri: (name, dict(extra or {})) for uri, name, extra in rows}


def test_ids_the_old_folders_merged_each_load_exactly_their_own_seller(sellers, simulator, pg_dsn, tmp_path):
    client_ids = {account: str(700_000 + i) for i, account in enumerate(IDS)}
    for i, account in enumerate(IDS):
        sellers(account, client_ids[account], products=20 + 13 * i, seed=100 + i, metastore=account in CASED)
    dag_run = run_dag(10, {"accounts": IDS}, day=7)
    got = states(dag_run)
    assert str(dag_run.state) == "success", got
    assert all(got[("account.report", i)] == "success" for i in range(len(IDS))), got

    for account in IDS:
        own = expected(catalogue_of(simulator, client_ids[account]))
        assert loaded(pg_dsn, account) == own, account
    with psycopg.connect(pg_dsn) as conn:
        ledger = dict(conn.execute("SELECT account, status || ':' || products FROM ozon_sync_run").fetchall())
    assert ledger == {
        account: f"complete:{len(catalogue_of(simulator, client_ids[account]).products)}" for account in IDS
    }

    # one folder per account, right under the root, named by the encoding; manifests name the id
    root = tmp_path / "staging"
    assert sorted(p.name for p in root.iterdir()) == sorted(account_name(a) for a in IDS)
    run_key = run_key_for(dag_run.logical_date)
    for account in IDS:
        manifest = json.loads(
            (root / account_name(account) / run_key / "stocks" / "manifest.json").read_text()
        )
        assert manifest["account"] == account

    # one asset event per account, each under its own valid (ASCII) URI, telling its own account
    events = asset_events(dag_run.run_id)
    assert set(events) == {stock_asset(a).uri for a in IDS}
    for account in IDS:
        name, extra = events[stock_asset(account).uri]
        assert name == f"ozon-inventory://{account_name(account)}"
        assert extra["account"] == account and extra["status"] == "complete"
        assert extra["products"] == len(catalogue_of(simulator, client_ids[account]).products)


def test_a_cyrillic_id_end_to_end_with_its_asset_event(sellers, simulator, pg_dsn, tmp_path):
    account = "Озон/Склад #1"
    sellers(account, "810000", products=33, seed=5)
    dag_run = run_dag(10, {"accounts": [account]}, day=8)
    got = states(dag_run)
    assert str(dag_run.state) == "success", got
    assert got[("account.load", 0)] == "success" and got[("account.report", 0)] == "success"
    assert loaded(pg_dsn, account) == expected(catalogue_of(simulator, "810000"))
    uri = stock_asset(account).uri
    assert uri.isascii() and uri == "ozon-inventory://" + account_name(account) + "/"
    events = asset_events(dag_run.run_id)
    assert list(events) == [uri]
    assert events[uri][1]["account"] == account and events[uri][1]["products"] == 33
    assert (tmp_path / "staging" / account_name(account) / run_key_for(dag_run.logical_date)).is_dir()


def test_two_accounts_of_one_seller_are_refused_before_any_fetch(sellers, simulator, pg_dsn, capfd):
    sellers("shop:1", "820000", products=20, seed=1)
    sellers("shop_1", "820000", products=20, seed=1)  # another connection to the same Client-Id
    sellers("ozon_other", "830000", products=20, seed=2)
    simulator.sim.reset_stats()
    dag_run = run_dag(10, {"accounts": ["shop:1", "ozon_other", "shop_1"]}, day=9)
    got = states(dag_run)
    assert str(dag_run.state) == "failed"
    assert got[("accounts", -1)] == "failed", got
    assert not any(ti[0].startswith("account.") and state == "success" for ti, state in got.items()), got
    assert simulator.sim.request_log() == []  # nothing was asked of Ozon
    printed = "".join(capfd.readouterr())
    assert (
        "ConfigError: param accounts: each account must be a different seller (Client-Id), found 'shop:1', "
        "'shop_1' all hold Client-Id 820000" in printed
    )
    with psycopg.connect(pg_dsn) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'ozon_sync_run'").fetchone()[
            0
        ]
        assert tables == 0 or conn.execute("SELECT count(*) FROM ozon_sync_run").fetchone()[0] == 0


def test_runs_of_the_old_layout_are_adopted_by_their_own_account(sellers, simulator, pg_dsn, tmp_path):
    sellers("shop:1", "840000", products=25, seed=3)
    sellers("shop_1", "850000", products=40, seed=4)
    first = run_dag(10, {"accounts": ["shop:1", "shop_1"]}, day=10)
    assert str(first.state) == "success", states(first)
    root = tmp_path / "staging"
    key = run_key_for(first.logical_date)
    # as the old layout would have it: shop:1's run in the folder shop_1, where shop_1 had no run then
    shutil.rmtree(root / "shop_1" / key)
    (root / "shop~3A1" / key).rename(root / legacy_folder("shop:1") / key)
    assert not any((root / "shop~3A1").iterdir())

    second = run_dag(11, {"accounts": ["shop:1", "shop_1"]}, day=10)
    assert str(second.state) == "success", states(second)
    assert sorted(p.name for p in (root / "shop~3A1").iterdir()) == [key, run_key_for(second.logical_date)]
    assert [p.name for p in (root / "shop_1").iterdir()] == [run_key_for(second.logical_date)]
    moved = json.loads((root / "shop~3A1" / key / "stocks" / "manifest.json").read_text())
    assert moved["account"] == "shop:1"
    for account, client_id in (("shop:1", "840000"), ("shop_1", "850000")):
        assert loaded(pg_dsn, account) == expected(catalogue_of(simulator, client_id))


def test_a_failure_after_the_loads_commit_never_fails_a_loaded_account(
    sellers, simulator, pg_dsn, monkeypatch, caplog
):
    from ozon_inventory import tasks
    from ozon_inventory.exceptions import StagingWriteError
    from ozon_inventory.staging import StagingArea

    sellers("ozon_магазин", "860000", products=30, seed=8)
    write_json = StagingArea.write_json

    def full_disk_for_the_result(self, folder, name, data):
        if (folder, name) == ("load", "result.json"):
            raise StagingWriteError(f"cannot write {self.file(folder, name)}: No space left on device")
        return write_json(self, folder, name, data)

    def no_asset(account):
        raise ValueError("URI must be ascii")

    monkeypatch.setattr(StagingArea, "write_json", full_disk_for_the_result)
    monkeypatch.setattr(tasks, "stock_asset", no_asset)
    dag_run = run_dag(10, {"accounts": ["ozon_магазин"]}, day=11)
    got = states(dag_run)
    assert got[("account.load", 0)] == "success" and got[("account.report", 0)] == "success", got
    assert str(dag_run.state) == "success"
    assert loaded(pg_dsn, "ozon_магазин") == expected(catalogue_of(simulator, "860000"))
    printed = caplog.text
    assert (
        "loaded and committed, but writing load/result.json" in printed
        and "No space left on device" in printed
    )
    assert "loaded and committed, but adding the asset event failed: ValueError: URI must be ascii" in printed
    assert asset_events(dag_run.run_id) == {}
