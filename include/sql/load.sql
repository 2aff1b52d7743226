-- Statements of one account's load; each runs inside the load's single transaction.
-- Parameters: %(account)s, %(as_of)s, %(run_id)s. Temp tables hold this run's model files.

-- name: lock_account
SELECT pg_advisory_xact_lock(hashtext('ozon_inventory:' || %(account)s));

-- name: bulk_plans
-- Every statement of a load is a set operation over the whole snapshot: a nested loop, which the
-- planner picks when statistics lag behind a large load, turns them quadratic. Only for this transaction.
SET LOCAL enable_nestloop = off;

-- name: source_state
SELECT source, as_of, rows, products FROM ozon_source_state WHERE account = %(account)s;

-- name: temp_stock_by_type
CREATE TEMP TABLE tmp_stock_by_type (
    product_id bigint, sku bigint, stock_type text, shipment_type text, present integer, reserved integer
) ON COMMIT DROP;

-- name: temp_products
CREATE TEMP TABLE tmp_products (product_id bigint, offer_id text, name text) ON COMMIT DROP;

-- name: temp_stock_by_warehouse
CREATE TEMP TABLE tmp_stock_by_warehouse (
    sku bigint, warehouse_name text, warehouse_id bigint, free_to_sell integer, promised integer, reserved integer
) ON COMMIT DROP;

-- name: temp_warehouses
CREATE TEMP TABLE tmp_warehouses (
    kind text, warehouse_id bigint, name text, is_rfbs boolean, status text, working_days text,
    cluster_id bigint, cluster_name text
) ON COMMIT DROP;

-- name: has_current_stock_by_type
SELECT EXISTS (SELECT 1 FROM ozon_stock_by_type_history WHERE account = %(account)s AND valid_to IS NULL);

-- name: first_stock_by_type
-- The account's first snapshot: every row opens.
INSERT INTO ozon_stock_by_type_history
    (account, product_id, sku, stock_type, shipment_type, present, reserved, valid_from, run_id)
SELECT %(account)s, product_id, sku, stock_type, shipment_type, present, reserved, %(as_of)s, %(run_id)s
FROM tmp_stock_by_type;

-- name: diff_stock_by_type
-- What changed against the current rows, found in one hash join on the key: new keys, changed
-- values (IS DISTINCT FROM, so NULLs compare) and vanished keys.
CREATE TEMP TABLE diff_stock_by_type ON COMMIT DROP AS
SELECT coalesce(t.sku, h.sku) AS sku, coalesce(t.stock_type, h.stock_type) AS stock_type,
       coalesce(t.shipment_type, h.shipment_type) AS shipment_type,
       h.sku IS NOT NULL AS was_current, t.sku IS NOT NULL AS is_current,
       t.product_id, t.present, t.reserved
FROM tmp_stock_by_type t
FULL JOIN (SELECT * FROM ozon_stock_by_type_history WHERE account = %(account)s AND valid_to IS NULL) h
  ON h.sku = t.sku AND h.stock_type = t.stock_type AND h.shipment_type = t.shipment_type
WHERE h.sku IS NULL OR t.sku IS NULL
   OR (t.product_id, t.present, t.reserved) IS DISTINCT FROM (h.product_id, h.present, h.reserved);

-- name: close_stock_by_type
UPDATE ozon_stock_by_type_history h SET valid_to = %(as_of)s
FROM diff_stock_by_type d
WHERE d.was_current AND h.account = %(account)s AND h.valid_to IS NULL
  AND h.sku = d.sku AND h.stock_type = d.stock_type AND h.shipment_type = d.shipment_type;

-- name: open_stock_by_type
INSERT INTO ozon_stock_by_type_history
    (account, product_id, sku, stock_type, shipment_type, present, reserved, valid_from, run_id)
SELECT %(account)s, product_id, sku, stock_type, shipment_type, present, reserved, %(as_of)s, %(run_id)s
FROM diff_stock_by_type WHERE is_current;

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
  AND NOT EXISTS (SELECT 1 FROM tmp_products t WHERE t.product_id = p.product_id);

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
  AND NOT EXISTS (SELECT 1 FROM tmp_stock_by_type t WHERE t.sku = k.sku);

-- name: has_current_stock_by_warehouse
SELECT EXISTS (SELECT 1 FROM ozon_stock_by_warehouse_history WHERE account = %(account)s AND valid_to IS NULL);

-- name: first_stock_by_warehouse
INSERT INTO ozon_stock_by_warehouse_history
    (account, sku, warehouse_name, warehouse_id, free_to_sell, promised, reserved, valid_from, run_id)
SELECT %(account)s, sku, warehouse_name, warehouse_id, free_to_sell, promised, reserved, %(as_of)s, %(run_id)s
FROM tmp_stock_by_warehouse;

-- name: diff_stock_by_warehouse
CREATE TEMP TABLE diff_stock_by_warehouse ON COMMIT DROP AS
SELECT coalesce(t.sku, h.sku) AS sku, coalesce(t.warehouse_name, h.warehouse_name) AS warehouse_name,
       h.sku IS NOT NULL AS was_current, t.sku IS NOT NULL AS is_current,
       t.warehouse_id, t.free_to_sell, t.promised, t.reserved
FROM tmp_stock_by_warehouse t
FULL JOIN (SELECT * FROM ozon_stock_by_warehouse_history WHERE account = %(account)s AND valid_to IS NULL) h
  ON h.sku = t.sku AND h.warehouse_name = t.warehouse_name
WHERE h.sku IS NULL OR t.sku IS NULL
   OR (t.free_to_sell, t.promised, t.reserved, t.warehouse_id)
      IS DISTINCT FROM (h.free_to_sell, h.promised, h.reserved, h.warehouse_id);

-- name: close_stock_by_warehouse
UPDATE ozon_stock_by_warehouse_history h SET valid_to = %(as_of)s
FROM diff_stock_by_warehouse d
WHERE d.was_current AND h.account = %(account)s AND h.valid_to IS NULL
  AND h.sku = d.sku AND h.warehouse_name = d.warehouse_name;

-- name: open_stock_by_warehouse
INSERT INTO ozon_stock_by_warehouse_history
    (account, sku, warehouse_name, warehouse_id, free_to_sell, promised, reserved, valid_from, run_id)
SELECT %(account)s, sku, warehouse_name, warehouse_id, free_to_sell, promised, reserved, %(as_of)s, %(run_id)s
FROM diff_stock_by_warehouse WHERE is_current;

-- name: upsert_warehouses
-- %(kind)s is 'ozon' or 'seller': each source replaces only its own kind.
INSERT INTO ozon_warehouse AS w
    (account, kind, warehouse_id, name, is_rfbs, status, working_days, cluster_id, cluster_name, updated_at)
SELECT %(account)s, kind, warehouse_id, name, is_rfbs, status, working_days, cluster_id, cluster_name, %(as_of)s
FROM tmp_warehouses WHERE kind = %(kind)s
ON CONFLICT (account, warehouse_key) DO UPDATE
SET warehouse_id = COALESCE(EXCLUDED.warehouse_id, w.warehouse_id), name = EXCLUDED.name,
    is_rfbs = EXCLUDED.is_rfbs, status = EXCLUDED.status, working_days = EXCLUDED.working_days,
    cluster_id = COALESCE(EXCLUDED.cluster_id, w.cluster_id),
    cluster_name = COALESCE(EXCLUDED.cluster_name, w.cluster_name), updated_at = EXCLUDED.updated_at;

-- name: delete_vanished_warehouses
DELETE FROM ozon_warehouse w WHERE w.account = %(account)s AND w.kind = %(kind)s
  AND NOT EXISTS (
      SELECT 1 FROM tmp_warehouses t
      WHERE t.kind = w.kind
        AND CASE WHEN t.kind = 'seller' THEN 'seller:' || t.warehouse_id::text ELSE 'ozon:' || t.name END
            = w.warehouse_key);

-- name: upsert_source_state
INSERT INTO ozon_source_state (account, source, as_of, run_id, method, rows, products)
VALUES (%(account)s, %(source)s, %(as_of)s, %(run_id)s, %(method)s, %(rows)s, %(products)s)
ON CONFLICT (account, source) DO UPDATE
SET as_of = EXCLUDED.as_of, run_id = EXCLUDED.run_id, method = EXCLUDED.method, rows = EXCLUDED.rows,
    products = EXCLUDED.products;

-- name: delete_run_rejects
DELETE FROM ozon_reject WHERE account = %(account)s AND run_id = %(run_id)s;

-- name: temp_rejects
CREATE TEMP TABLE tmp_rejects (source text, reason text, record text) ON COMMIT DROP;

-- name: insert_rejects
INSERT INTO ozon_reject (account, run_id, source, reason, record)
SELECT %(account)s, %(run_id)s, source, reason, record::jsonb FROM tmp_rejects;

-- name: upsert_run
-- One ledger row per account and run; the history figures add up over the run's loads.
INSERT INTO ozon_sync_run (account, run_id, run_key, status, degraded, missing_sources, applied_sources,
    stale_sources, products, stock_rows, warehouse_rows, warehouses, rejects, mismatches, history_opened,
    history_closed, sources, durations, loaded_at)
VALUES (%(account)s, %(run_id)s, %(run_key)s, %(status)s, %(degraded)s, %(missing)s, %(applied)s, %(stale)s,
    %(products)s, %(stock_rows)s, %(warehouse_rows)s, %(warehouses)s, %(rejects)s, %(mismatches)s,
    %(history_opened)s, %(history_closed)s, %(sources)s, %(durations)s, now())
ON CONFLICT (account, run_id) DO UPDATE
SET run_key = EXCLUDED.run_key, status = EXCLUDED.status, degraded = EXCLUDED.degraded,
    missing_sources = EXCLUDED.missing_sources, applied_sources = EXCLUDED.applied_sources,
    stale_sources = EXCLUDED.stale_sources, products = EXCLUDED.products, stock_rows = EXCLUDED.stock_rows,
    warehouse_rows = EXCLUDED.warehouse_rows, warehouses = EXCLUDED.warehouses, rejects = EXCLUDED.rejects,
    mismatches = EXCLUDED.mismatches,
    -- a repeated load of the run writes nothing more; a completing one (after a degraded try) adds its rows
    history_opened = ozon_sync_run.history_opened + EXCLUDED.history_opened,
    history_closed = ozon_sync_run.history_closed + EXCLUDED.history_closed, sources = EXCLUDED.sources, durations = EXCLUDED.durations,
    loaded_at = now();
