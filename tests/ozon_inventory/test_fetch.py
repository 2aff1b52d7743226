"""Fetches against the simulator: the method plan, fallbacks, the run's breaker state, as-of times."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from ozon_inventory.client import OzonClient, Page
from ozon_inventory.exceptions import ConfigError, OzonMethodDown, OzonMethodUnavailable, StagingError
from ozon_inventory.fetch import as_of, fetch_source
from ozon_inventory.methods import V1_ANALYTICS_STOCKS, V2_STOCK_ON_WAREHOUSES, V4_STOCKS, choices
from ozon_inventory.staging import SOURCES, StagingArea
from ozon_inventory.validate import validate_run
from ozon_simulator import Fault
from tests.conftest import API_KEY, CLIENT_ID


def new_client(simulator) -> OzonClient:
    return OzonClient(simulator.url, CLIENT_ID, API_KEY, rate_limit=1000, backoff=0.01, backoff_max=0.05)


def requests_to(simulator, method: str) -> int:
    return simulator.sim.stats_snapshot()["requests"].get(method, 0)


def test_auto_moves_to_the_successor_when_the_breaker_opens(simulator, tmp_path):
    simulator.sim.add_fault(Fault(V2_STOCK_ON_WAREHOUSES, "status", status=503, times=-1))
    staging = StagingArea(str(tmp_path), "acc", "20261124T000000Z")
    manifest = fetch_source(new_client(simulator), staging, "warehouse_stocks")
    assert (manifest.method, manifest.fallback_from, manifest.rows) == (
        V1_ANALYTICS_STOCKS,
        V2_STOCK_ON_WAREHOUSES,
        511,
    )
    dead = requests_to(simulator, V2_STOCK_ON_WAREHOUSES)
    assert dead <= 8
    # another try of the task in the same run (a new process: a new client) sends nothing to it
    again = fetch_source(new_client(simulator), staging, "warehouse_stocks")
    assert again.method == V1_ANALYTICS_STOCKS
    assert requests_to(simulator, V2_STOCK_ON_WAREHOUSES) == dead
    recorded = json.loads(next(staging.dir("breaker").iterdir()).read_text())
    assert recorded["method"] == V2_STOCK_ON_WAREHOUSES and recorded["status"] == 503


def test_retries_that_run_out_as_the_breaker_opens_still_fall_back(simulator, tmp_path):
    """One request's last attempt can be the failure that declares the method down (page requests
    run in parallel, so under load this is a race): the fetch falls back all the same, instead of
    failing with the retries' error."""
    simulator.sim.add_fault(Fault(V2_STOCK_ON_WAREHOUSES, "status", status=503, times=-1))
    client = OzonClient(
        simulator.url,
        CLIENT_ID,
        API_KEY,
        rate_limit=1000,
        backoff=0.001,
        backoff_max=0.002,
        max_retries=4,
        workers=1,
    )
    # one request at a time: its 5th failure opens the breaker and is its last attempt
    assert client.breaker.threshold == client.max_retries + 1
    manifest = fetch_source(client, StagingArea(str(tmp_path), "acc", "20261124T000000Z"), "warehouse_stocks")
    assert (manifest.method, manifest.fallback_from) == (V1_ANALYTICS_STOCKS, V2_STOCK_ON_WAREHOUSES)


def test_a_pinned_method_does_not_fall_back(simulator, tmp_path):
    simulator.sim.add_fault(Fault(V2_STOCK_ON_WAREHOUSES, "obsolete", times=-1))
    staging = StagingArea(str(tmp_path), "acc", "20261124T000000Z")
    with pytest.raises(OzonMethodUnavailable, match="Obsolete method cannot be used"):
        fetch_source(new_client(simulator), staging, "warehouse_stocks", "v2")
    assert requests_to(simulator, V1_ANALYTICS_STOCKS) == 0
    assert staging.manifest("warehouse_stocks") is None


def test_a_dead_method_without_successor_fails_the_fetch_fast(simulator, tmp_path):
    simulator.sim.add_fault(Fault(V4_STOCKS, "status", status=500, times=-1))
    staging = StagingArea(str(tmp_path), "acc", "20261124T000000Z")
    with pytest.raises(OzonMethodDown) as caught:
        fetch_source(new_client(simulator), staging, "stocks")
    assert caught.value.permanent and "HTTP 500" in str(caught.value)
    assert requests_to(simulator, V4_STOCKS) == 5


def test_unknown_method_choice_names_the_choices(simulator, tmp_path):
    with pytest.raises(
        ConfigError, match=r"warehouse_stocks method must be one of \['auto', 'v2', 'v1', 'fbo'\]"
    ):
        fetch_source(new_client(simulator), StagingArea(str(tmp_path), "a", "r"), "warehouse_stocks", "v9")


def test_as_of_is_ozons_clock_not_the_workers(simulator, tmp_path):
    staging = StagingArea(str(tmp_path), "acc", "20261124T000000Z")
    manifest = fetch_source(new_client(simulator), staging, "stocks")
    stamped = datetime.fromisoformat(manifest.as_of)
    assert abs(stamped - datetime.now(UTC)) < timedelta(seconds=5)
    page = Page(V4_STOCKS, 1, b"{}", {}, 0, {}, date="Tue, 24 Nov 2026 06:00:00 GMT")
    assert as_of(page) == "2026-11-24T06:00:00+00:00"


def test_after_the_cooldown_a_cleared_fetch_probes_the_healed_method(simulator, tmp_path):
    """An operator clears the fetch once Ozon has healed: one probe closes the breaker again."""
    import time

    simulator.sim.add_fault(Fault(V2_STOCK_ON_WAREHOUSES, "status", status=503, times=-1))
    staging = StagingArea(str(tmp_path), "acc", "20261124T000000Z")
    assert fetch_source(new_client(simulator), staging, "warehouse_stocks").method == V1_ANALYTICS_STOCKS
    simulator.sim.clear_faults()
    dead = requests_to(simulator, V2_STOCK_ON_WAREHOUSES)
    # within the cooldown a retry sends nothing to it ...
    assert fetch_source(new_client(simulator), staging, "warehouse_stocks").method == V1_ANALYTICS_STOCKS
    assert requests_to(simulator, V2_STOCK_ON_WAREHOUSES) == dead
    # ... after it, the method is probed, answers, and is used again
    time.sleep(0.6)
    client = new_client(simulator)
    client.breaker.cooldown = 0.5
    manifest = fetch_source(client, staging, "warehouse_stocks")
    assert (manifest.method, manifest.rows) == (V2_STOCK_ON_WAREHOUSES, 511)


def test_a_probe_that_fails_reopens_the_breaker_at_once(simulator, tmp_path):
    simulator.sim.add_fault(Fault(V4_STOCKS, "status", status=500, times=-1))
    staging = StagingArea(str(tmp_path), "acc", "20261124T000000Z")
    with pytest.raises(OzonMethodDown):
        fetch_source(new_client(simulator), staging, "stocks")
    import time

    time.sleep(0.35)
    client = new_client(simulator)
    client.breaker.cooldown = 0.3
    with pytest.raises(OzonMethodDown):
        fetch_source(client, staging, "stocks")
    assert requests_to(simulator, V4_STOCKS) == 5 + 1  # the probe only


# -- answers checked while fetching (validate's work done as the pages land) ---------------------

RUN = "20261124T000000Z"


def _outputs(staging: StagingArea) -> dict[str, bytes]:
    """Every file validate writes (its reports aside), by path."""
    return {
        f"{folder}/{path.name}": path.read_bytes()
        for folder in ("validated", "model")
        for path in sorted(staging.dir(folder).iterdir())
        if not path.name.endswith(".json")
    }


def _comparable(report) -> dict:
    return {
        source: {k: v for k, v in vars(r).items() if k not in ("check_s", "checked_while_fetching")}
        for source, r in report.sources.items()
    }


@pytest.mark.parametrize(
    ("source", "choice"),
    [("stocks", "auto")] + [(s, c) for s in ("warehouse_stocks", "warehouses") for c in choices(s)[1:]],
)
def test_answers_checked_while_fetching_equal_validate_from_staging(simulator, tmp_path, source, choice):
    """Many pages (offset pages overlap by one row), hostile values, rejects: the fetch's check of
    each answer as it lands writes what validate writes from the staged answers, to the byte."""
    from ozon_simulator import Account
    from ozon_simulator.catalogue import build_catalogue

    simulator.sim.accounts[CLIENT_ID] = Account(CLIENT_ID, API_KEY, build_catalogue(2500, 27, seed=5))
    staging = StagingArea(str(tmp_path), "acc", RUN)
    client = new_client(simulator)
    fetch_source(client, staging, "stocks", check_pages=True)  # the fbo method asks for v4's SKUs
    manifest = fetch_source(client, staging, source, choice, check_pages=True)
    assert manifest.pages > (1 if source != "warehouses" else 0)
    fetched = validate_run(staging)
    assert fetched.sources[source].checked_while_fetching
    assert fetched.sources[source].rows_valid > 0
    while_fetching = _outputs(staging)

    for name in SOURCES:  # the same answers, checked by validate from staging
        staging.remove("validated", f"checked_{name}.json")
    staged = validate_run(staging)
    assert not staged.sources[source].checked_while_fetching
    assert _comparable(staged) == _comparable(fetched)
    assert staged.checks == fetched.checks and staged.mismatches == fetched.mismatches
    assert _outputs(staging) == while_fetching


def test_a_damaged_archive_is_named_even_when_the_fetch_checked_its_answers(simulator, tmp_path):
    staging = StagingArea(str(tmp_path), "acc", RUN)
    manifest = fetch_source(new_client(simulator), staging, "stocks", check_pages=True)
    page = staging.dir("stocks") / manifest.files[0]
    page.write_bytes(page.read_bytes()[:-20])  # truncated after the fetch
    with pytest.raises(StagingError, match=rf"staged answer {page} is missing or damaged"):
        validate_run(staging)


def test_a_check_that_fails_while_fetching_never_fails_the_fetch(simulator, tmp_path, monkeypatch, caplog):
    """A full disk or a bug in the check: the fetch stages its answers and validate checks them."""
    from ozon_inventory import validate

    def broken(self, records):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(validate.SourceCheck, "add", broken)
    staging = StagingArea(str(tmp_path), "acc", RUN)
    manifest = fetch_source(new_client(simulator), staging, "warehouse_stocks", "v2", check_pages=True)
    assert manifest.rows == 511
    assert (
        "checking /v2/analytics/stock_on_warehouses's answers while fetching stopped (OSError" in caplog.text
    )
    monkeypatch.undo()
    report = validate_run(staging)
    assert not report.sources["warehouse_stocks"].checked_while_fetching
    assert report.sources["warehouse_stocks"].rows_in == 511


def test_a_refetch_replaces_the_check_of_the_answers_before(simulator, tmp_path):
    staging = StagingArea(str(tmp_path), "acc", RUN)
    client = new_client(simulator)
    fetch_source(client, staging, "warehouse_stocks", "v2", check_pages=True)
    simulator.sim.accounts[CLIENT_ID].catalogue.change_stock(0.5)
    again = fetch_source(client, staging, "warehouse_stocks", "v2", check_pages=True)
    report = validate_run(staging)
    assert report.sources["warehouse_stocks"].checked_while_fetching
    reused = _outputs(staging)
    staging.remove("validated", "checked_warehouse_stocks.json")
    validate_run(staging)
    assert _outputs(staging) == reused and again.sha256


def test_rows_streamed_to_the_database_while_fetching_are_the_rows_file_and_the_load_reads_them(
    simulator, tmp_path, pg_dsn, caplog
):
    """The checked rows stream into an unlogged table as they are written; the load reads the table
    (no copy of the file after the last page) and drops it as it commits."""
    import psycopg

    from ozon_inventory.load import load_run
    from ozon_inventory.merge import merge_run
    from ozon_inventory.schema import migrate

    staging = StagingArea(str(tmp_path), "acc", RUN)
    client = new_client(simulator)
    for source in SOURCES:
        fetch_source(client, staging, source, check_pages=True, prestage_db=pg_dsn)
    report = validate_run(staging)
    streamed = report.sources["warehouse_stocks"].prestaged
    ((name, (table, rows, _oid)),) = streamed.items()
    assert name == "stock_by_warehouse" and rows == report.sources["warehouse_stocks"].rows_valid == 511
    model = staging.file("model", "stock_by_warehouse.tsv").read_bytes()
    with psycopg.connect(pg_dsn) as conn:
        columns = "sku, warehouse_name, warehouse_id, free_to_sell, promised, reserved"
        with conn.cursor().copy(f"COPY (SELECT {columns} FROM {table}) TO STDOUT") as copy:
            assert b"".join(bytes(chunk) for chunk in copy) == model  # the file, to the byte
        conn.commit()
        migrate(conn)
        merge_run(staging, report)
        caplog.set_level("INFO", logger="ozon_inventory.load")
        loaded = load_run(conn, staging, report, "run-1", connect=lambda: psycopg.connect(pg_dsn))
        assert loaded.counts["warehouse_rows"] == 511 and loaded.history_opened > 511
        assert "streamed by the fetch: ['stock_by_warehouse']" in caplog.text
        gone = conn.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'ozon_pre_%%'").fetchall()
        assert gone == []


def test_a_stream_that_fails_never_fails_the_fetch_and_the_load_copies_the_file(
    simulator, tmp_path, pg_dsn, monkeypatch, caplog
):
    import psycopg

    from ozon_inventory import load

    def broken(self, text):
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(load.Prestage, "write", broken)
    staging = StagingArea(str(tmp_path), "acc", RUN)
    manifest = fetch_source(
        new_client(simulator), staging, "warehouse_stocks", "v2", check_pages=True, prestage_db=pg_dsn
    )
    assert manifest.rows == 511
    assert "rows not streamed to the database (server closed the connection unexpectedly)" in caplog.text
    report = validate_run(staging)
    assert report.sources["warehouse_stocks"].checked_while_fetching  # the check itself went on
    assert report.sources["warehouse_stocks"].prestaged == {}
    with psycopg.connect(pg_dsn) as conn:
        left = conn.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'ozon_pre_%%'").fetchall()
    assert left == []  # abandoned and dropped


def test_a_changed_answer_fails_the_source_without_a_fallback_and_says_why(simulator, tmp_path):
    """A changed shape is not a dead method: auto does not move to the successor (its rows would
    replace good ones under another reading); the failure, with its field, reaches the report."""
    from ozon_inventory.exceptions import OzonSchemaChanged

    simulator.sim.add_fault(
        Fault(V2_STOCK_ON_WAREHOUSES, "rename", field="result.rows.free_to_sell_amount", times=-1)
    )
    staging = StagingArea(str(tmp_path), "acc", "20261124T000000Z")
    with pytest.raises(OzonSchemaChanged, match="'free_to_sell_amount' is missing"):
        fetch_source(new_client(simulator), staging, "warehouse_stocks")
    assert requests_to(simulator, V1_ANALYTICS_STOCKS) == 0
    fetch_source(new_client(simulator), staging, "stocks")
    error = validate_run(staging).sources["warehouse_stocks"].error
    assert error is not None and (error["error"], error["field"]) == (
        "OzonSchemaChanged",
        "free_to_sell_amount",
    )
    assert error["method"] == V2_STOCK_ON_WAREHOUSES and error["permanent"]
    simulator.sim.clear_faults()
    fetch_source(new_client(simulator), staging, "warehouse_stocks")  # a try that succeeds: no cause left
    assert validate_run(staging).sources["warehouse_stocks"].error is None
