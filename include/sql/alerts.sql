-- What was last alerted per account and kind (plugins/ozon_inventory/alerts.py): an alert is sent
-- when its fingerprint differs from the stored one, so a condition that lasts is told once.

-- name: lock_account
SELECT pg_advisory_xact_lock(hashtext('ozon_inventory:alerts:' || %(account)s));

-- name: state
SELECT kind, fingerprint FROM ozon_alert_state WHERE account = %(account)s;

-- name: remember
INSERT INTO ozon_alert_state (account, kind, fingerprint) VALUES (%(account)s, %(kind)s, %(fingerprint)s)
ON CONFLICT (account, kind) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, raised_at = now();

-- name: forget_others
DELETE FROM ozon_alert_state WHERE account = %(account)s AND NOT (kind = ANY(%(kinds)s::text[]));

-- name: run_events
-- The run's stock events for the digest: how many of each kind, and the first few of them.
SELECT kind, scope, sku, stock_type, warehouse_name, before, after, count(*) OVER (PARTITION BY kind) AS of_kind
FROM ozon_stock_event WHERE account = %(account)s AND run_id = %(run_id)s
ORDER BY kind DESC, sku, scope, stock_type, warehouse_name LIMIT %(limit)s;
