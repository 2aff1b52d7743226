"""The fault matrix's harness: one account, a simulator, a database, and the four checks of every case.

Every case runs a good baseline run, then the fault, then a recovery run, and checks:

1. after recovery the database equals the simulator's catalogue, every key and value
   (:meth:`Matrix.assert_catalogue`: stock by type, stock by warehouse, products, SKUs, warehouses);
2. the history invariants hold (:meth:`Matrix.assert_history`: one current row per key,
   ``valid_to >= valid_from``, no overlapping validity per key);
3. while the fault lasted, the previous snapshot stayed whole (:meth:`Matrix.assert_unchanged` against
   the snapshot taken before the fault), or, for a degraded run, the failed source kept its rows;
4. the error names its cause (a regex per case, on the error or, when retries absorbed the fault, on
   the log);
5. the Api-Key appears nowhere (:meth:`Matrix.assert_no_secret`: the log, every exception with its
   traceback, every staged file, every column of every table).

Runs use the stage functions the DAG's tasks call (:meth:`Matrix.run` mirrors the DAG: a failed fetch
does not stop the other sources, the load then marks the run degraded); ``test_dag.py`` uses
``dag.test()`` where Airflow's own behaviour is the point.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import traceback
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ozon_inventory.methods import V1_WAREHOUSE_LIST
from ozon_simulator import Fault, default_simulator, serve
from ozon_simulator.catalogue import Catalogue
from tests import clock
from tests.conftest import CLIENT_ID

#: The matrix's Api-Key: distinctive, so any leak of it (or of its first half) is found.
SECRET = "fm-Secret-Api-Key-5d41402abc4b2a76b9719d911017c592"
SECRET_PARTS = (SECRET, SECRET[: len(SECRET) // 2 + 4], SECRET[len(SECRET) // 2 - 4 :])
ACCOUNT = "acc"
#: Ozon's one-a-minute limit of /v1/warehouse/list, scaled down so that retries do not wait a minute:
#: the client keeps to one request per 0.2 s; the simulator lets it (its own count would otherwise
#: read ``Ratelimit-Remaining: 0`` after every request, which pauses the client for a second).
FAST_WAREHOUSE_LIST = {V1_WAREHOUSE_LIST: (1, 0.2)}


@pytest.fixture(autouse=True)
def _fast_method_limits(monkeypatch):
    from ozon_simulator import server

    monkeypatch.setattr(server, "METHOD_LIMITS", {V1_WAREHOUSE_LIST: (100, 1.0)})
    monkeypatch.setattr("ozon_inventory.client.method_limits", lambda: dict(FAST_WAREHOUSE_LIST))


# -- what the database should hold ------------------------------------------------------------------


def descriptive(text: str | None) -> str | None:
    """Descriptive text (item names) as stored: a NUL or a lone surrogate becomes U+FFFD."""
    if text is None:
        return None
    return re.sub("[\x00\ud800-\udfff]", "\ufffd", text)


class Either:
    """An expected value that may be one of a few (a product name Ozon no longer reports: kept or empty)."""

    def __init__(self, *values: Any):
        self.values = values

    def __eq__(self, other: object) -> bool:
        return other in self.values

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return " or ".join(map(repr, self.values))


def expected_state(catalogue: Catalogue, wh_method: str = "v2") -> dict[str, dict[Any, Any]]:
    """The rows the database must hold for ``catalogue``, keyed as :func:`db_state` keys them.

    ``wh_method`` is the warehouse-stock method of the last load: ``v2`` gives reserved and no
    warehouse ids; ``v1`` (``/v1/analytics/stocks``) gives ids and promised, and no reserved;
    ``fbo`` (``/v1/product/info/stocks-by-warehouse/fbo``) gives present and reserved by warehouse
    id and no name (rows keyed ``#<id>``, free to sell ``present - reserved``), no promised and no
    item names. A column the method does not give may be empty or keep the other method's value.
    """
    whs = catalogue.ozon_warehouses
    by_type: dict[Any, Any] = {}
    skus: dict[Any, Any] = {}
    products: dict[Any, Any] = {}
    rows_of = {}
    for row in catalogue.rows:
        rows_of.setdefault(row.sku, []).append(row)
    for p in catalogue.products:
        if p.product_id in products:
            continue  # a product Ozon lists twice is one product
        # the name comes from the warehouse rows; without rows now, the last name given may stay
        named = wh_method != "fbo" and any(rows_of.get(s.sku) for s in p.stocks)
        name = descriptive(p.name) if named else Either(None, descriptive(p.name))
        products[p.product_id] = (p.offer_id, name)
        for s in p.stocks:
            by_type.setdefault((s.sku, s.type, s.shipment_type), (p.product_id, s.present, s.reserved))
            skus.setdefault(s.sku, p.product_id)
    by_wh: dict[Any, Any] = {}
    ozon: dict[Any, Any] = {}
    for r in catalogue.rows:
        wh = whs[r.warehouse]
        # a column the method does not give is empty, or keeps what the other method gave
        if wh_method == "v1":
            value = (wh.warehouse_id, r.free_to_sell, r.promised, Either(None, r.reserved))
            ozon[("ozon", wh.name)] = (wh.name, wh.warehouse_id)
        elif wh_method == "fbo":
            named_by_id = f"#{wh.warehouse_id}"
            value = (wh.warehouse_id, r.free_to_sell, Either(None, r.promised), r.reserved)
            ozon[("ozon", named_by_id)] = (named_by_id, wh.warehouse_id)
            by_wh.setdefault((r.sku, named_by_id), value)
            continue
        else:
            value = (Either(None, wh.warehouse_id), r.free_to_sell, r.promised, r.reserved)
            ozon[("ozon", wh.name)] = (wh.name, Either(None, wh.warehouse_id))
        by_wh.setdefault((r.sku, wh.name), value)
    seller = {
        ("seller", str(w.warehouse_id)): (
            w.name,
            w.warehouse_id,
            w.is_rfbs,
            w.status.lower(),
            ",".join(str(d) for d in sorted(set(w.working_days))),
        )
        for w in catalogue.seller_warehouses
    }
    return {
        "stock_by_type": by_type,
        "stock_by_warehouse": by_wh,
        "products": products,
        "skus": skus,
        "ozon_warehouses": ozon,
        "seller_warehouses": seller,
    }


_STATE_SQL = {
    "stock_by_type": "SELECT sku, stock_type, shipment_type, product_id, present, reserved "
    "FROM ozon_stock_by_type WHERE account = %s",
    "stock_by_warehouse": "SELECT sku, warehouse_name, warehouse_id, free_to_sell, promised, reserved "
    "FROM ozon_stock_by_warehouse WHERE account = %s",
    "products": "SELECT product_id, offer_id, name FROM ozon_product WHERE account = %s",
    "skus": "SELECT sku, product_id FROM ozon_sku WHERE account = %s",
    "ozon_warehouses": "SELECT kind, warehouse_id, name, is_rfbs, status, working_days, cluster_id, cluster_name "
    "FROM ozon_warehouse WHERE account = %s AND kind = 'ozon'",
    "seller_warehouses": "SELECT kind, warehouse_id, name, is_rfbs, status, working_days, cluster_id, cluster_name "
    "FROM ozon_warehouse WHERE account = %s AND kind = 'seller'",
}
_KEY_WIDTH = {"stock_by_type": 3, "stock_by_warehouse": 2, "products": 1, "skus": 1}


def db_state(conn: Any, account: str = ACCOUNT, full: bool = False) -> dict[str, dict[Any, Any]]:
    """The account's current rows, keyed as :func:`expected_state` keys them.

    ``full`` keeps every column of ``ozon_warehouse`` (for before/after comparisons), else the
    columns the catalogue determines.
    """
    state: dict[str, dict[Any, Any]] = {}
    with conn.cursor() as cur:
        for name, sql in _STATE_SQL.items():
            cur.execute(sql, (account,))
            rows = cur.fetchall()
            table: dict[Any, Any] = {}
            for row in rows:
                if name.endswith("_warehouses"):
                    kind, wh_id, wh_name, is_rfbs, status, days, _cl_id, _cl_name = row
                    key = (kind, str(wh_id) if kind == "seller" else wh_name)
                    if full:
                        value: Any = row
                    elif kind == "seller":
                        value = (wh_name, wh_id, is_rfbs, status, days)
                    else:
                        value = (wh_name, wh_id)
                else:
                    width = _KEY_WIDTH[name]
                    key = row[0] if width == 1 else tuple(row[:width])
                    value = tuple(row[width:]) if len(row) - width > 1 else row[width]
                assert key not in table, f"{name}: key {key!r} is current twice"
                table[key] = value
            state[name] = table
    conn.commit()
    return state


def diff_states(
    got: dict[str, dict[Any, Any]],
    want: dict[str, dict[Any, Any]],
    ignore: dict[str, Iterable[Any]] | None = None,
    ozon_ids: bool = True,
) -> list[str]:
    """Differences, table by table: keys missing, keys extra, values that differ (a few of each)."""
    problems: list[str] = []
    ignore = {k: set(v) for k, v in (ignore or {}).items()}
    for table, wanted in want.items():
        have = got.get(table, {})
        skip = ignore.get(table, set())
        if table == "ozon_warehouses" and not ozon_ids:  # v2 names Ozon's warehouses without ids
            have = {k: v[:1] for k, v in have.items()}
            wanted = {k: v[:1] for k, v in wanted.items()}
        missing = [k for k in wanted if k not in have and k not in skip]
        extra = [k for k in have if k not in wanted and k not in skip]
        changed = [
            (k, have[k], wanted[k]) for k in wanted if k in have and k not in skip and have[k] != wanted[k]
        ]
        if missing:
            problems.append(f"{table}: {len(missing)} missing, e.g. {_short(missing[:3])}")
        if extra:
            problems.append(f"{table}: {len(extra)} not in the catalogue, e.g. {_short(extra[:3])}")
        if changed:
            problems.append(
                f"{table}: {len(changed)} differ, e.g. "
                + "; ".join(f"{_short(k)}: db {_short(h)} != {_short(w)}" for k, h, w in changed[:3])
            )
    return problems


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 160 else text[:150] + f"…({len(text)} chars)"


# -- history invariants ---------------------------------------------------------------------------

_HISTORY = {
    "ozon_stock_by_type_history": "sku, stock_type, shipment_type",
    "ozon_stock_by_warehouse_history": "sku, warehouse_name",
}


def history_problems(conn: Any, account: str = ACCOUNT) -> list[str]:
    problems = []
    with conn.cursor() as cur:
        for table, key in _HISTORY.items():
            cur.execute(
                f"SELECT {key}, count(*) FROM {table} WHERE account = %s AND valid_to IS NULL "
                f"GROUP BY {key} HAVING count(*) > 1 LIMIT 3",
                (account,),
            )
            if rows := cur.fetchall():
                problems.append(f"{table}: keys current more than once, e.g. {rows}")
            cur.execute(
                f"SELECT {key}, valid_from, valid_to FROM {table} WHERE account = %s AND valid_to < valid_from LIMIT 3",
                (account,),
            )
            if rows := cur.fetchall():
                problems.append(f"{table}: valid_to before valid_from, e.g. {rows}")
            cur.execute(
                f"""SELECT {key}, valid_from, valid_to, next_from FROM (
                        SELECT {key}, valid_from, valid_to,
                               lead(valid_from) OVER (PARTITION BY {key} ORDER BY valid_from, valid_to NULLS LAST)
                               AS next_from
                        FROM {table} WHERE account = %s) h
                    WHERE next_from IS NOT NULL AND (valid_to IS NULL OR valid_to > next_from) LIMIT 3""",
                (account,),
            )
            if rows := cur.fetchall():
                problems.append(f"{table}: overlapping validity for one key, e.g. {rows}")
    conn.commit()
    return problems


# -- secrets ----------------------------------------------------------------------------------------


def secret_in(text: str | bytes) -> bool:
    if isinstance(text, bytes):
        return any(part.encode() in text for part in SECRET_PARTS)
    return any(part in text for part in SECRET_PARTS)


def exception_texts(errors: Iterable[BaseException]) -> str:
    return "\n".join(
        f"{exc!s}\n{exc!r}\n{''.join(traceback.format_exception(exc))}" for exc in errors if exc is not None
    )


def files_with_secret(root: Path) -> list[str]:
    found = []
    if not root.exists():
        return found
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if path.name.endswith(".gz"):
            try:
                data += gzip.decompress(data)
            except (OSError, EOFError, zlib.error):
                pass  # a page a case damaged on purpose
        if secret_in(data):
            found.append(str(path))
    return found


def tables_with_secret(conn: Any) -> list[str]:
    found = []
    with conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        for (table,) in cur.fetchall():
            for part in SECRET_PARTS:
                cur.execute(f'SELECT count(*) FROM "{table}" t WHERE strpos(t::text, %s) > 0', (part,))
                if cur.fetchone()[0]:
                    found.append(table)
                    break
    conn.commit()
    return found


# -- one account's run, as the DAG runs it ----------------------------------------------------------


@dataclass
class RunResult:
    run_key: str
    fetch_errors: dict[str, BaseException] = field(default_factory=dict)
    error: BaseException | None = None  # validate, merge or load failed (nothing loaded)
    report: Any = None
    loaded: Any = None

    @property
    def errors(self) -> list[BaseException]:
        return [*self.fetch_errors.values(), *([self.error] if self.error else [])]

    @property
    def text(self) -> str:
        """What an operator reads: every failed task's error."""
        parts = [f"fetch_{s}: {e}" for s, e in self.fetch_errors.items()]
        if self.error is not None:
            parts.append(f"{type(self.error).__name__}: {self.error}")
        return "\n".join(parts)

    @property
    def complete(self) -> bool:
        return self.error is None and self.loaded is not None and self.loaded.status == "complete"

    @property
    def degraded(self) -> bool:
        return self.loaded is not None and self.loaded.degraded


class NothingFetched(Exception):
    """The DAG's validate fails like this when no fetch of the account completed."""


class Matrix:
    """One case's world: the simulator, the staging root, the database, the checks."""

    def __init__(self, running: Any, root: Path, dsn: str, caplog: Any, monkeypatch: Any):
        self.running, self.root, self.dsn, self.caplog, self.monkeypatch = (
            running,
            root,
            dsn,
            caplog,
            monkeypatch,
        )
        self.sim = running.sim
        self.account = ACCOUNT
        self.staging_root = root / "staging"
        self.errors: list[BaseException] = []
        self._rewrites: dict[str, str] = {}
        self._hour = 0

    # -- the world

    @property
    def catalogue(self) -> Catalogue:
        return self.sim.accounts[CLIENT_ID].catalogue

    def connect(self) -> Any:
        return psycopg.connect(self.dsn, connect_timeout=5)

    def client(self, **overrides: Any) -> Any:
        from ozon_inventory.client import OzonClient

        options = {
            "rate_limit": 1000,
            "timeout": 1.0,
            "max_retries": 5,
            "backoff": 0.005,
            "backoff_max": 0.02,
        } | overrides
        return OzonClient(self.running.url, CLIENT_ID, SECRET, **options)

    def staging(self, run_key: str) -> Any:
        from ozon_inventory.staging import StagingArea

        return StagingArea(str(self.staging_root), self.account, run_key)

    def next_key(self) -> str:
        self._hour += 1
        return clock.run_key(clock.day(20) + timedelta(hours=self._hour))

    def fault(self, *faults: Fault) -> None:
        for fault in faults:
            self.sim.add_fault(fault)

    def heal(self) -> None:
        self.sim.clear_faults()
        self._rewrites.clear()

    def rewrite(self, value: Any, raw: str, field: str | None = None) -> None:
        """Ozon sends ``raw`` (JSON text, e.g. ``NaN``, ``1e400``, ``"bad\\ud800x"``) wherever the
        catalogue's ``value`` (of ``field``, when given) would appear in an answer: what
        ``json.dumps`` cannot write."""
        if not self._rewrites:
            from ozon_simulator.server import _Handler

            rewrites = self._rewrites

            def send_json(
                handler: Any, status: int, payload: Any, headers: dict[str, str] | None = None
            ) -> None:
                body = json.dumps(payload, ensure_ascii=False)
                for old, new in rewrites.items():
                    body = body.replace(old, new)
                handler._send(
                    status, body.encode("utf-8", "surrogatepass"), "application/json", headers or {}
                )

            self.monkeypatch.setattr(_Handler, "_send_json", send_json)
        old = json.dumps(value, ensure_ascii=False)
        if field is None:
            self._rewrites[old] = raw
        else:
            self._rewrites[f'"{field}": {old}'] = f'"{field}": {raw}'

    # -- runs

    def run(
        self,
        run_key: str | None = None,
        *,
        client: Any = None,
        warehouse_stock_method: str = "auto",
        warehouse_list_method: str = "auto",
        between: Callable[[Any], None] | None = None,
        before_load: Callable[[Any], None] | None = None,
        backfill: bool = False,
        shrink_threshold: float = 0.5,
        allow_shrink: bool = False,
    ) -> RunResult:
        """Fetch (each source on its own), validate, merge and load one run, as the DAG's tasks do.

        ``between`` runs after the fetches (a case damages staging there), ``before_load`` after
        merge. A backfill fetches nothing: it reprocesses what the run's staging holds.
        """
        from ozon_inventory.fetch import fetch_source
        from ozon_inventory.load import load_run, previous_counts
        from ozon_inventory.merge import merge_run
        from ozon_inventory.schema import migrate
        from ozon_inventory.staging import SOURCES
        from ozon_inventory.validate import validate_run

        run_key = run_key or self.next_key()
        result = RunResult(run_key)
        staging = self.staging(run_key)
        choices = {"warehouse_stocks": warehouse_stock_method, "warehouses": warehouse_list_method}
        if not backfill:
            ozon = client
            try:  # a factory (a hook reading its connection) fails every fetch when a setting is bad
                ozon = ozon() if callable(ozon) else ozon or self.client()
            except Exception as exc:  # noqa: BLE001 - a bad setting fails every fetch, as in the DAG
                result.fetch_errors = dict.fromkeys(SOURCES, exc)
            for source in SOURCES if not result.fetch_errors else ():
                try:
                    fetch_source(ozon, staging, source, choices.get(source, "auto"))
                except Exception as exc:  # noqa: BLE001 - the DAG goes on with the other sources
                    logging.getLogger("fault_matrix").error("fetch_%s failed: %s", source, exc)
                    result.fetch_errors[source] = exc
        try:
            if between is not None:
                between(staging)
            fetched = [s for s in SOURCES if staging.manifest(s) is not None]
            if not fetched:
                raise NothingFetched(
                    f"account {self.account}: no source was fetched for run {run_key}; see the fetch tasks' logs"
                )
            with self.connect() as conn:
                migrate(conn)
                previous = previous_counts(conn, self.account)
                skipped = set(SOURCES) - set(fetched) if backfill else set()
                result.report = validate_run(staging, previous, shrink_threshold, allow_shrink, skipped)
                merge_run(staging, result.report)
                if before_load is not None:
                    before_load(staging)
                result.loaded = load_run(conn, staging, result.report, f"run-{run_key}", {})
        except Exception as exc:  # noqa: BLE001 - the case asserts on it
            logging.getLogger("fault_matrix").error("run %s failed: %s", run_key, exc)
            result.error = exc
        self.errors.extend(result.errors)
        return result

    def good_run(self, **kwargs: Any) -> RunResult:
        result = self.run(**kwargs)
        assert result.complete, f"expected a complete run, got:\n{result.text}"
        return result

    # -- checks

    def state(self, full: bool = True) -> dict[str, dict[Any, Any]]:
        with self.connect() as conn:
            return db_state(conn, self.account, full=full)

    def assert_catalogue(self, wh_method: str = "v2", ignore: dict[str, Iterable[Any]] | None = None) -> None:
        """Check 1: every key and value of the catalogue, nothing else (``ignore``: keys a case excludes)."""
        with self.connect() as conn:
            got = db_state(conn, self.account)
        problems = diff_states(
            got, expected_state(self.catalogue, wh_method), ignore, ozon_ids=wh_method != "v2"
        )
        assert not problems, "the database differs from Ozon's catalogue:\n" + "\n".join(problems)

    def assert_history(self) -> None:
        """Check 2."""
        with self.connect() as conn:
            problems = history_problems(conn, self.account)
        assert not problems, "history invariants broken:\n" + "\n".join(problems)

    def assert_unchanged(
        self, before: dict[str, dict[Any, Any]], tables: Iterable[str] | None = None
    ) -> None:
        """Check 3: the snapshot taken before the fault, still whole (all tables, or ``tables``)."""
        now = self.state()
        for table in before if tables is None else tables:
            if now[table] != before[table]:
                problems = diff_states({table: now[table]}, {table: before[table]})
                raise AssertionError(f"{table} changed while the fault lasted:\n" + "\n".join(problems))

    def assert_no_secret(self, *more_texts: str) -> None:
        """Check 5: the Api-Key is nowhere: log, errors, staging, database."""
        assert not secret_in(self.caplog.text), "the Api-Key is in the log"
        assert not secret_in(exception_texts(self.errors)), "the Api-Key is in an error"
        for text in more_texts:
            assert not secret_in(text), "the Api-Key is in an operator-facing text"
        assert not files_with_secret(self.root), f"the Api-Key is in {files_with_secret(self.root)}"
        with self.connect() as conn:
            tables = tables_with_secret(conn)
        assert not tables, f"the Api-Key is in tables {tables}"

    def assert_recovered(self, wh_method: str = "v2") -> None:
        """Checks 1, 2 and 5 after the recovery run."""
        self.assert_catalogue(wh_method)
        self.assert_history()
        self.assert_no_secret()


def assert_names(cause: str, text: str) -> None:
    """Check 4: the error names its cause."""
    assert re.search(cause, text, re.S), f"the error does not name its cause /{cause}/:\n{text}"


def permanent(exc: BaseException) -> bool:
    """Whether the DAG's retry policy fails this error at once (no retries)."""
    from airflow.sdk import RetryAction

    from ozon_inventory.tasks import PERMANENT

    return PERMANENT.evaluate(exc, 1, 4).action == RetryAction.FAIL


def make_simulator(
    products: int = 400, warehouses: int = 8, rows_per_sku: float = 2.5, seed: int = 11
) -> Any:
    sim = default_simulator(
        products=products,
        warehouses=warehouses,
        seed=seed,
        client_id=CLIENT_ID,
        api_key=SECRET,
        rows_per_sku=rows_per_sku,
    )
    return serve(sim)


@pytest.fixture
def sim_size() -> dict[str, Any]:
    """Catalogue size of a case's simulator; a module or case overrides it."""
    return {}


@pytest.fixture
def matrix(request, tmp_path, pg_server, pg_dsn, caplog, monkeypatch, sim_size):
    caplog.set_level(logging.DEBUG)
    running = make_simulator(**sim_size)
    try:
        yield Matrix(running, tmp_path, pg_dsn, caplog, monkeypatch)
    finally:
        running.stop()
        _drop(pg_server, pg_dsn)


def _drop(pg_server: Any, dsn: str) -> None:
    """Drop the case's database: a session of a hundred of them makes the server's teardown slow."""
    if not pg_server.running():
        pg_server.start()
    name = dsn.rsplit("/", 1)[1]
    with psycopg.connect(pg_server.dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
