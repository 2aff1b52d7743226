-- Statements of one account's load; each runs inside the load's single transaction.
-- Parameters: %(account)s, %(as_of)s, %(run_id)s, and for history %(held_as_of)s and %(not_provided)s.
-- Temp tables hold this run's model files. sources.py names the sections each source runs.

-- name: lock_account
SELECT pg_advisory_xact_lock(hashtext('ozon_inventory:' || %(account)s));

-- name: bulk_plans
-- Every statement of a load is a set operation over the whole snapshot: a nested loop, which the
-- planner picks when statistics lag behind a large load, turns them quadratic. A merge join sorts
-- both sides first: the planner picks it for the diff when the streamed rows are not analyzed yet,
-- and the diff of 850,000 rows then took 1.16-1.22 s (two sorts on text keys) against 0.78-0.88 s
-- hashed. JIT compiling costs more than it saves on these one-pass statements (that diff: 1.3 s
-- with it, 0.8 s without). Only for this transaction.
SET LOCAL enable_nestloop = off; SET LOCAL enable_mergejoin = off; SET LOCAL jit = off;

-- name: tid_plans
-- For the statements that touch the rows a diff named by row address (``ctid = ANY (...)``): a TID
-- scan is their only plan that does not grow with the history. The planner costs it against the
-- current-rows index, and while statistics lag behind a large load it may pick that index and filter
-- every current row against the list (minutes, not milliseconds): the other scans are off for them.
SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off;

-- name: scan_plans
-- Back to the server's settings once the TID statements are done.
SET LOCAL enable_seqscan TO DEFAULT; SET LOCAL enable_indexscan TO DEFAULT; SET LOCAL enable_bitmapscan TO DEFAULT;

-- name: clock
-- The database's clock: no as-of is stored later than it (a worker or a Date header a day ahead
-- would otherwise make every later, correct run look stale). Whole seconds, as Ozon's Date header
-- has them, so the next run's as-of from that header is never older than a clamped one.
SELECT date_trunc('second', now());

-- name: source_state
SELECT source, as_of, rows, products FROM ozon_source_state WHERE account = %(account)s;

-- name: count_warehouses
SELECT count(*) AS warehouses, count(*) FILTER (WHERE kind = 'ozon') AS ozon_warehouses
FROM ozon_warehouse WHERE account = %(account)s;

-- Temp tables: one per model file (sources.py declares the files and their columns; the load's
-- COPY names the columns, so the order here does not matter, the names do).

-- name: temp_stock_by_type
CREATE TEMP TABLE tmp_stock_by_type (
    product_id bigint, sku bigint, stock_type text, shipment_type text, present integer, reserved integer
) ON COMMIT DROP;

-- name: temp_products
CREATE TEMP TABLE tmp_products (product_id bigint, offer_id text, name text) ON COMMIT DROP;

-- name: temp_held_products
CREATE TEMP TABLE tmp_held_products (product_id bigint) ON COMMIT DROP;

-- name: temp_held_stock_by_type
CREATE TEMP TABLE tmp_held_stock_by_type (sku bigint, stock_type text, shipment_type text) ON COMMIT DROP;

-- name: temp_stock_by_warehouse
CREATE TEMP TABLE tmp_stock_by_warehouse (
    sku bigint, warehouse_name text, warehouse_id bigint, free_to_sell integer, promised integer, reserved integer
) ON COMMIT DROP;

-- name: temp_held_stock_by_warehouse
CREATE TEMP TABLE tmp_held_stock_by_warehouse (sku bigint, warehouse_name text) ON COMMIT DROP;

-- name: temp_ozon_warehouses
CREATE TEMP TABLE tmp_ozon_warehouses (name text, warehouse_id bigint, cluster_id bigint, cluster_name text)
ON COMMIT DROP;

-- name: temp_seller_warehouses
CREATE TEMP TABLE tmp_seller_warehouses (
    warehouse_id bigint, name text, is_rfbs boolean, status text, working_days text
) ON COMMIT DROP;

-- name: temp_held_seller_warehouses
CREATE TEMP TABLE tmp_held_seller_warehouses (warehouse_id bigint) ON COMMIT DROP;

-- name: temp_rejects
CREATE TEMP TABLE tmp_rejects (source text, reason text, record text) ON COMMIT DROP;

-- History, per history table: the first snapshot opens every row; later ones diff against the
-- current rows and touch only what changed. The diff (diff_<table>) has two parts: the run's rows
-- that are new or changed (diff_new_, a join from the run's rows to the current rows, which also
-- runs chunk by chunk while the fetch streams the rows: load.Prestage), and the current rows the
-- run no longer has (diff_vanished_, needed only when count_current_ says some are gone: run's
-- rows - new keys < current rows; a run's keys are unique, validate rejects a repeated one).
-- Keys in tmp_held_<table> (their new value was rejected) keep their current row,
-- marked held_as_of = the as-of of the last load that confirmed it; a confirmed value clears it.
-- %(not_provided)s lists the columns the run's method does not give: they keep the previous value
-- and are not compared, so a fallback to another method rewrites no history.

-- name: history_version
-- What a diff made outside the load relies on: the loads that applied the source (each changes its
-- current rows only in its own transaction) and the table's file (VACUUM FULL or CLUSTER move rows).
SELECT coalesce((SELECT loads FROM ozon_source_state WHERE account = %(account)s AND source = %(source)s), 0),
       pg_relation_filenode(%(history)s::regclass);

-- name: probe_plans
-- A chunk of the run's rows is joined to the current rows through their unique index: one probe
-- per row of the chunk, however large the history (a hash join would read every current row for
-- every chunk). Only for the chunk's transaction.
SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; SET LOCAL enable_material = off;
SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL jit = off;

-- name: has_current_stock_by_type
SELECT EXISTS (SELECT 1 FROM ozon_stock_by_type_history WHERE account = %(account)s AND valid_to IS NULL);

-- name: first_stock_by_type
INSERT INTO ozon_stock_by_type_history
    (account, product_id, sku, stock_type, shipment_type, present, reserved, valid_from, run_id)
SELECT %(account)s, product_id, sku, stock_type, shipment_type, present, reserved, %(as_of)s, %(run_id)s
FROM tmp_stock_by_type;

-- name: diff_table_stock_by_type
CREATE TEMP TABLE diff_stock_by_type (
    sku bigint, stock_type text, shipment_type text, was_current boolean, is_current boolean, row_ctid tid,
    product_id bigint, present integer, reserved integer
) ON COMMIT DROP;

-- name: diff_new_stock_by_type
-- New keys and changed values (IS DISTINCT FROM, so NULLs compare), each with the address of the
-- current row it replaces.
INSERT INTO diff_stock_by_type
    (sku, stock_type, shipment_type, was_current, is_current, row_ctid, product_id, present, reserved)
SELECT t.sku, t.stock_type, t.shipment_type, h.sku IS NOT NULL, true, h.row_ctid, t.product_id, t.present,
       t.reserved
FROM tmp_stock_by_type t
LEFT JOIN (SELECT ctid AS row_ctid, * FROM ozon_stock_by_type_history WHERE account = %(account)s AND valid_to IS NULL) h
  ON h.sku = t.sku AND h.stock_type = t.stock_type AND h.shipment_type = t.shipment_type
WHERE h.sku IS NULL OR (t.product_id, t.present, t.reserved) IS DISTINCT FROM (h.product_id, h.present, h.reserved);

-- name: diff_vanished_stock_by_type
-- Current rows the run does not have, unless held (a held product holds every row of it: an item
-- rejected without its stocks[] names none of them).
INSERT INTO diff_stock_by_type (sku, stock_type, shipment_type, was_current, is_current, row_ctid)
SELECT h.sku, h.stock_type, h.shipment_type, true, false, h.ctid
FROM ozon_stock_by_type_history h
WHERE h.account = %(account)s AND h.valid_to IS NULL
  AND NOT EXISTS (SELECT 1 FROM tmp_stock_by_type t
                  WHERE t.sku = h.sku AND t.stock_type = h.stock_type AND t.shipment_type = h.shipment_type)
  AND NOT EXISTS (SELECT 1 FROM tmp_held_stock_by_type k
                  WHERE k.sku = h.sku AND k.stock_type = h.stock_type AND k.shipment_type = h.shipment_type)
  AND NOT EXISTS (SELECT 1 FROM tmp_held_products p WHERE p.product_id = h.product_id);

-- name: count_current_stock_by_type
SELECT count(*) FROM ozon_stock_by_type_history WHERE account = %(account)s AND valid_to IS NULL;

-- name: count_new_stock_by_type
-- The diff's new keys: every other row of the run matched a current row.
SELECT count(*) FROM diff_stock_by_type WHERE is_current AND NOT was_current;

-- name: events_stock_by_type
-- The run's stock events (schema.sql, version 5) from the diff, before close_ ends the rows it
-- replaces: their old values are read by row address (a TID scan, under tid_plans), however large
-- the history. An event is the amount available to sell (present - reserved) crossing 0.
WITH replaced AS (
    SELECT ctid AS row_ctid, greatest(present - reserved, 0) AS free
    FROM ozon_stock_by_type_history
    WHERE ctid = ANY (ARRAY(SELECT row_ctid FROM diff_stock_by_type WHERE was_current))
      AND account = %(account)s AND valid_to IS NULL
), moved AS (
    SELECT d.sku, d.stock_type, d.shipment_type, coalesce(r.free, 0) AS before,
           CASE WHEN d.is_current THEN greatest(d.present - d.reserved, 0) ELSE 0 END AS after
    FROM diff_stock_by_type d LEFT JOIN replaced r ON r.row_ctid = d.row_ctid
)
INSERT INTO ozon_stock_event (account, run_id, at, scope, kind, sku, stock_type, shipment_type, before, after)
SELECT %(account)s, %(run_id)s, %(as_of)s, 'type', CASE WHEN after > 0 THEN 'back_in_stock' ELSE 'out_of_stock' END,
       sku, stock_type, shipment_type, before, after
FROM moved WHERE (before > 0) <> (after > 0);

-- name: close_stock_by_type
-- The diff names the current rows it closes by their row address (ctid, stable within this
-- transaction): a TID scan touches only them, however large the history has grown.
UPDATE ozon_stock_by_type_history SET valid_to = %(as_of)s
WHERE ctid = ANY (ARRAY(SELECT row_ctid FROM diff_stock_by_type WHERE was_current))
  AND account = %(account)s AND valid_to IS NULL;

-- name: open_stock_by_type
INSERT INTO ozon_stock_by_type_history
    (account, product_id, sku, stock_type, shipment_type, present, reserved, valid_from, run_id)
SELECT %(account)s, product_id, sku, stock_type, shipment_type, present, reserved, %(as_of)s, %(run_id)s
FROM diff_stock_by_type WHERE is_current;

-- name: hold_stock_by_type
UPDATE ozon_stock_by_type_history h SET held_as_of = %(held_as_of)s
FROM tmp_held_stock_by_type k
WHERE h.account = %(account)s AND h.valid_to IS NULL AND h.held_as_of IS NULL
  AND h.sku = k.sku AND h.stock_type = k.stock_type AND h.shipment_type = k.shipment_type
  AND NOT EXISTS (SELECT 1 FROM tmp_stock_by_type t
                  WHERE t.sku = k.sku AND t.stock_type = k.stock_type AND t.shipment_type = k.shipment_type);

-- name: has_held_stock_by_type
SELECT EXISTS (SELECT 1 FROM ozon_stock_by_type_history
               WHERE account = %(account)s AND valid_to IS NULL AND held_as_of IS NOT NULL);

-- name: confirm_stock_by_type
UPDATE ozon_stock_by_type_history h SET held_as_of = NULL
FROM tmp_stock_by_type t
WHERE h.account = %(account)s AND h.valid_to IS NULL AND h.held_as_of IS NOT NULL
  AND h.sku = t.sku AND h.stock_type = t.stock_type AND h.shipment_type = t.shipment_type;

-- name: upsert_products
INSERT INTO ozon_product AS p (account, product_id, offer_id, name, updated_at)
SELECT %(account)s, t.product_id, t.offer_id, t.name, %(as_of)s
FROM tmp_products t
LEFT JOIN ozon_product o ON o.account = %(account)s AND o.product_id = t.product_id
WHERE o.product_id IS NULL OR (o.offer_id, o.name) IS DISTINCT FROM (t.offer_id, COALESCE(t.name, o.name))
ON CONFLICT (account, product_id) DO UPDATE
SET offer_id = EXCLUDED.offer_id, name = COALESCE(EXCLUDED.name, p.name), updated_at = EXCLUDED.updated_at
WHERE (p.offer_id, p.name) IS DISTINCT FROM (EXCLUDED.offer_id, COALESCE(EXCLUDED.name, p.name));

-- name: delete_vanished_products
DELETE FROM ozon_product p WHERE p.account = %(account)s
  AND NOT EXISTS (SELECT 1 FROM tmp_products t WHERE t.product_id = p.product_id)
  AND NOT EXISTS (SELECT 1 FROM tmp_held_products k WHERE k.product_id = p.product_id);

-- name: upsert_skus
INSERT INTO ozon_sku AS k (account, sku, product_id)
SELECT %(account)s, t.sku, t.product_id
FROM (SELECT DISTINCT ON (sku) sku, product_id FROM tmp_stock_by_type ORDER BY sku, stock_type) t
LEFT JOIN ozon_sku o ON o.account = %(account)s AND o.sku = t.sku
WHERE o.sku IS NULL OR o.product_id <> t.product_id
ON CONFLICT (account, sku) DO UPDATE SET product_id = EXCLUDED.product_id
WHERE k.product_id <> EXCLUDED.product_id;

-- name: delete_vanished_skus
DELETE FROM ozon_sku k WHERE k.account = %(account)s
  AND NOT EXISTS (SELECT 1 FROM tmp_stock_by_type t WHERE t.sku = k.sku)
  AND NOT EXISTS (SELECT 1 FROM tmp_held_stock_by_type h WHERE h.sku = k.sku)
  AND NOT EXISTS (SELECT 1 FROM tmp_held_products p WHERE p.product_id = k.product_id);

-- name: has_current_stock_by_warehouse
SELECT EXISTS (SELECT 1 FROM ozon_stock_by_warehouse_history WHERE account = %(account)s AND valid_to IS NULL);

-- name: first_stock_by_warehouse
INSERT INTO ozon_stock_by_warehouse_history
    (account, sku, warehouse_name, warehouse_id, free_to_sell, promised, reserved, valid_from, run_id)
SELECT %(account)s, sku, warehouse_name, warehouse_id, free_to_sell, promised, reserved, %(as_of)s, %(run_id)s
FROM tmp_stock_by_warehouse;

-- name: diff_table_stock_by_warehouse
-- A column the run's method does not provide (%(not_provided)s: reserved for /v1/analytics/stocks,
-- warehouse_id for /v2/analytics/stock_on_warehouses) keeps its current value and is not compared.
-- warehouse_id names the warehouse, not its stock: an id learned or corrected for an unchanged row
-- is filled in place (fill_stock_by_warehouse, the rows with changed = false), not recorded as a change.
CREATE TEMP TABLE diff_stock_by_warehouse (
    sku bigint, warehouse_name text, was_current boolean, is_current boolean, changed boolean, row_ctid tid,
    warehouse_id bigint, free_to_sell integer, promised integer, reserved integer
) ON COMMIT DROP;

-- name: diff_new_stock_by_warehouse
INSERT INTO diff_stock_by_warehouse
    (sku, warehouse_name, was_current, is_current, changed, row_ctid, warehouse_id, free_to_sell, promised,
     reserved)
SELECT sku, warehouse_name, was_current, true, changed, row_ctid, warehouse_id, free_to_sell, promised, reserved
FROM (
    SELECT *, (NOT was_current
               OR (free_to_sell, promised, reserved) IS DISTINCT FROM (old_free_to_sell, old_promised, old_reserved))
              AS changed
    FROM (
        SELECT t.sku, t.warehouse_name, h.sku IS NOT NULL AS was_current, h.row_ctid,
               CASE WHEN 'warehouse_id' = ANY(%(not_provided)s::text[]) THEN h.warehouse_id
                    ELSE t.warehouse_id END AS warehouse_id,
               t.free_to_sell, t.promised,
               CASE WHEN 'reserved' = ANY(%(not_provided)s::text[]) THEN h.reserved ELSE t.reserved END AS reserved,
               h.warehouse_id AS old_warehouse_id, h.free_to_sell AS old_free_to_sell, h.promised AS old_promised,
               h.reserved AS old_reserved
        FROM tmp_stock_by_warehouse t
        LEFT JOIN (SELECT ctid AS row_ctid, * FROM ozon_stock_by_warehouse_history
                   WHERE account = %(account)s AND valid_to IS NULL) h
          ON h.sku = t.sku AND h.warehouse_name = t.warehouse_name
    ) j
) d
WHERE changed OR warehouse_id IS DISTINCT FROM old_warehouse_id;

-- name: diff_vanished_stock_by_warehouse
INSERT INTO diff_stock_by_warehouse (sku, warehouse_name, was_current, is_current, changed, row_ctid)
SELECT h.sku, h.warehouse_name, true, false, true, h.ctid
FROM ozon_stock_by_warehouse_history h
WHERE h.account = %(account)s AND h.valid_to IS NULL
  AND NOT EXISTS (SELECT 1 FROM tmp_stock_by_warehouse t WHERE t.sku = h.sku AND t.warehouse_name = h.warehouse_name)
  AND NOT EXISTS (SELECT 1 FROM tmp_held_stock_by_warehouse k
                  WHERE k.sku = h.sku AND k.warehouse_name = h.warehouse_name);

-- name: count_current_stock_by_warehouse
SELECT count(*) FROM ozon_stock_by_warehouse_history WHERE account = %(account)s AND valid_to IS NULL;

-- name: count_new_stock_by_warehouse
-- The diff's new keys: every other row of the run matched a current row.
SELECT count(*) FROM diff_stock_by_warehouse WHERE is_current AND NOT was_current;

-- name: events_stock_by_warehouse
-- As events_stock_by_type, for free to sell per Ozon warehouse (changed rows only: an id filled in
-- place is no change of stock).
WITH replaced AS (
    SELECT ctid AS row_ctid, free_to_sell AS free
    FROM ozon_stock_by_warehouse_history
    WHERE ctid = ANY (ARRAY(SELECT row_ctid FROM diff_stock_by_warehouse WHERE changed AND was_current))
      AND account = %(account)s AND valid_to IS NULL
), moved AS (
    SELECT d.sku, d.warehouse_name, coalesce(r.free, 0) AS before,
           CASE WHEN d.is_current THEN d.free_to_sell ELSE 0 END AS after
    FROM diff_stock_by_warehouse d LEFT JOIN replaced r ON r.row_ctid = d.row_ctid
    WHERE d.changed
)
INSERT INTO ozon_stock_event (account, run_id, at, scope, kind, sku, warehouse_name, before, after)
SELECT %(account)s, %(run_id)s, %(as_of)s, 'warehouse',
       CASE WHEN after > 0 THEN 'back_in_stock' ELSE 'out_of_stock' END, sku, warehouse_name, before, after
FROM moved WHERE (before > 0) <> (after > 0);

-- name: close_stock_by_warehouse
UPDATE ozon_stock_by_warehouse_history SET valid_to = %(as_of)s
WHERE ctid = ANY (ARRAY(SELECT row_ctid FROM diff_stock_by_warehouse WHERE changed AND was_current))
  AND account = %(account)s AND valid_to IS NULL;

-- name: open_stock_by_warehouse
INSERT INTO ozon_stock_by_warehouse_history
    (account, sku, warehouse_name, warehouse_id, free_to_sell, promised, reserved, valid_from, run_id)
SELECT %(account)s, sku, warehouse_name, warehouse_id, free_to_sell, promised, reserved, %(as_of)s, %(run_id)s
FROM diff_stock_by_warehouse WHERE changed AND is_current;

-- name: fill_stock_by_warehouse
UPDATE ozon_stock_by_warehouse_history h SET warehouse_id = d.warehouse_id
FROM diff_stock_by_warehouse d
WHERE NOT d.changed AND h.account = %(account)s AND h.valid_to IS NULL
  AND h.sku = d.sku AND h.warehouse_name = d.warehouse_name;

-- name: hold_stock_by_warehouse
UPDATE ozon_stock_by_warehouse_history h SET held_as_of = %(held_as_of)s
FROM tmp_held_stock_by_warehouse k
WHERE h.account = %(account)s AND h.valid_to IS NULL AND h.held_as_of IS NULL
  AND h.sku = k.sku AND h.warehouse_name = k.warehouse_name
  AND NOT EXISTS (SELECT 1 FROM tmp_stock_by_warehouse t
                  WHERE t.sku = k.sku AND t.warehouse_name = k.warehouse_name);

-- name: has_held_stock_by_warehouse
SELECT EXISTS (SELECT 1 FROM ozon_stock_by_warehouse_history
               WHERE account = %(account)s AND valid_to IS NULL AND held_as_of IS NOT NULL);

-- name: confirm_stock_by_warehouse
UPDATE ozon_stock_by_warehouse_history h SET held_as_of = NULL
FROM tmp_stock_by_warehouse t
WHERE h.account = %(account)s AND h.valid_to IS NULL AND h.held_as_of IS NOT NULL
  AND h.sku = t.sku AND h.warehouse_name = t.warehouse_name;

-- name: upsert_ozon_warehouses
-- Ozon's warehouses, by name from the analytics rows; ids and clusters when a method gives them.
INSERT INTO ozon_warehouse AS w
    (account, kind, warehouse_id, name, is_rfbs, status, working_days, cluster_id, cluster_name, updated_at)
SELECT %(account)s, 'ozon', warehouse_id, name, NULL, NULL, NULL, cluster_id, cluster_name, %(as_of)s
FROM tmp_ozon_warehouses
ON CONFLICT (account, warehouse_key) DO UPDATE
SET warehouse_id = COALESCE(EXCLUDED.warehouse_id, w.warehouse_id), name = EXCLUDED.name,
    is_rfbs = EXCLUDED.is_rfbs, status = EXCLUDED.status, working_days = EXCLUDED.working_days,
    cluster_id = COALESCE(EXCLUDED.cluster_id, w.cluster_id),
    cluster_name = COALESCE(EXCLUDED.cluster_name, w.cluster_name), updated_at = EXCLUDED.updated_at;

-- name: delete_vanished_ozon_warehouses
DELETE FROM ozon_warehouse w WHERE w.account = %(account)s AND w.kind = 'ozon'
  AND NOT EXISTS (SELECT 1 FROM tmp_ozon_warehouses t WHERE 'ozon:' || t.name = w.warehouse_key)
  AND NOT EXISTS (SELECT 1 FROM tmp_held_stock_by_warehouse k WHERE 'ozon:' || k.warehouse_name = w.warehouse_key);

-- name: upsert_seller_warehouses
-- The seller's own FBS/rFBS warehouses, by id.
INSERT INTO ozon_warehouse AS w
    (account, kind, warehouse_id, name, is_rfbs, status, working_days, cluster_id, cluster_name, updated_at)
SELECT %(account)s, 'seller', warehouse_id, name, is_rfbs, status, working_days, NULL, NULL, %(as_of)s
FROM tmp_seller_warehouses
ON CONFLICT (account, warehouse_key) DO UPDATE
SET warehouse_id = COALESCE(EXCLUDED.warehouse_id, w.warehouse_id), name = EXCLUDED.name,
    is_rfbs = EXCLUDED.is_rfbs, status = EXCLUDED.status, working_days = EXCLUDED.working_days,
    cluster_id = COALESCE(EXCLUDED.cluster_id, w.cluster_id),
    cluster_name = COALESCE(EXCLUDED.cluster_name, w.cluster_name), updated_at = EXCLUDED.updated_at;

-- name: delete_vanished_seller_warehouses
DELETE FROM ozon_warehouse w WHERE w.account = %(account)s AND w.kind = 'seller'
  AND NOT EXISTS (SELECT 1 FROM tmp_seller_warehouses t WHERE 'seller:' || t.warehouse_id::text = w.warehouse_key)
  AND NOT EXISTS (SELECT 1 FROM tmp_held_seller_warehouses k WHERE 'seller:' || k.warehouse_id::text = w.warehouse_key);

-- name: upsert_source_state
-- ``loads`` counts the loads that applied the source (history_version).
INSERT INTO ozon_source_state AS st (account, source, as_of, run_id, method, rows, products, loads)
VALUES (%(account)s, %(source)s, %(as_of)s, %(run_id)s, %(method)s, %(rows)s, %(products)s, 1)
ON CONFLICT (account, source) DO UPDATE
SET as_of = EXCLUDED.as_of, run_id = EXCLUDED.run_id, method = EXCLUDED.method, rows = EXCLUDED.rows,
    products = EXCLUDED.products, loads = st.loads + 1;

-- name: delete_run_rejects
DELETE FROM ozon_reject WHERE account = %(account)s AND run_id = %(run_id)s;

-- name: insert_rejects
INSERT INTO ozon_reject (account, run_id, source, reason, record)
SELECT %(account)s, %(run_id)s, source, reason, record::jsonb FROM tmp_rejects;

-- name: count_events
-- The run's stock events per scope and kind (a repeated load of the run adds none: its diff is empty).
SELECT scope, kind, count(*) FROM ozon_stock_event WHERE account = %(account)s AND run_id = %(run_id)s
GROUP BY scope, kind;

-- name: upsert_run
-- One ledger row per account and run; the history figures add up over the run's loads.
INSERT INTO ozon_sync_run (account, run_id, run_key, status, degraded, missing_sources, applied_sources,
    stale_sources, products, stock_rows, warehouse_rows, warehouses, rejects, mismatches, history_opened,
    history_closed, sources, durations, shrink_decision, loaded_at)
VALUES (%(account)s, %(run_id)s, %(run_key)s, %(status)s, %(degraded)s, %(missing)s, %(applied)s, %(stale)s,
    %(products)s, %(stock_rows)s, %(warehouse_rows)s, %(warehouses)s, %(rejects)s, %(mismatches)s,
    %(history_opened)s, %(history_closed)s, %(sources)s, %(durations)s, %(shrink_decision)s, now())
ON CONFLICT (account, run_id) DO UPDATE
SET run_key = EXCLUDED.run_key, status = EXCLUDED.status, degraded = EXCLUDED.degraded,
    missing_sources = EXCLUDED.missing_sources, applied_sources = EXCLUDED.applied_sources,
    stale_sources = EXCLUDED.stale_sources, products = EXCLUDED.products, stock_rows = EXCLUDED.stock_rows,
    warehouse_rows = EXCLUDED.warehouse_rows, warehouses = EXCLUDED.warehouses, rejects = EXCLUDED.rejects,
    mismatches = EXCLUDED.mismatches,
    -- a repeated load of the run writes nothing more; a completing one (after a degraded try) adds its rows
    history_opened = ozon_sync_run.history_opened + EXCLUDED.history_opened,
    history_closed = ozon_sync_run.history_closed + EXCLUDED.history_closed, sources = EXCLUDED.sources, durations = EXCLUDED.durations,
    shrink_decision = coalesce(EXCLUDED.shrink_decision, ozon_sync_run.shrink_decision),
    loaded_at = now();
