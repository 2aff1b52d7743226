-- The expiry of each account's Api-Key (plugins/ozon_inventory/keys.py): read from Ozon's
-- /v1/roles at most once a day per account, kept here for every worker and copied into the run
-- ledger by the load. Times are the database's.

-- name: lock_account
-- The fetch tasks of one account start together: one of them asks Ozon, the others wait and read.
SELECT pg_advisory_xact_lock(hashtext('ozon_inventory:key:' || %(account)s));

-- name: cached
-- The stored expiry when it was read less than a day ago; now() is the database's clock.
SELECT expires_at, checked_at, now() FROM ozon_account_key
WHERE account = %(account)s AND client_id = %(client_id)s AND checked_at > now() - interval '1 day';

-- name: store
INSERT INTO ozon_account_key (account, client_id, expires_at, checked_at, roles)
VALUES (%(account)s, %(client_id)s, %(expires_at)s, now(), %(roles)s)
ON CONFLICT (account) DO UPDATE
SET client_id = EXCLUDED.client_id, expires_at = EXCLUDED.expires_at,
    checked_at = EXCLUDED.checked_at, roles = EXCLUDED.roles
RETURNING expires_at, checked_at, now();

-- name: stored
SELECT expires_at, checked_at, now() FROM ozon_account_key WHERE account = %(account)s;

-- name: to_ledger
-- The run ledger keeps the key's expiry as it was known when the run ended.
UPDATE ozon_sync_run r SET key_expires_at = k.expires_at
FROM ozon_account_key k
WHERE k.account = r.account AND r.account = %(account)s AND r.run_id = %(run_id)s
  AND r.key_expires_at IS DISTINCT FROM k.expires_at;
