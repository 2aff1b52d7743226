"""One full run of ``ozon_inventory_sync`` against the bundled simulator and a local PostgreSQL.

Run through ``bash scripts/demo.sh``. Everything lives in ignored folders of the repository:
PostgreSQL's data in ``.pgdata/``, Airflow's home (SQLite) and the staging area in ``.demo/``.
Running it again works and, as nothing changed at "Ozon", changes nothing in the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / ".demo"
AIRFLOW_HOME = DEMO / "airflow"

os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{AIRFLOW_HOME}/airflow.db"
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = os.environ.get("DEMO_LOG_LEVEL", "WARNING")
os.environ.setdefault("OZON_INVENTORY_RETRIES", "0")
os.environ.setdefault("PYTHONWARNINGS", "ignore")
import warnings  # noqa: E402

warnings.simplefilter("ignore")
for path in (ROOT / "plugins", ROOT / "dags", ROOT):
    sys.path.insert(0, str(path))

OLD_QUERIES = {
    "Ozon": """SELECT warehouse_name, stock_type, COUNT(*) FROM inventory_data WHERE source = 'Ozon'
GROUP BY warehouse_name, stock_type ORDER BY stock_type""",
    "Ozon_Analytics": """SELECT warehouse_name, COUNT(*) FROM inventory_data WHERE source = 'Ozon_Analytics'
GROUP BY warehouse_name ORDER BY COUNT(*) DESC, warehouse_name""",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--products", type=int, default=175)
    parser.add_argument("--warehouses", type=int, default=27)
    parser.add_argument(
        "--serve",
        action="store_true",
        help="then start Airflow's api-server on the demo's data and keep it up (Ctrl+C stops): "
        "the Ozon inventory page, the DAG's grid and tab",
    )
    parser.add_argument("--port", type=int, default=8080, help="the api-server's port with --serve")
    args = parser.parse_args()

    from scripts.localpg import LocalPostgres, PostgresUnavailable

    DEMO.mkdir(exist_ok=True)
    try:
        pg = LocalPostgres(ROOT / ".pgdata", port=int(os.environ.get("DEMO_PG_PORT", "0")) or None).start()
    except PostgresUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    from ozon_simulator import SimulatorConfig, default_simulator, serve

    sim = default_simulator(args.products, args.warehouses, config=SimulatorConfig())
    running = serve(sim)
    client_id, account = next(iter(sim.accounts.items()))
    os.environ["AIRFLOW_CONN_OZON_DEFAULT"] = json.dumps(
        {"conn_type": "http", "host": running.url, "login": client_id, "password": account.api_key}
    )
    os.environ["AIRFLOW_CONN_OZON_POSTGRES"] = pg.conn_uri()
    os.environ["AIRFLOW_VAR_OZON_INVENTORY_STAGING"] = str(DEMO / "staging")
    try:
        code = _run(pg, running.url)
        if args.serve:
            return _serve(args.port) or code
        print(
            f"\nOzon inventory page: http://localhost:{args.port}/plugin/ozon-inventory once Airflow's api-server "
            "runs (bash scripts/demo.sh --serve starts one on this data)"
        )
        return code
    finally:
        running.stop()
        pg.stop()


def _serve(port: int) -> int:
    """Airflow's api-server on the demo's home (SQLite) and target database, until Ctrl+C.

    Local demo only: ``simple_auth_manager_all_admins`` lets everyone in as admin.
    """
    import subprocess
    import urllib.request

    env = os.environ | {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__WORKERS": "1",
    }
    airflow = str(Path(sys.executable).parent / "airflow")
    log = (DEMO / "api-server.log").open("ab")
    server = subprocess.Popen([airflow, "api-server"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(base + "/api/v2/monitor/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    print(f"the api-server did not start; see {DEMO / 'api-server.log'}", file=sys.stderr)
                    return 1
                time.sleep(1)
        print(f"\nOzon inventory page: {base}/plugin/ozon-inventory")
        print(f"the DAG's tab: {base}/dags/ozon_inventory_sync/plugin/ozon-inventory-dag (Ctrl+C stops)")
        server.wait()
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _run(pg, url: str) -> int:
    import pendulum
    import psycopg
    from airflow.utils import db

    print(f"PostgreSQL 127.0.0.1:{pg.port} (data in .pgdata/), Ozon simulator {url}")
    AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
    db.initdb()
    from ozon_inventory_sync import dag

    started = time.monotonic()
    dag_run = dag.test(logical_date=pendulum.now("UTC").start_of("minute"))
    duration = time.monotonic() - started
    states = {f"{ti.task_id}[{ti.map_index}]": str(ti.state) for ti in dag_run.get_task_instances()}

    with psycopg.connect(pg.dsn) as conn:
        ledger = conn.execute(
            """SELECT status, degraded, products, stock_rows, warehouse_rows, warehouses, rejects, mismatches,
                      history_opened, history_closed, sources, durations
               FROM ozon_sync_run WHERE account = 'ozon_default' ORDER BY loaded_at DESC LIMIT 1"""
        ).fetchone()
        answers = {name: conn.execute(sql).fetchall() for name, sql in OLD_QUERIES.items()}
        kinds = dict(conn.execute("SELECT kind, count(*) FROM ozon_warehouse GROUP BY kind").fetchall())
    print()
    print(f"DAG run {dag_run.run_id}: {dag_run.state} in {duration:.1f} s")
    if str(dag_run.state) != "success":
        print("task states:", json.dumps(states, indent=1))
    if ledger is None:
        print("nothing was loaded")
        return 1
    (
        status,
        degraded,
        products,
        stock_rows,
        wh_rows,
        warehouses,
        rejects,
        mismatches,
        opened,
        closed,
        sources,
        durations,
    ) = ledger
    print(f"status: {status}, degraded: {degraded}")
    for source, info in sources.items():
        print(
            f"  {source:<17} {info['status']:<8} rows {info['rows_valid']:>7}  rejects {info['rejects']}  "
            f"method {info['method']}"
        )
    print(
        f"products {products}, stock rows by type {stock_rows}, warehouse rows {wh_rows}, "
        f"warehouses {warehouses} ({kinds.get('ozon', 0)} Ozon, {kinds.get('seller', 0)} seller), rejects {rejects}, cross-source mismatches {mismatches}"
    )
    print(f"history rows opened {opened}, closed {closed}")
    print("durations (s):", ", ".join(f"{k} {v:.2f}" for k, v in durations.items()))
    print()
    print(OLD_QUERIES["Ozon"])
    for row in answers["Ozon"]:
        print("  ", row)
    print(OLD_QUERIES["Ozon_Analytics"])
    for row in answers["Ozon_Analytics"]:
        print("  ", row)
    return 0 if str(dag_run.state) == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
