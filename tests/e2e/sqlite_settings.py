"""Connection arguments for the e2e Airflow's SQLite metadata database.

SQLite allows one writer; with the scheduler, the api-server and the CLI writing at once, the
default 5 s busy timeout ends in "database is locked" (and can leave a half-created backfill).
"""

CONNECT_ARGS = {"timeout": 60}
