"""Synthetic accounts written straight into the target database: many accounts with a history.

Used to measure the "Ozon inventory" page with 200 accounts (unit tests and the browser test). The
rows have the shapes the load writes (ledger with per-source request figures, source state, stock
history by type and by warehouse, rejects), so every part of the page has something to show.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from ozon_inventory.schema import migrate

V4 = "/v4/product/info/stocks"
V2_ANALYTICS = "/v2/analytics/stock_on_warehouses"
V1_ANALYTICS = "/v1/analytics/stocks"
V2_WAREHOUSES = "/v2/warehouse/list"
WAREHOUSES = ["ХОРУГВИНО_РФЦ", "САНКТ_ПЕТЕРБУРГ_РФЦ", "КАЗАНЬ_РФЦ", "rFBS*Екатеринбург", "НОВОСИБИРСК_РФЦ"]


def name(i: int) -> str:
    return f"synthetic_{i:03d}"


def _figures(requests: int, too_many: int, first_at: float) -> dict[str, Any]:
    return {
        "requests": requests,
        "responses_429": too_many,
        "retries": too_many,
        "errors": 0,
        "pages": requests,
        "waited_s": float(too_many),
        "first_at": first_at,
        "last_at": first_at + 1,
    }


def _sources(i: int, t: datetime, degraded: bool) -> dict[str, Any]:
    at = t.isoformat()
    stamp = t.timestamp()
    fallback = i % 9 == 4
    analytics = V1_ANALYTICS if fallback else V2_ANALYTICS
    return {
        "stocks": {
            "status": "ok",
            "method": V4,
            "as_of": at,
            "fallback_from": None,
            "rows_valid": 40,
            "rejects": 1 if i % 10 == 3 else 0,
            "requests": {V4: _figures(1, 1 if i % 11 == 5 else 0, stamp)},
        },
        "warehouse_stocks": (
            {"status": "missing", "requests": {}}
            if degraded
            else {
                "status": "ok",
                "method": analytics,
                "as_of": at,
                "fallback_from": V2_ANALYTICS if fallback else None,
                "rows_valid": 100,
                "rejects": 0,
                "requests": {analytics: _figures(2, 0, stamp + 1)},
            }
        ),
        "warehouses": {
            "status": "ok",
            "method": V2_WAREHOUSES,
            "as_of": at,
            "fallback_from": None,
            "rows_valid": 2,
            "rejects": 0,
            "requests": {V2_WAREHOUSES: _figures(1, 0, stamp + 2)},
        },
    }


def insert_accounts(
    conn: Any, accounts: int = 200, runs: int = 24, skus: int = 20, now: datetime | None = None, seed: int = 1
) -> dict[str, Any]:
    """Write ``accounts`` accounts with ``runs`` hourly runs each; return what was written.

    Every 40th account's last run is degraded (warehouse_stocks missing), every 67th account's
    snapshot is two days old (stale), every 10th has a reject in its last run.
    """
    rng = random.Random(seed)
    now = now or datetime.now(UTC).replace(microsecond=0)
    migrate(conn)
    degraded, stale, with_rejects = [], [], []
    ledger, state, by_type, by_wh, rejects = [], [], [], [], []
    for i in range(accounts):
        account = name(i)
        old = i % 67 == 13
        end = now - (timedelta(days=2) if old else timedelta(minutes=5 + i % 30))
        times = [end - timedelta(hours=runs - 1 - r) for r in range(runs)]
        last_degraded = i % 40 == 21
        if old:
            stale.append(account)
        elif last_degraded:
            degraded.append(account)
        if i % 10 == 3:
            with_rejects.append(account)
        for r, t in enumerate(times):
            run_id = f"scheduled__{t.strftime('%Y-%m-%dT%H:%M:%S')}+00:00"
            is_last = r == runs - 1
            bad = last_degraded and is_last
            ledger.append(
                (
                    account,
                    run_id,
                    t.strftime("%Y%m%dT%H%M%SZ"),
                    "degraded" if bad else "complete",
                    bad,
                    "{warehouse_stocks}" if bad else "{}",
                    "{stocks,warehouses}" if bad else "{stocks,warehouse_stocks,warehouses}",
                    skus,
                    skus * 2,
                    skus * len(WAREHOUSES),
                    len(WAREHOUSES),
                    1 if (i % 10 == 3 and is_last) else 0,
                    2 if (i % 13 == 1 and is_last) else 0,
                    3,
                    3,
                    json.dumps(_sources(i, t, bad), ensure_ascii=False),
                    json.dumps({"load": 0.1}),
                    t,
                )
            )
            if i % 10 == 3 and is_last:
                rejects.append(
                    (
                        account,
                        run_id,
                        "stocks",
                        "present is negative",
                        json.dumps({"sku": 1000 + i, "present": -3}),
                    )
                )
        last_run = ledger[-1][1]
        for source in ("stocks", "warehouse_stocks", "warehouses"):
            as_of = times[-2] if (last_degraded and source == "warehouse_stocks") else times[-1]
            state.append(
                (account, source, as_of, last_run, _sources(i, as_of, False)[source]["method"], 40, skus)
            )
        for k in range(skus):
            sku = 100_000 + i * 1000 + k
            changes = sorted(rng.sample(range(1, runs), 2))
            bounds = [times[0], times[changes[0]], times[changes[1]], None]
            for v in range(3):
                present = rng.randint(0, 60)
                by_type.append(
                    (
                        account,
                        10_000 + k,
                        sku,
                        "fbo",
                        "SHIPMENT_TYPE_GENERAL",
                        present,
                        rng.randint(0, 3),
                        bounds[v],
                        bounds[v + 1],
                        last_run,
                    )
                )
            for w in WAREHOUSES[: 1 + (k % len(WAREHOUSES))]:
                by_wh.append(
                    (
                        account,
                        sku,
                        w,
                        rng.randint(0, 40),
                        rng.randint(0, 5),
                        rng.randint(0, 5),
                        times[0],
                        None,
                        last_run,
                    )
                )
    with conn.transaction(), conn.cursor() as cur:
        _copy(
            cur,
            "ozon_sync_run (account, run_id, run_key, status, degraded, missing_sources, applied_sources, products,"
            " stock_rows, warehouse_rows, warehouses, rejects, mismatches, history_opened, history_closed, sources,"
            " durations, loaded_at)",
            ledger,
        )
        _copy(cur, "ozon_source_state (account, source, as_of, run_id, method, rows, products)", state)
        _copy(
            cur,
            "ozon_stock_by_type_history (account, product_id, sku, stock_type, shipment_type, present, reserved,"
            " valid_from, valid_to, run_id)",
            by_type,
        )
        _copy(
            cur,
            "ozon_stock_by_warehouse_history (account, sku, warehouse_name, free_to_sell, promised, reserved,"
            " valid_from, valid_to, run_id)",
            by_wh,
        )
        _copy(cur, "ozon_reject (account, run_id, source, reason, record)", rejects)
    return {
        "accounts": [name(i) for i in range(accounts)],
        "degraded": degraded,
        "stale": stale,
        "with_rejects": with_rejects,
        "ledger_rows": len(ledger),
        "history_rows": len(by_type) + len(by_wh),
    }


def _copy(cur: Any, target: str, rows: list[tuple[Any, ...]]) -> None:
    with cur.copy(f"COPY {target} FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
