-- What the code reads from PostgreSQL itself: the schema's version (ozon_inventory/schema.py) and
-- who holds the locks a migration or a load waited for, to name them in its error.

-- name: has_schema
-- False: no ozon-inventory schema in this database (the search path's first schema) yet.
SELECT to_regclass('ozon_schema_version') IS NOT NULL;

-- name: version
SELECT max(version) FROM ozon_schema_version;

-- name: lock_holders
-- Other sessions holding a lock on one of the project's relations in one of %(modes)s, oldest
-- transaction first. Without pg_read_all_stats, another role's state, query and times read NULL.
SELECT a.pid,
       coalesce(nullif(a.application_name, ''), '(no application_name)') AS application,
       a.usename,
       a.state,
       a.xact_start,
       a.query_start,
       left(regexp_replace(a.query, '\s+', ' ', 'g'), 120) AS query,
       string_agg(DISTINCT c.relname || ' (' || l.mode || ')', ', ') AS locks
FROM pg_locks l
JOIN pg_class c ON c.oid = l.relation AND c.relkind IN ('r', 'p', 'v', 'm')  -- tables and views
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.granted AND l.pid <> pg_backend_pid()
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND (c.relname LIKE 'ozon\_%%' OR c.relname = 'inventory_data')
  AND l.mode = ANY(%(modes)s::text[])
GROUP BY a.pid, a.application_name, a.usename, a.state, a.xact_start, a.query_start, a.query
ORDER BY a.xact_start NULLS LAST, a.pid
LIMIT 5;
