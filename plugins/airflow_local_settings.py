"""Airflow's local settings for ozon-inventory: import, once, what every task would import itself.

Airflow imports this module in each of its processes as it starts. LocalExecutor forks its workers
from the scheduler and each task from a worker (Celery's prefork pool forks its children the same
way), so a library imported here is already in memory when a task starts. The tasks that reach
PostgreSQL (the fetches for the rate budget, validate, load, report) go through Airflow's Postgres
hook, whose SQL provider imports ``sqlparse`` and ``psycopg2``: 0.1 s of every such task's start,
four of them on a run's critical path. Airflow's own start already imports the other libraries the
tasks use (numpy, aiohttp, psycopg 3, requests, orjson). Only libraries outside Airflow are imported
here, because Airflow is still initialising while this module runs.

A deployment with its own ``airflow_local_settings`` (in ``$AIRFLOW_HOME/config``, which comes first
on the path) keeps it; this module is then not imported, and the tasks import what they need, as
they always can.
"""

from __future__ import annotations

import importlib

#: Third-party modules Airflow's Postgres hook imports and Airflow's start does not.
PRELOADED = ("sqlparse", "psycopg2")

for _name in PRELOADED:
    try:
        importlib.import_module(_name)
    except ImportError:  # not installed here: whoever needs it imports it, or says it is missing
        pass
