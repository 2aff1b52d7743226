"""The plugin's FastAPI app, mounted by Airflow's api-server at ``/ozon-inventory``.

A plugin's app is not behind Airflow's auth by itself (an anonymous GET would be answered), so every
route here depends on Airflow's own check, ``requires_access_dag("GET", dag_id=ozon_inventory_sync)``
from ``airflow.api_fastapi.core_api.security``: the caller must be a user of the configured auth
manager (JWT in ``Authorization: Bearer`` or the UI's ``_token`` cookie) who may read the DAG.
Anonymous callers get 401 (a browser asking for HTML is sent to the login page instead), users the
auth manager refuses get 403.

Routes (under the mount prefix):

- ``GET /`` — to the page in Airflow's UI (``/plugin/ozon-inventory``)
- ``GET /api/summary`` — counts by status and the worst accounts (the dashboard widget)
- ``GET /api/accounts?page=&page_size=&q=&status=`` — one page of accounts, worst first
- ``GET /api/accounts/{name}`` — one account: sources, requests, rejects by reason, warehouses, history
- ``GET /api/accounts/{name}/rejects?run_id=&source=&reason=&limit=&offset=`` — rejected rows with reasons
- ``GET /api/accounts/{name}/mismatches`` — FBO SKUs where the two sources disagree now
- ``GET /static/{name}`` — the browser code (``ozon-inventory.js``) and the icon

``{name}`` is the account's name (``naming.account_name``, the ``name`` of each row), not its id:
servers decode ``%2F`` before routing, so an id holding ``/`` (``shop/rejects``) would reach
another route or another account; a name has neither ``/`` nor ``%``, reaches the route as it was
sent (through any proxy) and tells exactly one id.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ozon_inventory.ui import queries
from ozon_inventory.ui.queries import DAG_ID, AirflowFacts

URL_PREFIX = "/ozon-inventory"
PAGE_ROUTE = "ozon-inventory"  # the page in Airflow's UI: /plugin/ozon-inventory
STATIC = Path(__file__).resolve().parent / "static"
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
DEFAULT_CONN_ID = "ozon_postgres"


def _variable(name: str) -> str | None:
    """A Variable of the project as the api-server sees it (environment first), None when unset."""
    value = os.environ.get(f"AIRFLOW_VAR_{name.upper()}")
    if not value:
        try:
            from airflow.sdk import Variable

            value = Variable.get(name, default=None)
        except Exception:  # noqa: BLE001 - no Variable backend: unset
            value = None
    return str(value) if value not in (None, "") else None


def postgres_conn_id() -> str:
    """The target database: Variable ``ozon_inventory_postgres_conn_id``, else ``ozon_postgres``."""
    return _variable("ozon_inventory_postgres_conn_id") or DEFAULT_CONN_ID


def accounts_list() -> list[str] | None:
    """The accounts list (Variable ``ozon_inventory_accounts``) when it is set and readable: an
    account outside it shows ``removed``. None otherwise (the newest run's list decides)."""
    raw = _variable("ozon_inventory_accounts")
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return None
    return [str(a).strip() for a in value] if isinstance(value, list) else None


def key_warn_days() -> float:
    """Days before the key's expiry the page warns (Variable ``ozon_inventory_key_warn_days``, as
    the DAG's own warning)."""
    try:
        return float(_variable("ozon_inventory_key_warn_days") or queries.DEFAULT_KEY_WARN_DAYS)
    except ValueError:
        return queries.DEFAULT_KEY_WARN_DAYS


@contextmanager
def _target_db() -> Iterator[Any]:
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn = PostgresHook(postgres_conn_id=postgres_conn_id()).get_conn()
    try:
        yield conn
    finally:
        conn.close()


def target_db() -> Iterator[Any]:
    """A read-only connection to the target database for one request."""
    with _target_db() as conn:
        yield conn


def airflow_runs() -> dict[str, AirflowFacts]:
    """Each account's newest run from Airflow's metadata database (the api-server's own)."""
    from airflow.utils.session import create_session

    from ozon_inventory.ui.airflow_state import account_runs

    with create_session(scoped=False) as session:
        return account_runs(session)


def _now() -> datetime:
    return datetime.now(UTC)


def _authorized() -> Any:
    """Airflow's own check: an authenticated user allowed to read the DAG ``ozon_inventory_sync``."""
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return Depends(requires_access_dag("GET", param_dag_id=DAG_ID))


Db = Annotated[Any, Depends(target_db)]
Runs = Annotated[dict[str, AirflowFacts], Depends(airflow_runs)]
Listed = Annotated[list[str] | None, Depends(accounts_list)]
WarnDays = Annotated[float, Depends(key_warn_days)]


def _account(db: Any, name: str, known: Iterable[str] = ()) -> str:
    """The account a route's ``{name}`` stands for; 404 when no id has that name."""
    account = queries.account_named(db, name, known)
    if account is None:
        raise HTTPException(
            404,
            f"{name!r} is no account's name: the routes take the account's name (the rows' \"name\", "
            "ozon_inventory.naming.account_name of the connection id), not the id itself",
        )
    return account


def create_app() -> FastAPI:
    app = FastAPI(
        title="Ozon inventory",
        description="Per-account state of ozon_inventory_sync for Airflow's UI (plugin ozon_inventory).",
        dependencies=[_authorized()],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.exception_handler(StarletteHTTPException)
    async def _login_for_browsers(request: Request, exc: StarletteHTTPException) -> Response:
        """A person opening the page unauthenticated is sent to Airflow's login; APIs get the status."""
        if exc.status_code == 401 and "text/html" in request.headers.get("accept", ""):
            try:
                from airflow.api_fastapi.app import get_auth_manager

                login = get_auth_manager().get_url_login(next_url=str(request.url))
                return RedirectResponse(login, status_code=302)
            except Exception:  # noqa: BLE001 - no auth manager: the plain status below
                pass
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.get("/", include_in_schema=False)
    def page(request: Request) -> RedirectResponse:
        root = request.scope.get("root_path", "").removesuffix(URL_PREFIX)
        return RedirectResponse(f"{root}/plugin/{PAGE_ROUTE}", status_code=302)

    @app.get("/api/summary")
    def summary(db: Db, runs: Runs, listed: Listed) -> dict[str, Any]:
        return queries.summary(db, runs, _now(), listed=listed)

    @app.get("/api/accounts")
    def accounts(
        db: Db,
        runs: Runs,
        listed: Listed,
        warn_days: WarnDays,
        page: Annotated[int, Query(ge=1)] = 1,
        page_size: Annotated[int, Query(ge=1, le=200)] = 25,
        q: Annotated[str, Query(max_length=200)] = "",
        status: Annotated[str, Query(pattern="^(|failed|degraded|stale|pending|complete|removed)$")] = "",
    ) -> dict[str, Any]:
        return queries.overview(
            db,
            runs,
            _now(),
            page=page,
            page_size=page_size,
            search=q,
            status=status,
            listed=listed,
            warn_days=warn_days,
        )

    @app.get("/api/accounts/{name}")
    def account(name: str, db: Db, runs: Runs, listed: Listed, warn_days: WarnDays) -> dict[str, Any]:
        account = _account(db, name, runs)
        found = queries.account_detail(db, account, runs, _now(), listed, warn_days)
        if found is None:
            raise HTTPException(404, f"no account {account!r} in the ledger or in the DAG's recent runs")
        return found

    @app.get("/api/accounts/{name}/rejects")
    def rejects(
        name: str,
        db: Db,
        run_id: str = "",
        source: str = "",
        reason: str = "",
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        return queries.rejects(db, _account(db, name), run_id or None, source, reason, limit, offset)

    @app.get("/api/accounts/{name}/mismatches")
    def mismatches(name: str, db: Db, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
        return queries.mismatches(db, _account(db, name), limit)

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        files = {p.name: p for p in STATIC.iterdir() if p.is_file()}
        if name not in files:
            raise HTTPException(404, f"no static file {quote(name)}")
        path = files[name]
        return FileResponse(
            path,
            media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
            headers={"Cache-Control": "no-cache"},
        )

    return app
