"""Benchmark: each stage of a run, the way the DAG runs it, against the limits that bound it.

    bash scripts/benchmark.sh                      # 1,000, 10,000 and 100,000 products
    bash scripts/benchmark.sh --sizes 1000         # a small run

Per size it builds a simulator catalogue (about ten Ozon warehouses per FBO SKU, fixed seed) served
by the simulator in its own process (rate budget 50 requests/s, 20 ms latency per request), and a
throwaway PostgreSQL. Three runs follow: the first load, one after 1% of the warehouse rows changed,
and one with no change. Each stage runs in its own process, as an Airflow task does, so its peak
memory is its own. Printed per stage and size: wall time, rows/s, peak RSS, requests; and ratios
measured in the same run: load against a raw COPY of the same rows into empty tables of the same
shape; validate + merge + load against a minimal one-pass pipeline over the same staged answers
(``minimal_run``: checksum, orjson, the same value checks, dedupe per key, the v4-vs-warehouse sums,
COPY into tables shaped like the real ones); requests against the minimum the page limits allow, the
request rate against the budget, and history rows written against the rows that really changed (a
diff of the two runs' model files). After each load the run folder is compacted as the load task
does it, and its size is reported (``staged_mb_after_load``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from ozon_inventory.ratelimit import DEFAULT_HEADROOM  # noqa: E402 - after the path is set
from ozon_inventory.sources import PRODUCTS, REGISTRY  # noqa: E402 - after the path is set

CLIENT_ID, API_KEY = "100200", "sim-api-key"
STAGES = ("fetch_stocks", "fetch_warehouse_stocks", "fetch_warehouses", "validate", "merge", "load")
#: the stages left once the last page has landed (the fetches check their answers as they land)
AFTER_FETCH = ("validate", "merge", "load")
#: The big tables a first load fills: model file -> (the table, the file's columns). The columns come
#: from the files' declarations in ``sources.py`` (each source's history files, and the products merge
#: names); the tables' other NOT NULL columns (account, valid_from, ...) are read from the catalog.
MODEL_TABLES: dict[str, tuple[str, str]] = {
    **{f.file: (f"ozon_{f.name}_history", ", ".join(f.columns)) for s in REGISTRY for f in s.history},
    PRODUCTS.file: ("ozon_product", ", ".join(PRODUCTS.columns)),
}


# -- one stage in its own process ---------------------------------------------------------------


def run_stage(args: argparse.Namespace) -> dict:
    """Run one stage as its task would; return its figures (printed as JSON by the child)."""
    from ozon_inventory.client import OzonClient
    from ozon_inventory.fetch import fetch_source
    from ozon_inventory.staging import StagingArea

    staging = StagingArea(args.staging, args.account, args.run_key)
    started = time.perf_counter()
    figures: dict = {}
    if args.stage == "minimal":
        figures = minimal_run(staging, args.dsn)
    elif args.stage.startswith("fetch_"):
        # the rate budget of the Client-Id is shared through PostgreSQL, as the DAG's tasks share it
        client = OzonClient(
            args.url, CLIENT_ID, API_KEY, rate_limit=args.rate, workers=args.workers, budget_db=args.dsn
        )
        # as the DAG's fetch tasks do: each answer is also validated as it lands
        source = args.stage.removeprefix("fetch_")
        choice = args.method if source == "warehouse_stocks" else "auto"
        manifest = fetch_source(client, staging, source, choice, check_pages=True, prestage_db=args.dsn)
        figures = {"rows": manifest.rows, "pages": manifest.pages, "requests": manifest.requests}
    else:
        import psycopg

        from ozon_inventory.load import load_run, previous_counts
        from ozon_inventory.merge import merge_run
        from ozon_inventory.schema import migrate
        from ozon_inventory.validate import ValidationReport, validate_run

        with psycopg.connect(args.dsn) as conn:
            if args.stage == "validate":
                migrate(conn)
                report = validate_run(staging, previous_counts(conn, "bench"))
                figures = {
                    "rows": sum(r.rows_in for r in report.sources.values()),
                    "rejects": report.rejects,
                    # the checks the fetches did as their answers landed (time spent in the fetch stages)
                    "checked_while_fetching": [
                        s for s, r in report.sources.items() if r.checked_while_fetching
                    ],
                    "check_s_in_fetch": round(
                        sum(r.check_s for r in report.sources.values() if r.checked_while_fetching), 3
                    ),
                }
            elif args.stage == "merge":
                report = ValidationReport.from_dict(staging.read_json("validated", "report.json"))
                figures = {"rows": sum(merge_run(staging, report).files.values())}
            else:
                report = ValidationReport.from_dict(staging.read_json("validated", "report.json"))
                # as the load task does: a second connection prepares the largest source in parallel
                result = load_run(
                    conn, staging, report, f"bench-{args.run_key}", connect=lambda: psycopg.connect(args.dsn)
                )
                figures = {
                    "rows": sum(r.rows_valid for r in report.sources.values()),
                    "history_opened": result.history_opened,
                    "history_closed": result.history_closed,
                }
    figures["wall_s"] = time.perf_counter() - started
    figures["peak_rss_mb"] = peak_rss_mb()
    return figures


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). ru_maxrss would include the parent's at fork time."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def copy_tables(conn, prefix: str) -> dict[str, str]:
    """New, empty tables of the same shape as the real ones (``LIKE … INCLUDING ALL``: same columns,
    keys, checks and indexes), one per model file; the columns the files do not carry get defaults.
    Returns model file -> table."""
    made = {}
    with conn.transaction():
        for name, (table, columns) in MODEL_TABLES.items():
            copy_table = prefix + name.split(".")[0]
            conn.execute(f"DROP TABLE IF EXISTS {copy_table}")
            conn.execute(f"CREATE TABLE {copy_table} (LIKE {table} INCLUDING ALL)")
            others = conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s "
                "AND is_nullable = 'NO' AND column_default IS NULL AND NOT column_name = ANY(%s)",
                (table, [c.strip() for c in columns.split(",")]),
            ).fetchall()
            for column, kind in others:
                default = "now()" if kind.startswith("timestamp") else "'bench'"
                conn.execute(f"ALTER TABLE {copy_table} ALTER {column} SET DEFAULT {default}")
            made[name] = copy_table
    return made


def drop_tables(conn, tables: dict[str, str]) -> None:
    with conn.transaction():
        for table in tables.values():
            conn.execute(f"DROP TABLE {table}")


def baseline_copy(staging_root: str, run_key: str, dsn: str) -> float:
    """Raw COPY of the run's model files into new, empty tables of the same shape as the real ones."""
    import psycopg

    from ozon_inventory.staging import StagingArea

    staging = StagingArea(staging_root, "bench", run_key)
    with psycopg.connect(dsn) as conn:
        tables = copy_tables(conn, "baseline_")
        started = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            for name, (_, columns) in MODEL_TABLES.items():
                with (
                    staging.open_binary("model", name) as handle,
                    cur.copy(f"COPY {tables[name]} ({columns}) FROM STDIN") as copy,
                ):
                    while chunk := handle.read(1 << 20):
                        copy.write(chunk)
        elapsed = time.perf_counter() - started
        drop_tables(conn, tables)
    return elapsed


# -- the minimal pipeline: what validate + merge + load are compared with ------------------------

_INT64 = (1, 2**63 - 1)
_QUANTITY = (0, 2**31 - 1)
_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
#: warehouse rows by method: (free to sell, promised fields summed, reserved or None, item name)
_WAREHOUSE_FIELDS = {
    "/v2/analytics/stock_on_warehouses": (
        "free_to_sell_amount",
        ("promised_amount",),
        "reserved_amount",
        "item_name",
    ),
    "/v1/analytics/stocks": (
        "available_stock_count",
        ("requested_stock_count", "transit_stock_count"),
        None,
        "name",
    ),
}


def _int(value, bounds: tuple[int, int]) -> int:
    """An int (a JSON number or a numeric string) within ``bounds``; ``ValueError`` otherwise."""
    if type(value) is not int:
        if type(value) is not str:
            raise ValueError(value)
        value = int(value)
    if not bounds[0] <= value <= bounds[1]:
        raise ValueError(value)
    return value


def _key(value) -> str:
    """A non-empty string key, COPY-escaped; ``ValueError`` otherwise."""
    if type(value) is not str or not value.strip():
        raise ValueError(value)
    return value.translate(_ESCAPE)


def _records(staging, source: str):
    """The rows of a source's staged answers: checksum checked, parsed with orjson, overlap skipped."""
    import gzip
    import hashlib

    import orjson

    from ozon_inventory.methods import method

    manifest = staging.manifest(source)
    rows_of = method(manifest.method).rows
    digest = hashlib.sha256()
    for number, name in enumerate(manifest.files):
        raw = gzip.decompress((staging.dir(source) / name).read_bytes())
        digest.update(raw)
        records = rows_of(orjson.loads(raw))
        yield from records[manifest.overlap :] if number else records
    if digest.hexdigest() != manifest.sha256:
        raise SystemExit(f"minimal: {source}'s staged answers do not match their checksum")


def minimal_run(staging, dsn: str) -> dict:
    """The least a run must do with the same staged answers, in one pass each, with nothing kept
    between tasks: v4 items and warehouse rows checked (ints in range, keys non-empty; a row that
    fails is counted), deduplicated per key, FBO sums per SKU compared (v4 present - reserved against
    the warehouse rows' free to sell), products named from the analytics rows, and COPY into the
    ``minimal_*`` tables (the driver made them empty, shaped like the real ones) in one transaction."""
    import psycopg

    manifest = staging.manifest("warehouse_stocks")
    if manifest.method not in _WAREHOUSE_FIELDS:
        raise SystemExit(f"minimal: no baseline for {manifest.method} (use --method v2 or v1)")
    free_at, promised_at, reserved_at, name_at = _WAREHOUSE_FIELDS[manifest.method]
    rejects = 0
    products: dict[int, tuple[str, list[int]]] = {}
    by_type: list[str] = []
    seen: set = set()
    expected: dict[int, int] = {}
    for item in _records(staging, "stocks"):
        try:
            product_id = _int(item["product_id"], _INT64)
            offer_id = _key(item["offer_id"])
        except (KeyError, TypeError, ValueError):
            rejects += 1
            continue
        skus = products.setdefault(product_id, (offer_id, []))[1]
        for stock in item.get("stocks") or ():
            try:
                sku = _int(stock["sku"], _INT64)
                kind = _key(stock["type"])
                shipment = _key(stock.get("shipment_type") or "SHIPMENT_TYPE_GENERAL")
                present = _int(stock.get("present", 0), _QUANTITY)
                reserved = _int(stock.get("reserved", 0), _QUANTITY)
            except (KeyError, TypeError, ValueError):
                rejects += 1
                continue
            key = (sku, kind, shipment)
            if key in seen:
                rejects += 1
                continue
            seen.add(key)
            if kind == "fbo":
                expected[sku] = expected.get(sku, 0) + present - reserved
            skus.append(sku)
            by_type.append(f"{product_id}\t{sku}\t{kind}\t{shipment}\t{present}\t{reserved}\n")
    by_warehouse: list[str] = []
    seen = set()
    actual: dict[int, int] = {}
    names: dict[int, str] = {}
    for row in _records(staging, "warehouse_stocks"):
        try:
            sku = _int(row["sku"], _INT64)
            warehouse = _key(row["warehouse_name"])
            free = _int(row.get(free_at, 0), _QUANTITY)
            promised = sum(_int(row.get(f, 0), _QUANTITY) for f in promised_at)
            reserved = "\\N" if reserved_at is None else str(_int(row.get(reserved_at, 0), _QUANTITY))
            warehouse_id = str(_int(row["warehouse_id"], _INT64)) if "warehouse_id" in row else "\\N"
        except (KeyError, TypeError, ValueError):
            rejects += 1
            continue
        if (sku, warehouse) in seen:
            rejects += 1
            continue
        seen.add((sku, warehouse))
        actual[sku] = actual.get(sku, 0) + free
        if sku not in names and type(row.get(name_at)) is str and row[name_at]:
            names[sku] = row[name_at].translate(_ESCAPE)
        by_warehouse.append(f"{sku}\t{warehouse}\t{warehouse_id}\t{free}\t{promised}\t{reserved}\n")
    mismatches = sum(
        1 for sku in expected.keys() | actual.keys() if expected.get(sku, 0) != actual.get(sku, 0)
    )
    named = []
    for product_id, (offer_id, skus) in products.items():
        name = next((names[s] for s in skus if s in names), "\\N")
        named.append(f"{product_id}\t{offer_id}\t{name}\n")
    lines = {"stock_by_type.tsv": by_type, "stock_by_warehouse.tsv": by_warehouse, PRODUCTS.file: named}
    with psycopg.connect(dsn) as conn, conn.transaction(), conn.cursor() as cur:
        for name, (_, columns) in MODEL_TABLES.items():
            with cur.copy(f"COPY minimal_{name.split('.')[0]} ({columns}) FROM STDIN") as copy:
                for start in range(0, len(lines[name]), 20000):
                    copy.write("".join(lines[name][start : start + 20000]))
    return {
        "rows": len(by_type) + len(by_warehouse),
        "products": len(named),
        "rejects": rejects,
        "mismatches": mismatches,
    }


#: the history files whose lines are compared between runs (kept aside: the load compacts staging)
HISTORY_FILES = tuple(f.file for s in REGISTRY for f in s.history)


def changed_lines(before: Path, after: Path) -> tuple[int, int]:
    """Rows that really changed between two runs' model folders: (lines only in the new, only in the old)."""
    added = removed = 0
    for name in HISTORY_FILES:
        old = set((before / name).read_text().splitlines())
        new = set((after / name).read_text().splitlines())
        added += len(new - old)
        removed += len(old - new)
    return added, removed


def keep_aside(staging_root: str, run_key: str, aside: Path) -> Path:
    """Copy the run's history files out of staging before it is compacted; return the copy's folder."""
    folder = aside / run_key
    folder.mkdir(parents=True)
    for name in HISTORY_FILES:
        shutil.copyfile(Path(staging_root) / "bench" / run_key / "model" / name, folder / name)
    return folder


def compact(staging_root: str, run_key: str) -> dict:
    """What the load task does once the load succeeded; the run folder's size before and after."""
    from ozon_inventory.staging import StagingArea

    area = StagingArea(staging_root, "bench", run_key)
    before = area.size_bytes()
    started = time.perf_counter()
    dropped = area.compact()
    return {
        "staged_mb_before": round(before / 2**20, 2),
        "staged_mb_after_load": round(area.size_bytes() / 2**20, 2),
        "raw_mb": round(
            sum(
                (area.dir(s) / n).stat().st_size
                for s in ("stocks", "warehouse_stocks", "warehouses")
                if (m := area.manifest(s))
                for n in m.files
            )
            / 2**20,
            2,
        ),
        "files_dropped": len(dropped["dropped"]),
        "wall_s": round(time.perf_counter() - started, 3),
    }


def minimal_baseline(url: str, staging: str, run_key: str, dsn: str, args: argparse.Namespace) -> dict:
    """The minimal pipeline in its own process (as a stage), into fresh ``minimal_*`` tables."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        tables = copy_tables(conn, "minimal_")
    figures = _child("minimal", url, staging, run_key, dsn, args)
    with psycopg.connect(dsn) as conn:
        drop_tables(conn, tables)
    return figures


# -- the driver ---------------------------------------------------------------------------------


def _post(url: str, payload: object) -> dict:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def _ahead_of_the_clients() -> None:
    """The simulator stands for Ozon, whose servers do not share our two cores: it runs ahead of
    the client processes, so the arrival times it logs are when requests were sent, not when a
    starved accept loop got round to them (which bunches requests that left evenly spaced)."""
    try:
        os.nice(-10)
    except OSError:  # not allowed (not root): the figures then include that bunching
        pass


def _start_simulator(products: int, args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    from scripts.localpg import free_port

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ozon_simulator",
            "--port",
            str(port),
            "--products",
            str(products),
            "--warehouses",
            "30",
            "--rows-per-sku",
            "10",
            "--seed",
            "7",
            "--latency",
            str(args.latency),
            "--rate-limit",
            str(args.rate),
            "--client-id",
            CLIENT_ID,
            "--api-key",
            API_KEY,
            "--rate-window",
            "fixed",  # Ozon's window is not documented: the strict reading, a count per calendar second
        ],
        env=_CHILD_ENV,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_ahead_of_the_clients,
    )
    if not proc.stdout.readline().strip():  # the simulator prints one line once it serves
        raise SystemExit(f"the simulator did not start (exit code {proc.wait()})")
    return proc, f"http://127.0.0.1:{port}"


def _child_cmd(
    stage: str,
    url: str,
    staging: str,
    run_key: str,
    dsn: str,
    args: argparse.Namespace,
    account: str = "bench",
) -> list[str]:
    return [
        sys.executable,
        __file__,
        "--stage",
        stage,
        "--url",
        url,
        "--staging",
        staging,
        "--run-key",
        run_key,
        "--dsn",
        dsn,
        "--rate",
        str(args.rate),
        "--workers",
        str(args.workers),
        "--method",
        args.method,
        "--account",
        account,
    ]


_CHILD_ENV = os.environ | {"PYTHONPATH": f"{ROOT / 'plugins'}:{ROOT}"}


def _child(stage: str, url: str, staging: str, run_key: str, dsn: str, args: argparse.Namespace) -> dict:
    done = subprocess.run(
        _child_cmd(stage, url, staging, run_key, dsn, args), capture_output=True, text=True, env=_CHILD_ENV
    )
    if done.returncode != 0:
        raise SystemExit(f"stage {stage} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.loads(answer.read())


def citizenship(url: str, staging: str, dsn: str, args: argparse.Namespace) -> dict:
    """A DAG-shaped fetch: the three fetches of two accounts sharing one Client-Id, six processes at once.

    What Ozon would see of that Client-Id, from the simulator's request log: the busiest 1-second
    window, the 429s, and the combined rate against the budget.
    """
    _post(url + "/__sim/stats/reset", {})
    procs = [
        subprocess.Popen(
            _child_cmd(stage, url, staging, "20261129T000000Z", dsn, args, account),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_CHILD_ENV,
        )
        for account in ("bench", "bench-2")
        for stage in STAGES[:3]
    ]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"a concurrent fetch failed:\n{err[-3000:]}")
    seen = _get(f"{url}/__sim/citizenship?client_id={CLIENT_ID}")
    times = sorted(r["time"] for r in _get(f"{url}/__sim/requests?client_id={CLIENT_ID}"))
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
    return {
        "processes": len(procs),
        "requests": seen["requests"],
        "peak_requests_per_1s": seen["peak_requests_per_1s"],
        "responses_429": seen["responses_429"],
        "budget_per_s": args.rate,
        "rate_per_s": round(rate, 2),
        # against what the client aims at: Ozon's limit × the rate budget's headroom
        "client_budget_per_s": round(args.rate * DEFAULT_HEADROOM, 2),
        "rate_vs_budget": round(rate / (args.rate * DEFAULT_HEADROOM), 3),
    }


#: The fewest requests the page limits allow for a method, given the rows it returned.
MINIMUM = {
    "/v4/product/info/stocks": lambda rows: max(1, -(-rows // 1000)),  # the last page's cursor is ""
    "/v2/analytics/stock_on_warehouses": lambda rows: rows // 1000 + 1,  # a short page ends it
    "/v2/warehouse/list": lambda rows: max(1, -(-rows // 200)),
    "/v1/warehouse/list": lambda rows: rows // 200 + 1,
}


def bench_size(products: int, args: argparse.Namespace, pg, out: list[str]) -> dict:
    import psycopg

    dbname = f"bench_{products}"
    with psycopg.connect(pg.dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {dbname}")
        admin.execute(f"CREATE DATABASE {dbname}")
    dsn = f"postgresql://{pg.user}@127.0.0.1:{pg.port}/{dbname}"
    with psycopg.connect(dsn) as conn:  # as the DAG's migrate task does before any fetch
        from ozon_inventory.schema import migrate

        migrate(conn)
    staging = tempfile.mkdtemp(prefix=f"ozon-bench-{products}-")
    aside = Path(tempfile.mkdtemp(prefix=f"ozon-bench-{products}-model-"))
    sim, url = _start_simulator(products, args)
    results: dict = {"products": products, "runs": []}
    try:
        for number, label in enumerate(("first load", "1% changed", "no change")):
            if number == 1:
                results["changed_rows"] = _post(
                    url + "/__sim/catalogue", {"action": "change", "fraction": 0.01}
                )["changed_rows"]
            run_key = f"2026112{number}T000000Z"
            stages = {stage: _child(stage, url, staging, run_key, dsn, args) for stage in STAGES}
            run = {"label": label, "run_key": run_key, "stages": stages}
            run["after_fetch_s"] = round(sum(stages[s]["wall_s"] for s in AFTER_FETCH), 3)
            run["processing_s"] = round(run["after_fetch_s"] + stages["validate"]["check_s_in_fetch"], 3)
            if number == 0:
                run["baseline_copy_s"] = baseline_copy(staging, run_key, dsn)
                run["minimal"] = minimal_baseline(url, staging, run_key, dsn, args)
                results["processing_vs_minimal"] = round(run["processing_s"] / run["minimal"]["wall_s"], 3)
                results["processing_s"] = run["processing_s"]
                results["after_fetch_s"] = run["after_fetch_s"]
                results["peak_rss_mb"] = max(fig["peak_rss_mb"] for fig in stages.values())
            kept = keep_aside(staging, run_key, aside)
            if number:
                run["really_changed"] = changed_lines(aside / results["runs"][number - 1]["run_key"], kept)
            run["compaction"] = compact(staging, run_key)
            if number == 0:
                results["staged_mb_after_load"] = run["compaction"]["staged_mb_after_load"]
            results["runs"].append(run)
        results["citizenship"] = citizenship(url, staging, dsn, args)
    finally:
        sim.terminate()
        sim.wait(timeout=30)
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(aside, ignore_errors=True)
    _report(results, args, out)
    return results


def _report(results: dict, args: argparse.Namespace, out: list[str]) -> None:
    products = results["products"]
    out.append(f"\n## {products:,} products")
    out.append(
        f"{'run':<11} {'stage':<23} {'wall s':>8} {'rows':>9} {'rows/s':>10} {'peak MiB':>9} {'requests':>9}"
    )
    for run in results["runs"]:
        for stage, fig in run["stages"].items():
            requests = (
                sum(m["requests"] for m in fig.get("requests", {}).values()) if "requests" in fig else ""
            )
            rate = fig["rows"] / fig["wall_s"] if fig["wall_s"] else 0
            out.append(
                f"{run['label']:<11} {stage:<23} {fig['wall_s']:>8.2f} {fig['rows']:>9,} {rate:>10,.0f} "
                f"{fig['peak_rss_mb']:>9.0f} {requests!s:>9}"
            )
        out.append(
            f"{run['label']:<11} {'validate+merge+load':<23} {run['after_fetch_s']:>8.2f}   (what is left once the last "
            f"page is in; the fetches checked their answers in {run['stages']['validate']['check_s_in_fetch']:.2f} s "
            f"while paging: {', '.join(run['stages']['validate']['checked_while_fetching']) or 'none'})"
        )
    first = results["runs"][0]
    load = first["stages"]["load"]["wall_s"]
    out.append(
        f"load vs raw COPY of the same rows: {load:.2f} s / {first['baseline_copy_s']:.2f} s = "
        f"{load / first['baseline_copy_s']:.2f}×   (target ≤ 2×)"
    )
    processing = first["processing_s"]
    minimal = first["minimal"]
    out.append(
        f"processing (checks in the fetches + validate + merge + load) vs the minimal one-pass pipeline "
        f"(checksum, orjson, checks, dedupe, FBO sums, COPY): {processing:.2f} s / {minimal['wall_s']:.2f} s = "
        f"{results['processing_vs_minimal']:.2f}×   "
        f"(target ≤ 1.5× at 100,000 products; minimal: {minimal['rows']:,} rows, peak "
        f"{minimal['peak_rss_mb']:.0f} MiB)"
    )
    c0 = first["compaction"]
    out.append(
        f"staging after the first load: {c0['staged_mb_before']:.1f} MB → {c0['staged_mb_after_load']:.1f} MB "
        f"(raw answers {c0['raw_mb']:.1f} MB; {c0['files_dropped']} rebuildable files dropped in "
        f"{c0['wall_s']:.2f} s)   (target ≤ 20 MB at 100,000 products)"
    )
    for run, stage in itertools.product(
        results["runs"], ("fetch_stocks", "fetch_warehouse_stocks", "fetch_warehouses")
    ):
        fig = run["stages"][stage]
        for method, m in fig["requests"].items():
            if method == "/v1/analytics/stocks":  # one request per batch of 100 SKUs: one page each
                minimum = fig["pages"]
            else:
                minimum = MINIMUM.get(method, lambda rows: 0)(fig["rows"])
            ratio = f"{m['requests'] / minimum:.3f}×" if minimum else "n/a"
            out.append(
                f"{run['label']:<11} {stage:<23} {method:<36} requests {m['requests']:>5} (retries {m['retries']}) vs minimum "
                f"{minimum or '?':>5} = {ratio}; rate {m['rate_per_s']:.1f}/s of {args.rate:g}/s "
                f"= {m['rate_per_s'] / args.rate:.0%}"
            )
    for run in results["runs"][1:]:
        load_fig = run["stages"]["load"]
        added, removed = run["really_changed"]
        out.append(
            f"history, {run['label']}: opened {load_fig['history_opened']} vs {added} rows really changed or new; "
            f"closed {load_fig['history_closed']} vs {removed} really changed or gone"
        )
    c = results["citizenship"]
    out.append(
        f"citizenship: {c['processes']} fetch processes of 2 accounts on one Client-Id: {c['requests']} requests, "
        f"peak {c['peak_requests_per_1s']} in 1 s (limit {c['budget_per_s']:g}), {c['responses_429']} × 429, "
        f"rate {c['rate_per_s']:.1f}/s = {c['rate_vs_budget']:.0%} of the client's {c['client_budget_per_s']:g}/s "
        "(target ≥ 90%)"
    )
    peak = max(fig["peak_rss_mb"] for run in results["runs"] for fig in run["stages"].values())
    results["peak_rss_mb"] = peak
    out.append(f"peak memory of any stage: {peak:.0f} MiB (target ≤ 512 MiB at 300,000 products)")


def _figure(results: dict, figure: str) -> float:
    first = results["runs"][0]
    return first["minimal"]["wall_s"] if figure == "minimal_s" else first[figure]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--latency", type=float, default=0.02, help="simulated latency per request (s)")
    parser.add_argument(
        "--rate", type=float, default=50.0, help="rate budget, requests/s (simulator and client)"
    )
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--method", default="v2", choices=("v2", "v1", "auto"), help="warehouse stock method")
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        help="print all figures as JSON on stdout (the report goes to stderr), or write them to this file",
    )
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--staging", help=argparse.SUPPRESS)
    parser.add_argument("--run-key", help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    parser.add_argument("--account", default="bench", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(run_stage(args)))
        return 0

    from scripts.localpg import LocalPostgres

    report = sys.stderr if args.json == "-" else sys.stdout
    folder = Path(tempfile.mkdtemp(prefix="ozon-bench-pg-"))
    os.chmod(folder, 0o755)
    pg = LocalPostgres(folder / "data").start()
    out = [
        f"# ozon-inventory benchmark ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, Python "
        f"{sys.version.split()[0]}, PostgreSQL from {pg.bindir}, fsync off)",
        f"simulator: rate budget {args.rate:g}/s per Client-Id, latency {args.latency * 1000:g} ms; "
        f"client: {args.workers} workers; warehouse stock method {args.method}",
    ]
    all_results = []
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            all_results.append(bench_size(size, args, pg, out))
            print("\n".join(out), flush=True, file=report)
            out.clear()
    finally:
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)
    if len(all_results) >= 2:
        print(file=report)
        pairs = list(itertools.pairwise(all_results))
        if len(all_results) > 2:  # and the smallest size against the largest
            pairs.append((all_results[0], all_results[-1]))
        for a, b in pairs:
            # per product, the larger size against the smaller: ≤ 1 is no worse than linear
            for figure in ("processing_s", "minimal_s"):
                ta, tb = _figure(a, figure), _figure(b, figure)
                b.setdefault("growth_vs_linear", {})[f"{figure} from {a['products']}"] = growth = round(
                    (tb / ta) / (b["products"] / a["products"]), 3
                )
                print(
                    f"{figure.removesuffix('_s')} from {a['products']:,} to {b['products']:,} products: "
                    f"{ta:.2f} s → {tb:.2f} s, {growth:.2f} × linear (≤ 1: no worse than linear)",
                    file=report,
                )
    if args.json == "-":
        print(json.dumps(all_results, indent=1))
    elif args.json:
        Path(args.json).write_text(json.dumps(all_results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
