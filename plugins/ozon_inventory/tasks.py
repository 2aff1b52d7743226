"""The DAG's tasks: thin TaskFlow wrappers that read settings and call the stage functions.

Each task is safe to run again on its own, as an operator's clear does: a fetch replaces its own
staging files for the run, and validate, merge and load rebuild their outputs from staging.
Tasks pass only small manifests and summaries through XCom; the data stays in staging.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from airflow.sdk import (
    Asset,
    AssetAlias,
    Context,
    ExceptionRetryPolicy,
    RetryAction,
    RetryRule,
    TriggerRule,
    get_current_context,
    task,
)
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from ozon_inventory.advice import action, kind_of_error
from ozon_inventory.config import DagSettings, RunSettings, refuse_shared_client_ids, run_settings
from ozon_inventory.exceptions import (
    ConfigError,
    OzonApiError,
    OzonMethodDown,
    OzonPagingError,
    OzonSchemaChanged,
    SchemaVersionError,
    ShrinkGuardError,
    StagingError,
)
from ozon_inventory.naming import account_name
from ozon_inventory.staging import (
    MANIFEST,
    SOURCES,
    StagingArea,
    adopt_legacy_runs,
    purge_older_than,
    purge_over_size,
    run_key_for,
)

log = logging.getLogger(__name__)
DAG_SETTINGS = DagSettings.from_env()

#: Errors that another try cannot fix: fail at once instead of retrying.
PERMANENT = ExceptionRetryPolicy(
    rules=[
        RetryRule(
            exception=[
                OzonApiError,
                OzonMethodDown,
                OzonPagingError,
                OzonSchemaChanged,
                ConfigError,
                StagingError,
                ShrinkGuardError,
                SchemaVersionError,
            ],
            action=RetryAction.FAIL,
            reason="permanent error: a retry would fail the same way",
        )
    ]
)
#: The grid's label of a mapped task: its account (``context["account"]`` once the task's code ran;
#: before that the rendered argument: the task runner renders it before the code runs) and what the
#: task adds when it ends degraded or skipped (``context["ozon_label"]``).
MAP_LABEL = (
    "{% if account is defined %}{{ account }}"
    "{% elif 'account' in task.op_kwargs %}{{ task.op_kwargs['account'] }}"
    "{% else %}{{ task.op_args[0] }}{% endif %}"
    "{% if ozon_label is defined %} · {{ ozon_label }}{% endif %}"
)
_COMMON: dict[str, Any] = {
    "retries": DAG_SETTINGS.retries,
    "retry_delay": timedelta(seconds=DAG_SETTINGS.retry_delay_s),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=30),
    "retry_policy": PERMANENT,
    "multiple_outputs": False,
    "map_index_template": MAP_LABEL,
}
_FETCH: dict[str, Any] = _COMMON | {
    "pool": DAG_SETTINGS.pool,
    "execution_timeout": timedelta(minutes=DAG_SETTINGS.fetch_timeout_min),
}
_LOCAL: dict[str, Any] = _COMMON | {"execution_timeout": timedelta(minutes=30)}
# Grid labels (MAP_LABEL): Airflow 3.3 renders ``map_index_template`` in the worker, first before the
# task's code runs (when it starts running) and again when it ends; while scheduled or queued the
# grid shows the map index, as nothing renders labels before a worker picks the task up.

#: The load's Asset events: one per account whose load applied something, through this alias
#: (the load is mapped, so its assets are named at run time). Downstream DAGs schedule on
#: ``stock_asset(account)``, i.e. ``Asset("ozon-inventory://<account's name>")``.
STOCK_ALIAS = AssetAlias("ozon-inventory")


def stock_asset(account: str) -> Asset:
    """The asset of an account's stock in the target database.

    Named by ``naming.account_name``: Airflow refuses an asset URI that is not ASCII (after the
    task, when it records the event), and a raw id may hold what a URI cannot (``#``, ``/``, ``:``).
    An id made of ``a-z0-9_-`` (``ozon_default``) is its own name, so its URI is the id's."""
    return Asset(f"ozon-inventory://{account_name(account)}")


#: A run param with this value defers to the Variable ``ozon_inventory_<name>``, then the default
#: (the form shows a real choice instead of an empty ``null`` one).
DEFERRING_PARAMS: dict[str, Any] = {
    "warehouse_stock_method": "auto",
    "warehouse_list_method": "auto",
    "allow_shrink": False,
    "alert_stock_events": False,
}


def _run_params(params: Any) -> dict[str, Any]:
    """The run's params with the deferring values removed, so Variables and defaults apply."""
    return {
        k: v
        for k, v in dict(params or {}).items()
        if not (k in DEFERRING_PARAMS and v == DEFERRING_PARAMS[k] and type(v) is type(DEFERRING_PARAMS[k]))
    }


def _skip(context: Context, reason: str, label: str) -> AirflowSkipException:
    """A skip that says why in the task's first log line and in the grid's label."""
    log.warning("SKIPPED: %s", reason)
    context["ozon_label"] = label  # type: ignore[typeddict-unknown-key]
    return AirflowSkipException(reason)


def _context(account: str) -> tuple[Context, RunSettings, StagingArea]:
    context = get_current_context()
    context["account"] = account  # type: ignore[typeddict-unknown-key]  # the map label
    settings = RunSettings(_run_params(context["params"]))  # read as used (``accounts`` checked them all)
    dag_run = context["dag_run"]
    moment = dag_run.logical_date or dag_run.run_after
    return context, settings, StagingArea(settings.staging_root, account, run_key_for(moment))


def _is_backfill(context: Context) -> bool:
    return str(getattr(context["dag_run"], "run_type", "")).lower().endswith("backfill")


def _check_fetched_manifests(context: Context, staging: StagingArea) -> None:
    """A fetch of this run that succeeded but whose manifest is gone (purged, deleted): say that.

    Without this, validate would count the source as not fetched and the run would end "degraded,
    <source> failed … clear the failed fetch task" while that fetch task shows success.
    """
    ti = context["ti"]
    group = ti.task_id.rpartition(".")[0]
    for source in SOURCES:
        target = staging.dir(source) / MANIFEST
        if target.exists():
            continue
        fetch = f"fetch_{source}"
        if ti.xcom_pull(task_ids=f"{group}.{fetch}" if group else fetch, map_indexes=ti.map_index):
            raise StagingError(
                f"account {staging.account}, run {staging.run_key}: {fetch} succeeded, but its manifest "
                f"{target} is gone (deleted or purged since); nothing was loaded and the previous snapshot "
                f"is untouched. Clear {fetch} with its downstream tasks to fetch {source} again."
            )


def _fetch(account: str, source: str) -> dict[str, Any]:
    """Stage one source of one account (a backfill reuses the archived answers instead)."""
    from ozon_inventory.fetch import fetch_source
    from ozon_inventory.hooks.ozon import OzonHook
    from ozon_inventory.hooks.postgres import hook_database
    from ozon_inventory.keys import check_key

    context, settings, staging = _context(account)
    if _is_backfill(context):
        archived = staging.manifest(source)
        if archived is None:
            raise _skip(
                context,
                f"backfill of {staging.run_key}: no archived {source} answers in {staging.dir(source)}. "
                "Ozon's stock methods answer only with stock as it is now, so nothing is written for this date.",
                "skipped: nothing archived",
            )
        archived.reused = True
        log.info("backfill: reprocessing the archived %s answers of %s", source, staging.run_key)
        return archived.as_dict()
    # The rate budget of the Client-Id lives in the target PostgreSQL, which every worker reaches;
    # every connection to it comes from PostgresHook, with the connection's TLS and options.
    target = hook_database(settings.postgres_conn_id)
    client = OzonHook(account, budget_db=target).get_client()
    with _postgres(settings.postgres_conn_id) as conn:
        check_key(client, conn, account, account, settings.key_warn_days)
    return fetch_source(
        client,
        staging,
        source,
        settings.method_choice(source),
        check_pages=True,
        prestage_db=target,  # the checked rows stream into the target database as they come
    ).as_dict()


@task(**_FETCH)
def fetch_stocks(account: str) -> dict[str, Any]:
    """Stock by type (fbo/fbs/rfbs/fbp) from `/v4/product/info/stocks`, raw pages to staging."""
    return _fetch(account, "stocks")


@task(**_FETCH)
def fetch_warehouse_stocks(account: str) -> dict[str, Any]:
    """FBO stock per Ozon warehouse: `/v2/analytics/stock_on_warehouses` or its successor `/v1/analytics/stocks`."""
    return _fetch(account, "warehouse_stocks")


@task(**_FETCH)
def fetch_warehouses(account: str) -> dict[str, Any]:
    """The seller's own FBS/rFBS warehouses: `/v2/warehouse/list`, or `/v1/warehouse/list`."""
    return _fetch(account, "warehouses")


def _postgres(conn_id: str) -> Any:
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    return PostgresHook(postgres_conn_id=conn_id).get_conn()


@task(trigger_rule=TriggerRule.ALL_DONE, **_LOCAL)
def validate(account: str) -> dict[str, Any]:
    """Check every fetched source; rejects with reasons; shrink guard; cross-source check.

    Runs when the fetches are done, failed or not: a source that failed is reported missing and the
    others go on (the run is then degraded).
    """
    from ozon_inventory.approval import DECISION, SHRINK, record_stop
    from ozon_inventory.load import previous_counts
    from ozon_inventory.schema import require_current
    from ozon_inventory.validate import ValidationReport, validate_run

    context, settings, staging = _context(account)
    started = time.monotonic()
    if staging.compacted:  # loaded and compacted: everything is rebuilt from the raw answers
        staging.reset("validated", "model", "load")
    else:  # the fetches' checks of their answers stay in validated/ and model/, to be reused
        staging.reset("load")
        for stale in ("stop.json", SHRINK, DECISION):  # a validate run again decides again
            staging.remove("validated", stale)
    _check_fetched_manifests(context, staging)
    fetched = [s for s in SOURCES if staging.manifest(s) is not None]
    if not fetched:
        if _is_backfill(context):
            raise _skip(
                context,
                f"backfill of {staging.run_key}: nothing archived for account {account}",
                "skipped: nothing archived",
            )
        raise AirflowFailException(
            f"account {account}: no source was fetched for run {staging.run_key}; see the fetch tasks' logs"
        )
    with _postgres(settings.postgres_conn_id) as conn:
        require_current(conn, f"connection {settings.postgres_conn_id}")  # the migrate task's work
        previous = previous_counts(conn, account)
    skipped = set(SOURCES) - set(fetched) if _is_backfill(context) else set()
    try:
        report = validate_run(staging, previous, settings.shrink_threshold, settings.allow_shrink, skipped)
    except (ShrinkGuardError, OzonSchemaChanged) as exc:  # a changed answer comes first, never allow_shrink
        staging.write_json(
            "validated", "stop.json", {"reason": str(exc), "kind": kind_of_error(exc)}
        )  # for report
        if isinstance(exc, OzonSchemaChanged) or DAG_SETTINGS.shrink_approval_hours <= 0:
            raise
        # the report and model files are written: approve_shrink asks whether to load them
        record_stop(staging, exc)
        report = ValidationReport.from_dict(staging.read_json("validated", "report.json"))
        context["ozon_label"] = "shrink: waits for approval"  # type: ignore[typeddict-unknown-key]
        log.warning("account %s: %s", account, exc)
    summary = {
        "missing": report.missing,
        "rejects": report.rejects,
        "mismatches": report.mismatches,
        "rows": {s: r.rows_valid for s, r in report.sources.items()},
        "duration_s": round(time.monotonic() - started, 3),
    }
    staging.write_json("validated", "summary.json", summary)
    return summary


@task(**_LOCAL)
def merge(account: str) -> dict[str, Any]:
    """Build the model files that join two sources (sources.JOINS: products named from analytics)."""
    from ozon_inventory.merge import merge_run
    from ozon_inventory.validate import ValidationReport

    _, _, staging = _context(account)
    staging.reset("load")  # model/ holds validate's facts too; merge rewrites only the files it joins
    _rebuild_compacted(staging, merged=False)  # a merge cleared after the run's load
    result = merge_run(staging, ValidationReport.from_dict(staging.read_json("validated", "report.json")))
    return result.as_dict()


def _rebuild_compacted(staging: StagingArea, merged: bool) -> None:
    """After a load, staging keeps only the raw answers and small reports (``StagingArea.compact``):
    a merge or load run again (cleared, retried) first rebuilds validate's files, and for the load
    merge's too, from the raw answers, as validate and merge wrote them. The answers passed validation
    and its shrink guard when validate ran, so the guard is not asked again."""
    if not staging.compacted:
        return
    from ozon_inventory.merge import merge_run
    from ozon_inventory.validate import ValidationReport, validate_run

    kept = ValidationReport.from_dict(staging.read_json("validated", "report.json"))
    skipped = {s for s, r in kept.sources.items() if r.status == "skipped"}
    log.info(
        "staging of %s was compacted after its load: rebuilding its files from the raw answers",
        staging.run_key,
    )
    report = validate_run(staging, skipped=skipped)
    if merged:
        merge_run(staging, report)
    staging.rebuilt()


@task(**(_LOCAL | {"outlets": [STOCK_ALIAS]}))
def load(account: str) -> dict[str, Any]:
    """Replace the account's snapshot in one transaction; history for changes; the run ledger."""
    from ozon_inventory.approval import unapproved
    from ozon_inventory.load import load_run
    from ozon_inventory.validate import ValidationReport

    context, settings, staging = _context(account)
    staging.reset("load")
    if (why := unapproved(staging)) is not None:  # approve_shrink said no, or was skipped
        raise ShrinkGuardError(why)
    report = ValidationReport.from_dict(staging.read_json("validated", "report.json"))
    durations = {f"fetch_{s}": m.duration_s for s in SOURCES if (m := staging.manifest(s)) is not None}
    durations["validate"] = staging.read_json("validated", "summary.json").get("duration_s", 0.0)
    durations["merge"] = staging.read_json("model", "merge.json").get("duration_s", 0.0)
    _rebuild_compacted(staging, merged=True)  # a load cleared after it had succeeded
    with _postgres(settings.postgres_conn_id) as conn:
        result = load_run(
            conn,
            staging,
            report,
            context["dag_run"].run_id,
            durations,
            connect=lambda: _postgres(settings.postgres_conn_id),  # prepares a source in parallel
            shrink_decision=_decision(staging),
        )
    # Committed: from here on nothing fails the task, as a failure would show a loaded account failed.
    with _after_commit(account, "writing load/result.json (report reads the load's XCom instead)"):
        staging.write_json("load", "result.json", result.as_dict())
    with _after_commit(account, "compacting its staging (the next runs' retention frees the space)"):
        freed = staging.compact()  # loaded: keep the raw answers and small reports, drop what they rebuild
        log.info(
            "staging of %s compacted: %d files, %d bytes dropped",
            staging.run_key,
            len(freed["dropped"]),
            freed["bytes"],
        )
    if result.applied:  # fresh stock: tell downstream DAGs (nothing applied, nothing to tell)
        events: dict[str, Any] = result.events  # out_of_stock / back_in_stock per type and warehouse
        with _after_commit(account, "adding the asset event"):
            context["outlet_events"][STOCK_ALIAS].add(
                stock_asset(account),
                extra={
                    "account": account,
                    "run_id": result.run_id,
                    "status": result.status,
                    "degraded": result.degraded,
                    "applied": list(result.applied),
                    "missing": list(result.missing),
                    "as_of": {s: report.sources[s].as_of for s in result.applied},
                    "products": result.counts.get("products", 0),
                    "warehouse_rows": result.counts.get("warehouse_rows", 0),
                    "events": events,
                },
            )
    return result.as_dict()


def _decision(staging: StagingArea) -> dict[str, Any] | None:
    """An operator's approval of a load the shrink guard stopped, with the guard's figures."""
    from ozon_inventory.approval import DECISION, SHRINK, read

    made, stopped = read(staging, DECISION), read(staging, SHRINK)
    return None if made is None else made | {"figures": (stopped or {}).get("figures", [])}


@contextmanager
def _after_commit(account: str, step: str) -> Iterator[None]:
    """A step after the load's commit: a failure is logged, never the task's outcome."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the account's stock is loaded; the task must not fail
        log.error(
            "account %r: loaded and committed, but %s failed: %s: %s", account, step, type(exc).__name__, exc
        )


@task(trigger_rule=TriggerRule.ALL_DONE, **(_LOCAL | {"retries": 0}))
def report(account: str) -> dict[str, Any]:
    """Make the run's outcome visible: fails when the account's snapshot is not whole.

    A DAG run's state follows its last tasks, so without this task a run whose fetch failed
    would still show success.
    """
    context, settings, staging = _context(account)
    if _is_backfill(context) and not any(staging.manifest(s) for s in SOURCES):
        raise _skip(
            context,
            f"backfill of {staging.run_key}: nothing archived for account {account}",
            "skipped: nothing archived",
        )
    _retention(settings, staging)  # whatever the outcome: failed and degraded runs must not grow staging
    _drop_streamed(settings, staging)
    result: dict[str, Any] | None
    try:
        result = staging.read_json("load", "result.json")
    except StagingError:  # the load may have committed without writing it: its XCom then tells
        result = _load_xcom(context)
    _raise_alerts(context, settings, staging, account, result)
    failed = _tell_outcome(context, staging, account, result)
    if result is None:
        context["ozon_label"] = "failed: nothing loaded"  # type: ignore[typeddict-unknown-key]
        raise AirflowFailException(
            f"account {account}: nothing was loaded for run {staging.run_key} (see the failed task above); "
            "the previous snapshot is untouched"
        ) from None
    log.info(
        "account %s: %s; counts %s; rejects %d; mismatches %d; history +%d/-%d",
        account,
        result["status"],
        result["counts"],
        result["rejects"],
        result["mismatches"],
        result["history_opened"],
        result["history_closed"],
    )
    if result["degraded"]:
        # the grid's label says it, so the run's view tells which sources without opening a log
        context["ozon_label"] = f"degraded: {', '.join(result['missing'])} failed"  # type: ignore[typeddict-unknown-key]
        raise AirflowFailException(
            f"account {account}: degraded run, {', '.join(result['missing'])} failed and kept its last good rows; "
            f"loaded {', '.join(result['applied']) or 'nothing'}. To complete the snapshot: "
            + action({s: failed.get(s) for s in result["missing"]}, account)
        )
    return result


def _tell_outcome(
    context: Context, staging: StagingArea, account: str, result: dict[str, Any] | None
) -> dict[str, Any]:
    """Why the account's sources failed (``fetch.failures``), kept as the report's XCom ``outcome``
    even when the report fails: the operators' page reads it for a run that loaded nothing."""
    from ozon_inventory.fetch import failures

    failed = failures(staging)
    with contextlib.suppress(StagingError):  # validate stopped the load: the shrink guard, a changed answer
        stop = staging.read_json("validated", "stop.json")
        if stop.get("reason"):
            kind = stop.get("kind") or "shrink_guard"
            failed["validate"] = {"kind": kind, "message": stop["reason"], "summary": stop["reason"]}
    status = "failed" if result is None else str(result.get("status"))
    try:
        context["ti"].xcom_push("outcome", {"status": status, "conn_id": account, "errors": failed})
    except Exception as exc:  # noqa: BLE001 - the page then names the failed tasks only
        log.warning("account %s: could not keep the run's outcome for the page: %s", account, exc)
    return failed


def _load_xcom(context: Context) -> dict[str, Any] | None:
    """What this account's load returned, when it succeeded in this try of the run (None otherwise).

    Asked only when ``load/result.json`` is missing. A cleared load that did not run again (its
    upstream failed) keeps the XCom of its earlier success, so the load's state is asked first."""
    ti = context["ti"]
    group = ti.task_id.rpartition(".")[0]
    load_id = f"{group}.load" if group else "load"
    succeeded = ti.get_ti_count(
        dag_id=ti.dag_id,
        map_index=ti.map_index,
        task_ids=[load_id],
        run_ids=[ti.run_id],
        states=["success"],
    )
    if not succeeded:
        return None
    value = ti.xcom_pull(task_ids=load_id, map_indexes=ti.map_index)
    return value if isinstance(value, dict) and "status" in value else None


def _drop_streamed(settings: RunSettings, staging: StagingArea) -> None:
    """The tables this run's fetches streamed rows into (``load.Prestage``): the load drops them as it
    commits; a run whose load failed or never ran leaves them, dropped here. A failure is logged."""
    from ozon_inventory.load import drop_prestaged

    try:
        with _postgres(settings.postgres_conn_id) as conn, conn.cursor() as cur:
            drop_prestaged(cur, staging.account, staging.run_key)
            conn.commit()
    except Exception as exc:  # noqa: BLE001 - the run's own outcome below must not be masked
        log.warning("account %s: could not drop the run's streamed tables: %s", staging.account, exc)


def _retention(settings: RunSettings, staging: StagingArea) -> None:
    """Staging retention: run folders older than ``retention_days`` (every account's), then the
    account's oldest loaded runs beyond ``retention_mb_per_account``; never this run. A failure is
    logged, never the run's outcome."""
    try:
        removed = purge_older_than(settings.staging_root, settings.retention_days, keep=staging.run_key)
        if removed:
            log.info(
                "staging retention (%g days): removed %d old run folders",
                settings.retention_days,
                len(removed),
            )
        removed = purge_over_size(
            settings.staging_root, staging.account, settings.retention_mb_per_account, keep=staging.run_key
        )
        if removed:
            log.info(
                "staging retention (%g MB for account %s): removed %d oldest run folders",
                settings.retention_mb_per_account,
                staging.account,
                len(removed),
            )
    except (OSError, StagingError) as exc:
        log.error("account %s: staging retention failed: %s", staging.account, exc)


def _raise_alerts(
    context: Context, settings: RunSettings, staging: StagingArea, account: str, result: dict[str, Any] | None
) -> None:
    """The run's alerts through Airflow's notifiers, each once per change (``alerts.py``); the key's
    expiry goes into the run's ledger row. An alert channel that is down never fails the report."""
    from ozon_inventory import alerts
    from ozon_inventory.keys import stored_expiry

    def staged(folder: str, name: str) -> dict[str, Any]:
        try:
            return staging.read_json(folder, name)
        except StagingError:
            return {}

    try:
        with _postgres(settings.postgres_conn_id) as conn:
            # the ledger row exists once the load succeeded
            key = stored_expiry(conn, account, context["dag_run"].run_id if result else None)
            candidates = alerts.run_alerts(
                account,
                result,
                staged("validated", "report.json").get("sources", {}),
                stop=staged("validated", "stop.json").get("reason"),
                key_expires_at=key.expires_at,
                key_days_left=key.days_left,
                warn_days=settings.key_warn_days,
                conn_id=account,
            )
            if result and settings.alert_stock_events:
                digest = alerts.stock_events_digest(conn, account, context["dag_run"].run_id)
                candidates += [digest] if digest else []
            fresh = alerts.new_alerts(conn, account, candidates)
    except Exception as exc:  # noqa: BLE001 - the run's own outcome below must not be masked
        log.error("account %s: could not work out this run's alerts: %s", account, exc)
        return
    if fresh:  # the channels' settings are two Variables: read only when there is something to send
        alerts.send(fresh, context, settings.alert_email, settings.alert_notifier)


@task(**{k: v for k, v in _LOCAL.items() if k != "map_index_template"})  # not mapped
def migrate() -> dict[str, Any]:
    """Bring the target database's schema to this code's version before any account's task uses it.

    Once per schema version: a current schema costs one read of its version, and no task after this
    one runs DDL, whose locks would queue the readers of the views and the ledger behind them
    (``ozon_inventory.schema``). Runs as ``migrate_conn_id`` (the schema's owner) when that is set.
    A schema newer than this code fails here, naming both versions, before anything is fetched."""
    from ozon_inventory.schema import migrate as migrate_schema

    settings = RunSettings(_run_params(get_current_context()["params"]))
    conn_id = settings.migrate_conn_id
    with _postgres(conn_id) as conn:
        before, after = migrate_schema(conn, f"connection {conn_id}")
    log.info(
        "connection %s: schema version %s%s", conn_id, after, "" if before == after else f" (was {before})"
    )
    return {"conn_id": conn_id, "before": before, "after": after}


@task(retries=0)
def accounts() -> list[str]:
    """The seller accounts (Ozon connection ids) of this run: param, Variable, or ozon_default.

    Every other setting is read and checked here too, so a bad one fails the run's first task; the
    later tasks read only the settings they use. Before any fetch: two accounts of one seller (one
    Client-Id) are refused by name, and each account's runs in the old staging layout are moved into
    its own folder (``staging.adopt_legacy_runs``)."""
    settings = run_settings(_run_params(get_current_context()["params"]))
    names = list(settings.accounts)
    refuse_shared_client_ids(_client_ids(names), settings.where("accounts"))
    for account in names:
        try:
            moved = adopt_legacy_runs(settings.staging_root, account)
        except Exception as exc:  # noqa: BLE001 - the account still runs; only its old archive waits
            log.warning("account %r: could not move its runs of the old staging layout: %s", account, exc)
            continue
        if moved:
            log.info(
                "account %r: %d runs moved from the old staging layout into %s",
                account,
                len(moved),
                account_name(account),
            )
    return names


def _client_ids(accounts: Sequence[str]) -> dict[str, str | None]:
    """Each account's Client-Id, None where its connection cannot be read (its fetches say why)."""
    from ozon_inventory.hooks.ozon import OzonHook

    out: dict[str, str | None] = {}
    for account in accounts:
        try:
            out[account] = OzonHook(account).client_id()
        except Exception as exc:  # noqa: BLE001 - one bad connection must not stop the other accounts
            log.warning(
                "account %r: its Client-Id is not checked here (%s); its fetches will fail with the cause",
                account,
                exc,
            )
            out[account] = None
    return out
