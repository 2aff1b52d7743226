"""Fetch one source from Ozon into the staging area; return its manifest.

Each fetch streams pages to files as they arrive (memory stays flat at any catalogue size), writes
its manifest last, and follows the plan of ``methods.plan``: ``auto`` tries the source's methods in
order and moves to the next when one is switched off or the circuit breaker declares it down; a
pinned method does not fall back. Which methods exist and how they page is read from
``methods.py``; nothing here is specific to one Ozon method.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from ozon_inventory.advice import kind_of_error
from ozon_inventory.client import OzonClient, Page
from ozon_inventory.exceptions import (
    OzonApiError,
    OzonInventoryError,
    OzonMethodDown,
    OzonMethodUnavailable,
    OzonRowsRepeated,
    OzonSchemaChanged,
    OzonSnapshotChanged,
    StagingError,
)
from ozon_inventory.methods import V4_STOCKS, OzonMethod, Paging, method, plan
from ozon_inventory.staging import Manifest, StagingArea

if TYPE_CHECKING:
    from ozon_inventory.hooks.postgres import Database
    from ozon_inventory.load import Prestage
    from ozon_inventory.validate import SourceCheck

log = logging.getLogger(__name__)

SNAPSHOT_PASSES = 3
_BREAKER = "breaker"


def fetch_source(
    client: OzonClient,
    staging: StagingArea,
    source: str,
    choice: str = "auto",
    check_pages: bool = False,
    prestage_db: Database | str | None = None,
) -> Manifest:
    """Stage ``source`` with the first method of its plan that answers; the manifest names it.

    Methods the breaker declared down earlier in this run (another try of the task, another task)
    are skipped without a request. With ``check_pages`` each answer is also validated as it lands
    (``validate.SourceCheck``), while the next ones are on their way: the run's validation is then
    done when the last page is in, instead of starting there. With ``prestage_db`` (the target
    database) the checked rows also stream into it as they are written (``load.Prestage``).

    A fetch that fails leaves why in the source's folder (:data:`FAILED`): validation puts it in
    the run's report, so the ledger, the alerts and the UI name the cause (the field of a changed
    answer), not only that the source is missing.
    """
    try:
        return _fetch_source(client, staging, source, choice, check_pages, prestage_db)
    except Exception as exc:
        _record_failure(staging, source, exc)
        raise


#: the file in a source's folder that says why its fetch failed (``failure``)
FAILED = "failed.json"


def failure(exc: BaseException) -> dict[str, Any]:
    """What a failed fetch tells the run's report: the error, its method and, for an answer whose
    shape changed, the field. Only the project's own errors are quoted (they never hold a secret)."""
    known = isinstance(exc, OzonInventoryError)
    message = str(exc) if known else f"{type(exc).__name__} (see the fetch task's log)"
    summary = message
    if isinstance(exc, OzonSchemaChanged):
        summary = f"{exc.method} answered in a changed shape: {exc.detail}"
    return {
        "error": type(exc).__name__,
        "message": message,
        "summary": summary if len(summary) <= 300 else summary[:300] + "…",
        "method": getattr(exc, "method", None) if known else None,
        "field": exc.field if isinstance(exc, OzonSchemaChanged) else None,
        "permanent": bool(getattr(exc, "permanent", False)),
        "kind": kind_of_error(exc),  # what to do about it: ozon_inventory.advice
        # Ozon's own words, where it answered with an error (the page shows them per source)
        "status": getattr(exc, "status", None) if known else None,
        "code": getattr(exc, "code", None) if isinstance(exc, OzonApiError) else None,
        "ozon_message": exc.message if isinstance(exc, OzonApiError) else None,
    }


def failures(
    staging: StagingArea, sources: tuple[str, ...] = ("stocks", "warehouse_stocks", "warehouses")
) -> dict[str, Any]:
    """Why each source of the run failed, as its fetch recorded it (:data:`FAILED`); the sources
    that did not fail are left out (one whose fetch never got to record it maps to None)."""
    out: dict[str, Any] = {}
    for source in sources:
        if staging.manifest(source) is not None:
            continue
        try:
            out[source] = staging.read_json(source, FAILED) if staging.file(source, FAILED).exists() else None
        except StagingError:
            out[source] = None
    return out


def _record_failure(staging: StagingArea, source: str, exc: BaseException) -> None:
    try:
        staging.write_json(source, FAILED, failure(exc))
    except Exception as write_error:  # noqa: BLE001 - the fetch's own error is what counts
        log.warning("could not record why %s failed: %s", source, write_error)


def _fetch_source(
    client: OzonClient,
    staging: StagingArea,
    source: str,
    choice: str,
    check_pages: bool,
    prestage_db: Database | str | None,
) -> Manifest:
    methods = plan(source, choice)
    _share_breaker(client, staging)
    first = methods[0].path
    for position, candidate in enumerate(methods):
        last = position == len(methods) - 1
        try:
            client.breaker.check(candidate.path)
            return _stage(
                staging,
                source,
                candidate,
                client,
                _pager(client, staging, candidate),
                _fallback(first, candidate),
                check_pages,
                prestage_db,
            )
        except (OzonMethodUnavailable, OzonMethodDown) as exc:
            if last:
                raise
            log.warning("%s; falling back to %s", exc, methods[position + 1].path)
    raise AssertionError("unreachable: a plan has at least one method")


def fetch_stocks(client: OzonClient, staging: StagingArea) -> Manifest:
    """Stock by type (fbo/fbs/rfbs/fbp) of every product."""
    return fetch_source(client, staging, "stocks")


def fetch_warehouse_stocks(client: OzonClient, staging: StagingArea, choice: str = "auto") -> Manifest:
    """FBO stock per Ozon warehouse."""
    return fetch_source(client, staging, "warehouse_stocks", choice)


def fetch_warehouses(client: OzonClient, staging: StagingArea, choice: str = "auto") -> Manifest:
    """The seller's own FBS/rFBS warehouses."""
    return fetch_source(client, staging, "warehouses", choice)


def _fallback(first: str, candidate: OzonMethod) -> str | None:
    return None if candidate.path == first else first


def _pager(client: OzonClient, staging: StagingArea, m: OzonMethod) -> Callable[[], Iterator[Page]]:
    """The pages of one pass of ``m``, with what its paging kind needs from earlier answers."""
    if m.paging is Paging.SKU_BATCHES:
        # The SKUs to ask about: this run's staged v4 answers when fetch_stocks staged them, else a
        # v4 pass of our own.
        def batches() -> Iterator[Page]:
            wanted = fbo_skus_from_staging(staging) or list(fbo_skus_from_ozon(client))
            return client.pages(m, skus=wanted)

        return batches
    if m.paging is Paging.OFFSET:
        previous = _previous_manifest(staging, m.source)
        expected = previous.rows if previous is not None and previous.method == m.path else None
        return lambda: client.pages(m, expected_rows=expected)
    return lambda: client.pages(m)


def _previous_manifest(staging: StagingArea, source: str) -> Manifest | None:
    """The last run's manifest, only a size hint: unreadable means no hint, never a failed fetch."""
    try:
        return staging.previous_manifest(source)
    except StagingError as exc:
        log.warning("no size hint from the previous run of %s: %s", source, exc)
        return None


def _stage(
    staging: StagingArea,
    source: str,
    m: OzonMethod,
    client: OzonClient,
    pages: Callable[[], Iterator[Page]],
    fallback_from: str | None = None,
    check_pages: bool = False,
    prestage_db: Database | str | None = None,
) -> Manifest:
    """Write every page of one pass; restart the pass when Ozon's data moved while we paged.

    Rows that come twice in a pass mean the data moved, unless the next whole pass repeats exactly
    the same rows and Ozon's count agrees: then Ozon's answer itself lists them twice. That pass is
    kept as received (validation keeps one copy and rejects the others, with the reason); failing
    every run on it would freeze the account for as long as Ozon keeps the duplicate.
    """
    started = time.monotonic()
    repeated_before: frozenset[tuple[str, ...]] | None = None
    for attempt in range(1, SNAPSHOT_PASSES + 1):
        folder = staging.begin(source)
        digest, packed = hashlib.sha256(), hashlib.sha256()
        manifest = Manifest(staging.account, staging.run_key, source, m.path, "", str(folder))
        manifest.fallback_from = fallback_from
        manifest.overlap = client.overlap(m)
        checking = _Checking(staging, manifest, m, check_pages, prestage_db)
        try:
            for page in pages():
                if not manifest.as_of:
                    manifest.as_of = as_of(page)
                name, size = staging.write_page(source, page.number, page.raw, packed)
                digest.update(page.raw)
                manifest.files.append(name)
                manifest.pages += 1
                manifest.rows += page.rows
                manifest.bytes += size
                checking.page(page)
        except OzonRowsRepeated as exc:
            checking.abort()
            repeated = _repeated_rows(staging, manifest, m, exc.repeated)
            if exc.consistent and repeated == repeated_before:
                log.warning(
                    "Ozon %s lists the same %d rows more than once in two whole passes in a row (%s): "
                    "a duplicate in Ozon's answer, not data that moved; staged as received, validation "
                    "keeps one copy of each",
                    m.path,
                    len(repeated),
                    _examples(m, repeated),
                )
            else:
                repeated_before = repeated if exc.consistent else None
                _pass_failed(exc, source, attempt, f" (e.g. {_examples(m, repeated)})" if repeated else "")
                continue
        except OzonSnapshotChanged as exc:
            checking.abort()
            repeated_before = None
            _pass_failed(exc, source, attempt)
            continue
        except BaseException:
            checking.abort()
            raise
        manifest.as_of = manifest.as_of or _worker_now()
        manifest.sha256, manifest.packed_sha256 = digest.hexdigest(), packed.hexdigest()
        manifest.requests = client.summary()
        manifest.duration_s = round(time.monotonic() - started, 3)
        checking.finish()
        staging.write_manifest(manifest)
        log.info(
            "staged %s: method=%s pages=%d rows=%d bytes=%d as of %s in %s",
            source,
            m.path,
            manifest.pages,
            manifest.rows,
            manifest.bytes,
            manifest.as_of,
            folder,
        )
        return manifest
    raise AssertionError("unreachable")


class _Checking:
    """The validation of a pass's answers as they land (``validate.SourceCheck``).

    It is an advance on validate's work, never a condition of the fetch: if it fails (a full disk,
    a bug) the fetch goes on without it and says so, and validate checks the staged answers itself.
    A pass whose rows turn out to have repeated (Ozon's answer lists them twice) is checked from the
    staged answers as well, as validate would have done.
    """

    def __init__(
        self,
        staging: StagingArea,
        manifest: Manifest,
        m: OzonMethod,
        enabled: bool,
        prestage_db: Database | str | None,
    ):
        self.m = m
        self.check: SourceCheck | None = None
        self.prestage: Prestage | None = None
        if enabled:
            from ozon_inventory.validate import SourceCheck as Check

            try:
                self.check = Check(staging, manifest)
            except Exception as exc:  # noqa: BLE001 - validate does the check from staging instead
                self._stopped(exc)
        if self.check is not None and prestage_db and self.check.spec.rows in self.check.spec.loads:
            from ozon_inventory.load import Prestage as Stream

            spec = self.check.spec
            try:
                self.prestage = Stream(prestage_db, staging, spec, m.path)
                self.check.writer.mirror = (spec.rows.name, self._stream)
            except Exception as exc:  # noqa: BLE001 - the load copies the file instead
                self._unstream(exc)

    def page(self, page: Page) -> None:
        if (check := self.check) is not None:
            # offset pages reach us without the row they repeat from the previous page (the pager
            # drops it), so the rows are the page's own, as validate reads them from staging
            self._guard(lambda: check.add(self.m.rows(page.data)))

    def finish(self) -> None:
        if (check := self.check) is not None:
            self._guard(lambda: self._finish(check))

    def _finish(self, check: SourceCheck) -> None:
        report, tallies = check.finish()
        if (stream := self.prestage) is not None:
            if check.repassed:  # the files were written again from staging, without the stream
                self._unstream("the rows were checked again")
            else:
                try:
                    streamed, diff = stream.finish()
                    report.prestaged = {stream.file.name: streamed}
                    report.diffed = {stream.file.name: diff} if diff else {}
                except Exception as exc:  # noqa: BLE001 - the load copies the file instead
                    self._unstream(exc)
        check.store(report, tallies)

    def _stream(self, text: str) -> None:
        if (stream := self.prestage) is not None:
            try:
                stream.write(text)
            except Exception as exc:  # noqa: BLE001 - never the check's failure: the load copies the file
                self._unstream(exc)

    def _unstream(self, why: object) -> None:
        stream, self.prestage = self.prestage, None
        if self.check is not None:
            self.check.writer.mirror = None
        log.warning("%s: rows not streamed to the database (%s); the load copies the file", self.m.path, why)
        if stream is not None:
            stream.abandon()

    def abort(self) -> None:
        if self.prestage is not None:
            stream, self.prestage = self.prestage, None
            stream.abandon()
        if self.check is not None:
            check, self.check = self.check, None
            try:
                check.close()
            except Exception:
                log.debug("closing an abandoned check", exc_info=True)

    def _guard(self, step: Callable[[], Any]) -> None:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - validate does the check from staging instead
            self._stopped(exc)

    def _stopped(self, exc: Exception) -> None:
        log.warning(
            "checking %s's answers while fetching stopped (%s: %s); validate will check the staged "
            "answers instead",
            self.m.path,
            type(exc).__name__,
            exc,
        )
        self.abort()


def _pass_failed(exc: OzonSnapshotChanged, source: str, attempt: int, detail: str = "") -> None:
    """One pass saw the data move: fetch again, or give up after the last pass."""
    if attempt == SNAPSHOT_PASSES:
        raise OzonSnapshotChanged(
            f"{exc}{detail} — in each of {SNAPSHOT_PASSES} passes; Ozon's data kept changing while {source} "
            "was paged, nothing was staged; a later run will read it again"
        ) from exc
    log.warning("%s%s; fetching %s again (pass %d of %d)", exc, detail, source, attempt + 1, SNAPSHOT_PASSES)


def _repeated_rows(
    staging: StagingArea, manifest: Manifest, m: OzonMethod, hashes: frozenset[int]
) -> frozenset[tuple[str, ...]]:
    """The keys of the rows that came more than once in this pass, read back from its staged answers
    (the pager keeps only the keys' hashes)."""
    if not hashes:
        return frozenset()
    from ozon_inventory.validate import staged_rows

    counts: Counter[tuple[str, ...]] = Counter()
    for rows in staged_rows(staging, manifest, verify=False):  # the pass has no checksum yet
        for row in rows:
            key = m.key_of(row)
            if key is not None and hash(key) in hashes:
                counts[key] += 1
    return frozenset(key for key, count in counts.items() if count > 1)


def _examples(m: OzonMethod, keys: frozenset[tuple[str, ...]], count: int = 5) -> str:
    return ", ".join(
        " ".join(f"{name}={value}" for name, value in zip(m.row_key, key, strict=True))
        for key in sorted(keys)[:count]
    )


def as_of(page: Page) -> str:
    """When the data was read: Ozon's ``Date`` header (its clock), else this worker's clock.

    A worker whose clock runs ahead would otherwise stamp a snapshot in the future, and every later,
    correct snapshot would look older than it.
    """
    if page.date:
        try:
            return parsedate_to_datetime(page.date).astimezone(UTC).isoformat()
        except (TypeError, ValueError):
            log.warning(
                "unreadable Date header %r from %s; using this worker's clock", page.date, page.method
            )
    return _worker_now()


def _worker_now() -> str:
    """This worker's clock in whole seconds, the resolution of Ozon's ``Date`` header: a run stamped by
    one clock must not look newer than a later run stamped by the other within the same second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _share_breaker(client: OzonClient, staging: StagingArea) -> None:
    """Load the methods this run already declared down, and record new ones with the run."""
    folder = staging.dir(_BREAKER)
    if folder.exists():
        for entry in folder.iterdir():
            try:
                info = json.loads(entry.read_text())
                client.breaker.down.setdefault(info["method"], info)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring unreadable breaker state %s: %s", entry, exc)

    def record(path: str, info: dict[str, Any]) -> None:
        try:
            staging.write_json(
                _BREAKER, re.sub(r"\W+", "_", path).strip("_") + ".json", {"method": path, **info}
            )
        except OSError as exc:
            log.warning("could not record that %s is down: %s", path, exc)

    client.breaker.on_open = record


def fbo_skus_from_ozon(client: OzonClient) -> Iterator[int]:
    """FBO SKUs from a v4 pass of our own (a SKU-batch method needs SKUs to ask about)."""
    for page in client.pages(method(V4_STOCKS)):
        yield from _fbo_skus(page.data)


def fbo_skus_from_staging(staging: StagingArea) -> list[int] | None:
    """FBO SKUs from this run's staged v4 answers, when ``fetch_stocks`` already staged them."""
    manifest = staging.manifest("stocks")
    if manifest is None:
        return None
    skus: list[int] = []
    for _, raw in staging.pages(manifest):
        skus.extend(_fbo_skus(json.loads(raw)))
    return skus


def _fbo_skus(data: dict[str, Any]) -> Iterator[int]:
    for item in method(V4_STOCKS).rows(data):
        for stock in (item.get("stocks") or []) if isinstance(item, dict) else []:
            if isinstance(stock, dict) and stock.get("type") == "fbo":
                try:
                    yield int(stock["sku"])
                except (KeyError, TypeError, ValueError):
                    continue
