-- What was last alerted per account and kind (plugins/ozon_inventory/alerts.py): an alert is sent
-- when its fingerprint differs from the stored one, so a condition that lasts is told once.

-- name: create_lock
-- Several processes create the table at once on first use: one at a time (a plain IF NOT EXISTS
-- can still fail on the type catalogue's unique index).
SELECT pg_advisory_xact_lock(hashtext('ozon_inventory:alerts:create'));

-- name: create
CREATE TABLE IF NOT EXISTS ozon_alert_state (
    account text NOT NULL,
    kind text NOT NULL,
    fingerprint text NOT NULL,
    raised_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, kind)
);

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
