"""Read the stock tables into pandas DataFrames, for analysts (notebooks, downstream DAGs).

    from ozon_inventory import read
    read.current_stock_by_warehouse("ozon_default")        # FBO stock per SKU and Ozon warehouse, now
    read.current_stock_by_type("ozon_default")             # per SKU and fbo / fbs / rfbs / fbp, now
    read.stock_at("2026-11-20T12:00Z", "ozon_default")     # as it was at a time (by type, or by="warehouse")
    read.sku_history("ozon_default", 1234567)              # every change of one SKU, both tables
    read.runs("ozon_default"), read.rejects("ozon_default", run_id=…)
    read.stock_events("ozon_default", since="2026-11-20")  # SKUs out of / back in stock, newest first

Each function opens the target database through ``PostgresHook`` (connection ``ozon_postgres``, or
``conn_id=``, or the Variable ``ozon_inventory_postgres_conn_id``) and returns nullable pandas
dtypes (``Int64``, ``string``), so quantities stay integers to the unit even where a column has
NULLs. pandas is imported only here, inside the functions: the DAG's tasks never import it
(Airflow imports every module of ``plugins/`` at start-up, this one included).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_CONN_ID = "ozon_postgres"


def conn_id_default() -> str:
    """``AIRFLOW_VAR_OZON_INVENTORY_POSTGRES_CONN_ID``, the Variable, or ``ozon_postgres``."""
    value = os.environ.get("AIRFLOW_VAR_OZON_INVENTORY_POSTGRES_CONN_ID")
    if not value:
        try:
            from airflow.sdk import Variable

            value = Variable.get("ozon_inventory_postgres_conn_id", default=None)
        except Exception:  # noqa: BLE001 - outside Airflow there may be no Variable backend
            value = None
    return str(value or DEFAULT_CONN_ID)


#: PostgreSQL type OIDs → pandas dtypes that keep every value exact (NULLs as <NA>, not NaN floats).
_INTEGERS = {20, 21, 23}  # int8, int2, int4
_FLOATS = {700, 701}  # float4, float8
_TEXTS = {25, 1043, 19}  # text, varchar, name
_TIMES = {1184, 1114}  # timestamptz, timestamp


def frame(sql: str, params: Mapping[str, Any] | None = None, conn_id: str | None = None) -> pd.DataFrame:
    """Any query as a DataFrame (``%(name)s`` parameters), through ``PostgresHook``.

    Integers become ``Int64``, text ``string``, booleans ``boolean``, times UTC ``datetime64``;
    ``jsonb`` stays Python dicts and lists, arrays stay lists.
    """
    import pandas as pd
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn: Any = PostgresHook(postgres_conn_id=conn_id or conn_id_default()).get_conn()
    try:
        with conn.cursor() as cur:
            cur.execute(sql, dict(params or {}))
            columns = list(cur.description or [])
            rows = cur.fetchall()
        conn.rollback()
    finally:
        conn.close()
    data: dict[str, Any] = {}
    for i, column in enumerate(columns):
        values = [row[i] for row in rows]
        oid = column.type_code
        if oid in _TIMES:
            data[column.name] = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
        elif oid in _INTEGERS:
            data[column.name] = pd.Series(values, dtype="Int64")
        elif oid in _FLOATS:
            data[column.name] = pd.Series(values, dtype="Float64")
        elif oid == 16:
            data[column.name] = pd.Series(values, dtype="boolean")
        elif oid in _TEXTS:
            data[column.name] = pd.Series(values, dtype="string")
        else:
            data[column.name] = pd.Series(values, dtype=object)
    return pd.DataFrame(data, columns=[c.name for c in columns])


def _moment(since: datetime | str | None) -> datetime | None:
    """An ISO time (``Z`` allowed) or a datetime, as the queries' ``%(since)s``."""
    return datetime.fromisoformat(since.replace("Z", "+00:00")) if isinstance(since, str) else since


def _account_filter(alias: str, account: str | None) -> str:
    return f"(%(account)s::text IS NULL OR {alias}.account = %(account)s)"


def current_stock_by_warehouse(account: str | None = None, *, conn_id: str | None = None) -> pd.DataFrame:
    """FBO stock per SKU and Ozon warehouse now: free_to_sell, promised, reserved, with offer id and name."""
    return frame(
        f"""SELECT s.*, p.product_id, p.offer_id, p.name
            FROM ozon_stock_by_warehouse s
            LEFT JOIN ozon_sku k ON k.account = s.account AND k.sku = s.sku
            LEFT JOIN ozon_product p ON p.account = k.account AND p.product_id = k.product_id
            WHERE {_account_filter("s", account)}
            ORDER BY s.account, s.warehouse_name, s.sku""",
        {"account": account},
        conn_id,
    )


def current_stock_by_type(account: str | None = None, *, conn_id: str | None = None) -> pd.DataFrame:
    """Stock per SKU, stock type (fbo/fbs/rfbs/fbp) and shipment type now: present and reserved."""
    return frame(
        f"""SELECT s.*, p.offer_id, p.name
            FROM ozon_stock_by_type s
            LEFT JOIN ozon_product p ON p.account = s.account AND p.product_id = s.product_id
            WHERE {_account_filter("s", account)}
            ORDER BY s.account, s.sku, s.stock_type, s.shipment_type""",
        {"account": account},
        conn_id,
    )


def stock_at(
    when: datetime | str,
    account: str | None = None,
    *,
    by: Literal["type", "warehouse"] = "type",
    conn_id: str | None = None,
) -> pd.DataFrame:
    """Stock as it was at ``when`` (an aware datetime or an ISO 8601 string with a zone): the history
    rows valid then (``valid_from <= when < valid_to``, or still current)."""
    if by not in ("type", "warehouse"):
        raise ValueError(f"by must be 'type' or 'warehouse', not {by!r}")
    moment = datetime.fromisoformat(when.replace("Z", "+00:00")) if isinstance(when, str) else when
    if moment.tzinfo is None:
        raise ValueError(f"stock_at needs a time with a zone (e.g. 2026-11-20T12:00Z), got {when!r}")
    if by == "type":
        sql = f"""SELECT h.account, h.product_id, h.sku, h.stock_type, h.shipment_type, h.present, h.reserved,
                         h.valid_from, h.valid_to, h.run_id
                  FROM ozon_stock_by_type_history h
                  WHERE {_account_filter("h", account)} AND h.valid_from <= %(at)s
                    AND (h.valid_to IS NULL OR h.valid_to > %(at)s)
                  ORDER BY h.account, h.sku, h.stock_type, h.shipment_type"""
    else:
        sql = f"""SELECT h.account, h.sku, h.warehouse_name, h.warehouse_id, h.free_to_sell, h.promised,
                         h.reserved, h.valid_from, h.valid_to, h.run_id
                  FROM ozon_stock_by_warehouse_history h
                  WHERE {_account_filter("h", account)} AND h.valid_from <= %(at)s
                    AND (h.valid_to IS NULL OR h.valid_to > %(at)s)
                  ORDER BY h.account, h.warehouse_name, h.sku"""
    return frame(sql, {"account": account, "at": moment}, conn_id)


def sku_history(account: str, sku: int, *, conn_id: str | None = None) -> pd.DataFrame:
    """Every change of one SKU, oldest first: its rows by type (``kind`` 'type') and by Ozon warehouse
    (``kind`` 'warehouse'), each valid from ``valid_from`` until ``valid_to`` (NULL: still current)."""
    return frame(
        """SELECT 'type' AS kind, account, sku, stock_type, shipment_type, NULL::text AS warehouse_name,
                  present, reserved, NULL::integer AS free_to_sell, NULL::integer AS promised,
                  valid_from, valid_to, run_id
           FROM ozon_stock_by_type_history WHERE account = %(account)s AND sku = %(sku)s
           UNION ALL
           SELECT 'warehouse', account, sku, NULL, NULL, warehouse_name,
                  NULL, reserved, free_to_sell, promised, valid_from, valid_to, run_id
           FROM ozon_stock_by_warehouse_history WHERE account = %(account)s AND sku = %(sku)s
           ORDER BY valid_from, kind, stock_type, shipment_type, warehouse_name""",
        {"account": account, "sku": int(sku)},
        conn_id,
    )


def runs(
    account: str | None = None,
    *,
    since: datetime | str | None = None,
    limit: int = 1000,
    conn_id: str | None = None,
) -> pd.DataFrame:
    """The run ledger, newest first: status, degraded, missing / applied / stale sources, counts,
    rejects, mismatches, history rows opened and closed (``sources`` and ``durations`` as dicts)."""
    return frame(
        f"""SELECT r.* FROM ozon_sync_run r
            WHERE {_account_filter("r", account)} AND (%(since)s::timestamptz IS NULL OR r.loaded_at >= %(since)s)
            ORDER BY r.loaded_at DESC LIMIT %(limit)s""",
        {"account": account, "since": _moment(since), "limit": int(limit)},
        conn_id,
    )


def rejects(
    account: str | None = None,
    *,
    run_id: str | None = None,
    limit: int = 10_000,
    conn_id: str | None = None,
) -> pd.DataFrame:
    """Rejected rows with their source, reason and the raw record as Ozon sent it (``record``, a dict)."""
    return frame(
        f"""SELECT j.id, j.account, j.run_id, j.source, j.reason, j.record, j.rejected_at
            FROM ozon_reject j
            WHERE {_account_filter("j", account)} AND (%(run_id)s::text IS NULL OR j.run_id = %(run_id)s)
            ORDER BY j.id LIMIT %(limit)s""",
        {"account": account, "run_id": run_id, "limit": int(limit)},
        conn_id,
    )


def stock_events(
    account: str | None = None,
    *,
    since: datetime | str | None = None,
    run_id: str | None = None,
    kind: Literal["out_of_stock", "back_in_stock"] | None = None,
    limit: int = 10_000,
    conn_id: str | None = None,
) -> pd.DataFrame:
    """Stock events, newest first: a SKU's stock available to sell crossing 0 per stock type
    (``scope`` ``type``: present - reserved; ``stock_type``, ``shipment_type``) or per Ozon warehouse
    (``scope`` ``warehouse``: free to sell; ``warehouse_name``), with ``before`` and ``after`` and
    the as-of time ``at`` of the load that saw it."""
    return frame(
        f"""SELECT e.account, e.run_id, e.at, e.scope, e.kind, e.sku, e.stock_type, e.shipment_type,
                   e.warehouse_name, e.before, e.after
            FROM ozon_stock_event e
            WHERE {_account_filter("e", account)}
              AND (%(since)s::timestamptz IS NULL OR e.at >= %(since)s)
              AND (%(run_id)s::text IS NULL OR e.run_id = %(run_id)s)
              AND (%(kind)s::text IS NULL OR e.kind = %(kind)s)
            ORDER BY e.at DESC, e.id DESC LIMIT %(limit)s""",
        {"account": account, "since": _moment(since), "run_id": run_id, "kind": kind, "limit": int(limit)},
        conn_id,
    )
