"""The target PostgreSQL for the connections a task opens besides its own: the rate budget's, and
those that stream and diff the fetched rows.

Why not a conninfo: ``PostgresHook.get_uri()`` is a SQLAlchemy URL without the connection's extras,
so a conninfo made from it silently drops ``sslmode``, certificates and ``options`` (and an IAM token
expires). A ``Database`` opens each connection with ``PostgresHook(conn_id).get_conn()``, so every
connection the project opens gets the user's TLS, options and IAM settings. A conninfo is still
accepted for code that runs outside Airflow (the benchmark, the tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg


@dataclass(frozen=True)
class Database:
    """One target PostgreSQL: ``name`` is what errors and logs call it (never with a password)."""

    name: str
    opener: Callable[[], Any] = field(compare=False, repr=False)

    def connect(self, application_name: str) -> Any:
        """A new autocommit connection, named ``application_name`` in ``pg_stat_activity`` (so an
        operator, and a load's lock error, can tell the project's sessions apart)."""
        conn = self.opener()
        try:
            conn.autocommit = True
            conn.execute("SELECT set_config('application_name', %s, false)", (application_name,))
        except BaseException:
            conn.close()
            raise
        return conn


def hook_database(conn_id: str) -> Database:
    """The database of Airflow connection ``conn_id``, each connection from ``PostgresHook.get_conn``."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    hook = PostgresHook(postgres_conn_id=conn_id)
    return Database(f"connection {conn_id}", hook.get_conn)


def dsn_database(dsn: str, connect_timeout: int = 10) -> Database:
    """The database of a libpq conninfo (outside Airflow); ``connect_timeout`` unless it sets one."""
    from psycopg.conninfo import conninfo_to_dict

    params: dict[str, Any] = dict(conninfo_to_dict(dsn))
    params.setdefault("connect_timeout", connect_timeout)
    return Database(describe_dsn(dsn), lambda: psycopg.connect(**params))


def as_database(target: Database | str) -> Database:
    return target if isinstance(target, Database) else dsn_database(target)


def describe_dsn(dsn: str) -> str:
    """``database <dbname> on host:port as user`` of a conninfo, never its password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - a malformed conninfo: say so, without echoing it
        return "(unparsable conninfo)"
    host = info.get("host") or info.get("hostaddr") or "localhost"
    port = info.get("port") or "5432"
    text = f"database {info.get('dbname') or '(default)'} on {host}:{port}"
    return text + (f" as {info['user']}" if info.get("user") else "")
