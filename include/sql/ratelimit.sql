-- The request budget of each Ozon Client-Id, shared by every thread, process and worker machine that
-- uses it (plugins/ozon_inventory/ratelimit.py). GCRA on the database's clock: one row per
-- (client_id, scope), scope '*' for all methods or a method path with its own limit; `tat` is the
-- start of the next free request slot. Reserving a slot is one atomic upsert (the row lock orders
-- concurrent callers); the caller sleeps until its slot. A pause pushes '*' forward.
-- UNLOGGED (include/sql/schema.sql): a few seconds of schedule, which a crash empties.
-- Parameters: %(client_id)s, %(scope)s, %(interval)s and %(seconds)s in seconds (float).

-- name: session
-- Bounds on every statement of the budget's connection, so a stuck database fails the fetch.
SELECT set_config('statement_timeout', %(timeout_ms)s, false),
       set_config('lock_timeout', %(timeout_ms)s, false);

-- name: reserve
-- Take the next free slot of (client_id, scope): at `tat`, or now when `tat` has passed (no bursts:
-- idle time is not saved up). clock_timestamp() in SET is read after the row lock is granted.
-- Returns the seconds until the slot starts (0 = go now).
INSERT INTO ozon_rate_budget AS b (client_id, scope, tat)
VALUES (%(client_id)s, %(scope)s, clock_timestamp() + make_interval(secs => %(interval)s))
ON CONFLICT (client_id, scope) DO UPDATE
    SET tat = greatest(b.tat, clock_timestamp()) + make_interval(secs => %(interval)s)
RETURNING greatest(0, extract(epoch FROM b.tat - clock_timestamp()) - %(interval)s)::float8 AS wait;

-- name: pause
-- No slot of the Client-Id starts before now + seconds (a 429's Retry-After).
INSERT INTO ozon_rate_budget AS b (client_id, scope, tat)
VALUES (%(client_id)s, '*', clock_timestamp() + make_interval(secs => %(seconds)s))
ON CONFLICT (client_id, scope) DO UPDATE
    SET tat = greatest(b.tat, clock_timestamp() + make_interval(secs => %(seconds)s));
