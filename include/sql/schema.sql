-- ozon-inventory schema, version 7 (ozon_inventory.schema.SCHEMA_VERSION). Run only to migrate: by
-- the DAG's `migrate` task when the database is at an older version (ozon_inventory/schema.py), or
-- by a DBA as the schema's owner (`psql -f include/sql/schema.sql`). Idempotent (CREATE … IF NOT
-- EXISTS, CREATE OR REPLACE VIEW, each later version's changes guarded by its row in
-- ozon_schema_version). The load path never runs it: its DDL takes locks that would queue readers.

CREATE TABLE IF NOT EXISTS ozon_schema_version (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Products of a seller account, as v4 lists them (current state).
CREATE TABLE IF NOT EXISTS ozon_product (
    account text NOT NULL,
    product_id bigint NOT NULL,
    offer_id text NOT NULL,
    name text,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (account, product_id)
);

-- Product ↔ SKU: an Ozon SKU belongs to one product (per stock type it may differ).
CREATE TABLE IF NOT EXISTS ozon_sku (
    account text NOT NULL,
    sku bigint NOT NULL,
    product_id bigint NOT NULL,
    PRIMARY KEY (account, sku)
);

-- Warehouses: Ozon's own (by name from analytics, ids when known) and the seller's FBS/rFBS ones.
CREATE TABLE IF NOT EXISTS ozon_warehouse (
    account text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('ozon', 'seller')),
    warehouse_id bigint,
    name text NOT NULL,
    is_rfbs boolean,
    status text,
    working_days text,
    cluster_id bigint,
    cluster_name text,
    updated_at timestamptz NOT NULL,
    warehouse_key text GENERATED ALWAYS AS (
        CASE WHEN kind = 'seller' THEN 'seller:' || warehouse_id::text ELSE 'ozon:' || name END
    ) STORED,
    PRIMARY KEY (account, warehouse_key)
);

-- Stock by type (fbo/fbs/rfbs/fbp), changes only: a row is valid from valid_from until valid_to
-- (NULL = still current). Stock at time T: valid_from <= T AND (valid_to IS NULL OR valid_to > T).
CREATE TABLE IF NOT EXISTS ozon_stock_by_type_history (
    account text NOT NULL,
    product_id bigint NOT NULL,
    sku bigint NOT NULL,
    stock_type text NOT NULL,
    shipment_type text NOT NULL,
    present integer NOT NULL CHECK (present >= 0),
    reserved integer NOT NULL CHECK (reserved >= 0),
    valid_from timestamptz NOT NULL,
    valid_to timestamptz,
    run_id text NOT NULL,
    CHECK (valid_to IS NULL OR valid_to >= valid_from)
);
CREATE UNIQUE INDEX IF NOT EXISTS ozon_stock_by_type_current
    ON ozon_stock_by_type_history (account, sku, stock_type, shipment_type) WHERE valid_to IS NULL;
CREATE INDEX IF NOT EXISTS ozon_stock_by_type_history_sku
    ON ozon_stock_by_type_history (account, sku, valid_from);

-- FBO stock per SKU and Ozon warehouse, changes only (same validity rules).
CREATE TABLE IF NOT EXISTS ozon_stock_by_warehouse_history (
    account text NOT NULL,
    sku bigint NOT NULL,
    warehouse_name text NOT NULL,
    warehouse_id bigint,
    free_to_sell integer NOT NULL CHECK (free_to_sell >= 0),
    promised integer NOT NULL CHECK (promised >= 0),
    reserved integer CHECK (reserved >= 0),
    valid_from timestamptz NOT NULL,
    valid_to timestamptz,
    run_id text NOT NULL,
    CHECK (valid_to IS NULL OR valid_to >= valid_from)
);
CREATE UNIQUE INDEX IF NOT EXISTS ozon_stock_by_warehouse_current
    ON ozon_stock_by_warehouse_history (account, sku, warehouse_name) WHERE valid_to IS NULL;

-- When each source of an account was last loaded: its rows keep this as-of time in a degraded run.
CREATE TABLE IF NOT EXISTS ozon_source_state (
    account text NOT NULL,
    source text NOT NULL,
    as_of timestamptz NOT NULL,
    run_id text NOT NULL,
    method text,
    rows integer NOT NULL,
    products integer NOT NULL,
    PRIMARY KEY (account, source)
);

-- One row per account and DAG run: what was fetched, loaded, rejected, and whether it was whole.
CREATE TABLE IF NOT EXISTS ozon_sync_run (
    account text NOT NULL,
    run_id text NOT NULL,
    run_key text NOT NULL,
    status text NOT NULL,
    degraded boolean NOT NULL,
    missing_sources text[] NOT NULL DEFAULT '{}',
    applied_sources text[] NOT NULL DEFAULT '{}',
    stale_sources text[] NOT NULL DEFAULT '{}',
    products integer,
    stock_rows integer,
    warehouse_rows integer,
    warehouses integer,
    rejects integer NOT NULL DEFAULT 0,
    mismatches integer NOT NULL DEFAULT 0,
    history_opened integer NOT NULL DEFAULT 0,
    history_closed integer NOT NULL DEFAULT 0,
    sources jsonb NOT NULL,
    durations jsonb NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, run_id)
);
-- The Api-Key's expiry when the run ended (from /v1/roles; include/sql/keys.sql fills it).
ALTER TABLE ozon_sync_run ADD COLUMN IF NOT EXISTS key_expires_at timestamptz;


-- Rows that broke a validation rule, with the reason and the raw record.
CREATE TABLE IF NOT EXISTS ozon_reject (
    id bigserial PRIMARY KEY,
    account text NOT NULL,
    run_id text NOT NULL,
    source text NOT NULL,
    reason text NOT NULL,
    record jsonb NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ozon_reject_run ON ozon_reject (account, run_id);

-- Version 2: a row whose new value Ozon sent was rejected keeps its last good value, marked with the
-- as-of of the last load that confirmed it (NULL: the value is the source's latest). See
-- docs/architecture.md, "A rejected value keeps the last good one".
-- Guarded by the version row, so a schema check on every run takes no table lock once it is done.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ozon_schema_version WHERE version = 2) THEN
        ALTER TABLE ozon_stock_by_type_history ADD COLUMN IF NOT EXISTS held_as_of timestamptz;
        ALTER TABLE ozon_stock_by_warehouse_history ADD COLUMN IF NOT EXISTS held_as_of timestamptz;
        CREATE INDEX IF NOT EXISTS ozon_stock_by_type_held
            ON ozon_stock_by_type_history (account) WHERE valid_to IS NULL AND held_as_of IS NOT NULL;
        CREATE INDEX IF NOT EXISTS ozon_stock_by_warehouse_held
            ON ozon_stock_by_warehouse_history (account) WHERE valid_to IS NULL AND held_as_of IS NOT NULL;
        INSERT INTO ozon_schema_version (version) VALUES (2);
    END IF;
END
$$;

-- Version 3: /v1/product/info/stocks-by-warehouse/fbo gives no promised stock: NULL, as reserved
-- is for /v1/analytics/stocks (a field a method does not provide keeps the previous value).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ozon_schema_version WHERE version = 3) THEN
        ALTER TABLE ozon_stock_by_warehouse_history ALTER COLUMN promised DROP NOT NULL;
        INSERT INTO ozon_schema_version (version) VALUES (3);
    END IF;
END
$$;

-- Version 4: every load that applies a source counts itself in ``loads``. A diff the fetch made
-- against the current rows (``load.Prestage``) is used only if the count has not moved since: no
-- other load changed those rows, so the row addresses the diff names are still theirs.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ozon_schema_version WHERE version = 4) THEN
        ALTER TABLE ozon_source_state ADD COLUMN IF NOT EXISTS loads bigint NOT NULL DEFAULT 0;
        INSERT INTO ozon_schema_version (version) VALUES (4);
    END IF;
END
$$;

-- Version 5: stock events, derived by each load from the history it writes (load.sql, events_):
-- a SKU's stock available to sell crossing 0, per stock type (present - reserved) and per Ozon
-- warehouse (free to sell). ``before``/``after`` are that amount; a key new to the snapshot counts
-- as 0 before, a key gone from it as 0 after. docs/data-model.md, "Stock events".
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ozon_schema_version WHERE version = 5) THEN
        CREATE TABLE IF NOT EXISTS ozon_stock_event (
            id bigserial PRIMARY KEY,
            account text NOT NULL,
            run_id text NOT NULL,
            at timestamptz NOT NULL,
            scope text NOT NULL CHECK (scope IN ('type', 'warehouse')),
            kind text NOT NULL CHECK (kind IN ('out_of_stock', 'back_in_stock')),
            sku bigint NOT NULL,
            stock_type text,
            shipment_type text,
            warehouse_name text,
            before integer NOT NULL,
            after integer NOT NULL,
            CHECK ((scope = 'type') = (stock_type IS NOT NULL AND warehouse_name IS NULL))
        );
        CREATE INDEX IF NOT EXISTS ozon_stock_event_at ON ozon_stock_event (account, at DESC);
        CREATE INDEX IF NOT EXISTS ozon_stock_event_run ON ozon_stock_event (account, run_id);
        INSERT INTO ozon_schema_version (version) VALUES (5);
    END IF;
END
$$;

-- Version 6: the tables the fetch and report tasks used to create on first use, so that no task
-- but the migration needs CREATE: the rate budget of each Client-Id (include/sql/ratelimit.sql;
-- UNLOGGED: a few seconds of schedule, worthless after a crash), each account's Api-Key expiry
-- (keys.sql) and what was last alerted (alerts.sql).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ozon_schema_version WHERE version = 6) THEN
        CREATE UNLOGGED TABLE IF NOT EXISTS ozon_rate_budget (
            client_id text NOT NULL,
            scope text NOT NULL,
            tat timestamptz NOT NULL,
            PRIMARY KEY (client_id, scope)
        );
        CREATE TABLE IF NOT EXISTS ozon_account_key (
            account text PRIMARY KEY,
            client_id text NOT NULL,
            expires_at timestamptz,          -- NULL: Ozon gave none (an OAuth token, an old key)
            checked_at timestamptz NOT NULL,
            roles text[] NOT NULL DEFAULT '{}'
        );
        CREATE TABLE IF NOT EXISTS ozon_alert_state (
            account text NOT NULL,
            kind text NOT NULL,
            fingerprint text NOT NULL,
            raised_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (account, kind)
        );
        INSERT INTO ozon_schema_version (version) VALUES (6);
    END IF;
END
$$;

-- Version 7: a load the shrink guard stopped and an operator approved (ozon_inventory/approval.py)
-- keeps the decision in its ledger row: {"decision", "by", "at", "figures"}; NULL: nothing stopped.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ozon_schema_version WHERE version = 7) THEN
        ALTER TABLE ozon_sync_run ADD COLUMN IF NOT EXISTS shrink_decision jsonb;
        INSERT INTO ozon_schema_version (version) VALUES (7);
    END IF;
END
$$;

CREATE OR REPLACE VIEW ozon_stock_by_type AS
SELECT account, product_id, sku, stock_type, shipment_type, present, reserved, valid_from AS changed_at,
       held_as_of
FROM ozon_stock_by_type_history WHERE valid_to IS NULL;

CREATE OR REPLACE VIEW ozon_stock_by_warehouse AS
SELECT account, sku, warehouse_name, warehouse_id, free_to_sell, promised, reserved, valid_from AS changed_at,
       held_as_of
FROM ozon_stock_by_warehouse_history WHERE valid_to IS NULL;

-- The old system's table, kept queryable: source 'Ozon' = v4 stock by type (stock_type 'FBO',
-- 'FBS', 'RFBS', 'FBP'; v4 gives no warehouse, so warehouse_name is NULL), source 'Ozon_Analytics'
-- = stock per Ozon warehouse (stock_type 'analytics'). Joins are on unique keys, so a query that
-- does not read a joined column does not pay for the join.
CREATE OR REPLACE VIEW inventory_data AS
SELECT s.account,
       'Ozon'::text AS source,
       s.product_id,
       p.offer_id,
       p.name AS item_name,
       s.sku,
       NULL::text AS warehouse_name,
       NULL::bigint AS warehouse_id,
       upper(s.stock_type) AS stock_type,
       s.shipment_type,
       s.present AS quantity,
       s.present,
       s.reserved,
       NULL::integer AS free_to_sell_amount,
       NULL::integer AS promised_amount,
       s.reserved AS reserved_amount,
       st.as_of,
       s.valid_from AS changed_at
FROM ozon_stock_by_type_history s
LEFT JOIN ozon_product p ON p.account = s.account AND p.product_id = s.product_id
LEFT JOIN ozon_source_state st ON st.account = s.account AND st.source = 'stocks'
WHERE s.valid_to IS NULL
UNION ALL
SELECT w.account,
       'Ozon_Analytics'::text,
       k.product_id,
       p.offer_id,
       p.name,
       w.sku,
       w.warehouse_name,
       w.warehouse_id,
       'analytics'::text,
       NULL::text,
       w.free_to_sell,
       NULL::integer,
       NULL::integer,
       w.free_to_sell,
       w.promised,
       w.reserved,
       st.as_of,
       w.valid_from
FROM ozon_stock_by_warehouse_history w
LEFT JOIN ozon_sku k ON k.account = w.account AND k.sku = w.sku
LEFT JOIN ozon_product p ON p.account = k.account AND p.product_id = k.product_id
LEFT JOIN ozon_source_state st ON st.account = w.account AND st.source = 'warehouse_stocks'
WHERE w.valid_to IS NULL;

INSERT INTO ozon_schema_version (version) VALUES (1) ON CONFLICT DO NOTHING;
