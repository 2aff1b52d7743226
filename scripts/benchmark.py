"""Benchmark: each stage of a run, the way the DAG runs it, against the limits that bound it.

    bash scripts/benchmark.sh                      # 1,000, 10,000 and 100,000 products
    bash scripts/benchmark.sh --sizes 1000         # a small run

Per size it builds a simulator catalogue (about ten Ozon warehouses per FBO SKU, fixed seed) served
by the simulator in its own process (rate budget 50 requests/s, 20 ms latency per request), and a
throwaway PostgreSQL. Three runs follow: the first load, one after 1% of the warehouse rows changed,
and one with no change. Each stage runs in its own process, as an Airflow task does, so its peak
memory is its own. Printed per stage and size: wall time, rows/s, peak RSS, requests; and ratios
measured in the same run: load against a raw COPY of the same rows into empty tables of the same
shape, requests against the minimum the page limits allow, the request rate against the budget, and
history rows written against the rows that really changed (a diff of the two runs' model files).
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

CLIENT_ID, API_KEY = "100200", "sim-api-key"
STAGES = ("fetch_stocks", "fetch_warehouse_stocks", "fetch_warehouses", "validate", "merge", "load")
#: Model file -> (the table it is loaded into, the file's columns, the table's other NOT NULL columns).
MODEL_TABLES = {
    "stock_by_type.tsv": (
        "ozon_stock_by_type_history",
        "product_id, sku, stock_type, shipment_type, present, reserved",
        ("account", "valid_from", "run_id"),
    ),
    "stock_by_warehouse.tsv": (
        "ozon_stock_by_warehouse_history",
        "sku, warehouse_name, warehouse_id, free_to_sell, promised, reserved",
        ("account", "valid_from", "run_id"),
    ),
    "products.tsv": ("ozon_product", "product_id, offer_id, name", ("account", "updated_at")),
}


# -- one stage in its own process ---------------------------------------------------------------


def run_stage(args: argparse.Namespace) -> dict:
    """Run one stage as its task would; return its figures (printed as JSON by the child)."""
    from ozon_inventory.client import OzonClient
    from ozon_inventory.fetch import fetch_stocks, fetch_warehouse_stocks, fetch_warehouses
    from ozon_inventory.staging import StagingArea

    staging = StagingArea(args.staging, args.account, args.run_key)
    started = time.perf_counter()
    figures: dict = {}
    if args.stage.startswith("fetch_"):
        # the rate budget of the Client-Id is shared through PostgreSQL, as the DAG's tasks share it
        client = OzonClient(
            args.url, CLIENT_ID, API_KEY, rate_limit=args.rate, workers=args.workers, budget_dsn=args.dsn
        )
        if args.stage == "fetch_stocks":
            manifest = fetch_stocks(client, staging)
        elif args.stage == "fetch_warehouse_stocks":
            manifest = fetch_warehouse_stocks(client, staging, args.method)
        else:
            manifest = fetch_warehouses(client, staging)
        figures = {"rows": manifest.rows, "pages": manifest.pages, "requests": manifest.requests}
    else:
        import psycopg

        from ozon_inventory.load import ensure_schema, load_run, previous_counts
        from ozon_inventory.merge import merge_run
        from ozon_inventory.validate import ValidationReport, validate_run

        with psycopg.connect(args.dsn) as conn:
            if args.stage == "validate":
                ensure_schema(conn)
                report = validate_run(staging, previous_counts(conn, "bench"))
                figures = {"rows": sum(r.rows_in for r in report.sources.values()), "rejects": report.rejects}
            elif args.stage == "merge":
                report = ValidationReport.from_dict(staging.read_json("validated", "report.json"))
                figures = {"rows": sum(merge_run(staging, report).files.values())}
            else:
                report = ValidationReport.from_dict(staging.read_json("validated", "report.json"))
                result = load_run(conn, staging, report, f"bench-{args.run_key}")
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


def baseline_copy(staging_root: str, run_key: str, dsn: str) -> float:
    """Raw COPY of the run's model files into new, empty tables of the same shape as the real ones
    (``LIKE … INCLUDING ALL``: same columns, keys and indexes; the constant columns get defaults)."""
    import psycopg

    from ozon_inventory.staging import StagingArea

    staging = StagingArea(staging_root, "bench", run_key)
    with psycopg.connect(dsn) as conn:
        with conn.transaction():
            for name, (table, _, constants) in MODEL_TABLES.items():
                copy_table = "baseline_" + name.split(".")[0]
                conn.execute(f"DROP TABLE IF EXISTS {copy_table}")
                conn.execute(f"CREATE TABLE {copy_table} (LIKE {table} INCLUDING ALL)")
                for column in constants:
                    default = "now()" if column in ("valid_from", "updated_at") else "'bench'"
                    conn.execute(f"ALTER TABLE {copy_table} ALTER {column} SET DEFAULT {default}")
        started = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            for name, (_, columns, _) in MODEL_TABLES.items():
                copy_table = "baseline_" + name.split(".")[0]
                with (
                    staging.open_binary("model", name) as handle,
                    cur.copy(f"COPY {copy_table} ({columns}) FROM STDIN") as copy,
                ):
                    while chunk := handle.read(1 << 20):
                        copy.write(chunk)
        elapsed = time.perf_counter() - started
        with conn.transaction():
            for name in MODEL_TABLES:
                conn.execute("DROP TABLE " + "baseline_" + name.split(".")[0])
    return elapsed


def changed_lines(staging_root: str, before: str, after: str) -> tuple[int, int]:
    """Rows that really changed between two runs: (lines only in the new model, lines only in the old)."""
    added = removed = 0
    for name in ("stock_by_type.tsv", "stock_by_warehouse.tsv"):
        old = set((Path(staging_root) / "bench" / before / "model" / name).read_text().splitlines())
        new = set((Path(staging_root) / "bench" / after / "model" / name).read_text().splitlines())
        added += len(new - old)
        removed += len(old - new)
    return added, removed


# -- the driver ---------------------------------------------------------------------------------


def _post(url: str, payload: object) -> dict:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


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
        ],
        env=_CHILD_ENV,
        stdout=subprocess.PIPE,
        text=True,
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
        "rate_vs_budget": round(rate / args.rate, 3),
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
    staging = tempfile.mkdtemp(prefix=f"ozon-bench-{products}-")
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
            if number == 0:
                run["baseline_copy_s"] = baseline_copy(staging, run_key, dsn)
            else:
                run["really_changed"] = changed_lines(
                    staging, results["runs"][number - 1]["run_key"], run_key
                )
            results["runs"].append(run)
        results["citizenship"] = citizenship(url, staging, dsn, args)
    finally:
        sim.terminate()
        sim.wait(timeout=30)
        shutil.rmtree(staging, ignore_errors=True)
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
        local = sum(run["stages"][s]["wall_s"] for s in ("validate", "merge", "load"))
        out.append(
            f"{run['label']:<11} {'validate+merge+load':<23} {local:>8.2f}   (target ≤ 30 s at 100,000 products)"
        )
    first = results["runs"][0]
    load = first["stages"]["load"]["wall_s"]
    out.append(
        f"load vs raw COPY of the same rows: {load:.2f} s / {first['baseline_copy_s']:.2f} s = "
        f"{load / first['baseline_copy_s']:.2f}×   (target ≤ 2×)"
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
        f"rate {c['rate_per_s']:.1f}/s = {c['rate_vs_budget']:.0%} of the budget (target ≥ 90%)"
    )
    peak = max(fig["peak_rss_mb"] for run in results["runs"] for fig in run["stages"].values())
    out.append(f"peak memory of any stage: {peak:.0f} MiB (target < 1024 MiB)")


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
        a, b = all_results[-2], all_results[-1]
        ta = sum(a["runs"][0]["stages"][s]["wall_s"] for s in ("validate", "merge", "load"))
        tb = sum(b["runs"][0]["stages"][s]["wall_s"] for s in ("validate", "merge", "load"))
        growth = (tb / ta) / (b["products"] / a["products"])
        print(
            file=report,
        )
        print(
            f"validate+merge+load from {a['products']:,} to {b['products']:,} products: {ta:.2f} s → {tb:.2f} s, "
            f"{growth:.2f} × linear (≤ 1 means no worse than linear)",
            file=report,
        )
    if args.json == "-":
        print(json.dumps(all_results, indent=1))
    elif args.json:
        Path(args.json).write_text(json.dumps(all_results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
