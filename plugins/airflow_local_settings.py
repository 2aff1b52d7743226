"""Airflow's local settings for ozon-inventory: import, once, the libraries every task would import itself.

Airflow imports this module in each of its processes as it starts. LocalExecutor forks its workers
from the scheduler and each task from a worker (Celery's prefork pool forks its children the same
way), so a library imported here is already in memory when a task starts instead of being imported
by every task (docs/architecture.md, "Task start-up"). Only libraries outside Airflow are imported
here, because Airflow is still initialising while this module runs; the plugin
(``ozon_inventory_plugin.py``) imports the package itself once Airflow is up.

A deployment with its own ``airflow_local_settings`` (in ``$AIRFLOW_HOME/config``, which comes first
on the path) keeps it; this module is then not imported, and the tasks import what they need, as
they always can.
"""

from __future__ import annotations

import importlib

#: Third-party modules the tasks import (directly or through Airflow's HTTP and Postgres hooks) and
#: Airflow's own start does not.
PRELOADED = ("aiohttp", "numpy", "orjson", "psycopg", "psycopg2", "requests", "requests_toolbelt", "sqlparse")

for _name in PRELOADED:
    try:
        importlib.import_module(_name)
    except ImportError:  # not installed here: whoever needs it imports it, or says it is missing
        pass
