"""Validate the staged answers of one account's run: typed, COPY-ready files plus rejects with reasons.

For each source of the registry (``sources.py``) that was fetched, every row of every staged answer
goes through the row validator of the method that fetched it, and the source's files are written as
its spec declares them. The value rules (``rules.py``) are about values, not characters: SKUs and
ids are int64 (JSON numbers or strings), quantities non-negative integers; offer ids, item names and
warehouse names may hold any Unicode, punctuation, underscores or asterisks and are never flagged
for "special characters". A row that breaks a rule goes to ``rejects.tsv`` with its source, reason
and raw record; it is never dropped silently and never fails the run. Unknown fields and enum values
are kept and counted.

Two checks look at the whole snapshot: the shrink guard (far fewer products or rows than the
account's last good snapshot fails, so a partial answer never wipes good data; a source older than
what is loaded is not compared, since load will not apply it) and the declared cross-source checks
(counted, not fatal).
"""

from __future__ import annotations

import io
import logging
import shutil
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, TextIO

import numpy as np

from ozon_inventory.exceptions import OzonSchemaChanged, ShrinkGuardError, StagingError, StagingWriteError
from ozon_inventory.keylog import KeyLog
from ozon_inventory.methods import method, parse_answer
from ozon_inventory.rules import (
    INT64,
    NULL,
    QUANTITY,
    Missing,
    Reject,
    as_int,
    as_key,
    as_label,
    as_text,
    copy_text,
    printable,
    record_json,
    working_days,
)
from ozon_inventory.sources import CHECKS, REGISTRY, REJECTS, CrossCheck, KeySet, ModelFile, SourceSpec
from ozon_inventory.sources import spec as source_spec
from ozon_inventory.staging import CHECKED, Manifest, StagingArea

__all__ = [
    "INT64",
    "NULL",
    "QUANTITY",
    "LoadedState",
    "Reject",
    "SourceCheck",
    "SourceReport",
    "ValidationReport",
    "as_int",
    "as_key",
    "as_label",
    "as_text",
    "staged_rows",
    "validate_run",
    "working_days",
]

log = logging.getLogger(__name__)

_FLUSH = 5000


@dataclass
class SourceReport:
    status: str  # "ok", "missing" (the fetch did not complete) or "skipped" (nothing archived)
    method: str | None = None
    as_of: str | None = None
    fallback_from: str | None = None
    rows_in: int = 0
    rows_valid: int = 0
    rejects: int = 0
    held: int = 0  # rejected rows whose key was readable: their last good values are kept
    products: int = 0
    unknown_fields: dict[str, int] = field(default_factory=dict)
    #: rows rejected because a field the source needs is missing, per field (a changed answer)
    missing_fields: dict[str, int] = field(default_factory=dict)
    #: why the fetch failed (``fetch.FAILED``): the error, its method, the field of a changed answer
    error: dict[str, Any] | None = None
    unknown_values: dict[str, int] = field(default_factory=dict)
    requests: dict[str, Any] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)  # file written -> lines
    check_s: float = 0.0  # CPU seconds spent checking the rows (its thread's own time)
    checked_while_fetching: bool = False  # the fetch checked each answer as it landed
    #: model file -> [unlogged table, rows, oid]: the fetch streamed the file into the target database as
    #: it wrote it (``fetch._Prestage``); the load reads it there instead of copying the file
    prestaged: dict[str, list[Any]] = field(default_factory=dict)
    #: history file -> the diff the fetch made of the streamed rows against the current rows
    #: (``load._Differ``): its table, what it assumed of the current rows, how many of them vanished
    diffed: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class ValidationReport:
    account: str
    run_key: str
    sources: dict[str, SourceReport]
    mismatches: int = 0
    mismatch_examples: list[dict[str, Any]] = field(default_factory=list)
    cross_checked_skus: int = 0
    #: per cross-source check: the keys compared and how many differ
    checks: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def missing(self) -> list[str]:
        return [s for s, r in self.sources.items() if r.status != "ok"]

    @property
    def ok(self) -> list[str]:
        return [s for s, r in self.sources.items() if r.status == "ok"]

    @property
    def rejects(self) -> int:
        return sum(r.rejects for r in self.sources.values())

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["missing"] = self.missing
        out["rejects"] = self.rejects
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationReport:
        fields = SourceReport.__dataclass_fields__
        sources = {
            k: SourceReport(**{f: x for f, x in v.items() if f in fields}) for k, v in data["sources"].items()
        }
        keep = {
            k: data[k]
            for k in ("mismatches", "mismatch_examples", "cross_checked_skus", "checks")
            if k in data
        }
        return cls(data["account"], data["run_key"], sources, **keep)


@dataclass(frozen=True)
class LoadedState:
    """What the account has loaded of one source: its as-of time and counts (``ozon_source_state``)."""

    as_of: datetime
    rows: int
    products: int


class _Writer:
    """The files, rejects and counters of one source's validation (a ``sources.RowSink``)."""

    def __init__(
        self,
        staging: StagingArea,
        spec: SourceSpec,
        report: SourceReport,
        rejects: _Rejects,
        known_fields: Mapping[str, frozenset[str]],
    ):
        self.staging, self.spec, self.report, self.rejects_out = staging, spec, report, rejects
        self.known_fields = known_fields
        self.seen: KeySet = KeyLog()
        self.products: set[Hashable] = set()
        self.unknown_fields: Counter[str] = Counter()
        self.unknown_values: Counter[str] = Counter()
        self.missing: Counter[str] = Counter()
        self._buffers: dict[str, list[tuple[str, ...]]] = {f.name: [] for f in spec.writes}
        self._keyed: dict[str, dict[Hashable, tuple[Any, ...]]] = {}
        self._tallies: dict[str, dict[int, int]] = {}
        self._counts: dict[str, int] = dict.fromkeys(self._buffers, 0)
        self._handles: dict[str, TextIO] = {}
        self._paths: dict[str, Any] = {}
        #: (file name, sink): each chunk written to that file is also given to the sink
        self.mirror: tuple[str, Callable[[str], None]] | None = None

    def __enter__(self) -> _Writer:
        for file in self.spec.writes:
            self._paths[file.name] = path = self.staging.file(file.folder, file.file)
            with writing(path):
                self._handles[file.name] = self.staging.open_write(file.folder, file.file)
        return self

    def __exit__(self, *exc: object) -> None:
        for name, handle in self._handles.items():
            with writing(self._paths[name]):
                handle.close()

    # -- RowSink ---------------------------------------------------------------------------------

    def emit(self, file: ModelFile, values: tuple[str, ...]) -> None:
        buffer = self._buffers[file.name]
        buffer.append(values)
        if len(buffer) >= _FLUSH:
            self._flush(file.name)

    def emit_all(self, file: ModelFile, rows: Iterable[tuple[str, ...]]) -> None:
        buffer = self._buffers[file.name]
        buffer.extend(rows)
        if len(buffer) >= _FLUSH:
            self._flush(file.name)

    def keyed(self, file: ModelFile) -> dict[Hashable, tuple[Any, ...]]:
        lines = self._keyed.get(file.name)
        if lines is None:
            lines = self._keyed[file.name] = {}
        return lines

    def tally(self, name: str) -> dict[int, int]:
        sums = self._tallies.get(name)
        if sums is None:
            sums = self._tallies[name] = {}
        return sums

    def fields(self, kind: str, record: dict[str, Any]) -> None:
        known = self.known_fields[kind]
        if known.issuperset(record):  # the common case costs one C-level check
            return
        for key in record:
            if key not in known:
                self.unknown_fields[f"{kind}.{printable(str(key))}"] += 1

    def unknown_value(self, what: str) -> None:
        self.unknown_values[what] += 1

    # -- the engine's side -----------------------------------------------------------------------

    def reject(self, reason: str | Reject, record: Any) -> None:
        self.report.rejects += 1
        if isinstance(reason, Missing):
            self.missing[reason.field] += 1
        self.rejects_out.write(
            f"{self.spec.name}\t{copy_text(printable(str(reason)))}\t{copy_text(record_json(record))}\n"
        )

    def _flush(self, name: str) -> None:
        buffer = self._buffers[name]
        if buffer:
            text = "".join(["\t".join(values) + "\n" for values in buffer])
            with writing(self._paths[name]):
                self._handles[name].write(text)
            self._counts[name] += len(buffer)
            buffer.clear()
            if self.mirror is not None and self.mirror[0] == name:
                self.mirror[1](text)

    def finish(self) -> dict[str, dict[int, int]]:
        """Write what is left; fill the report; return the tallies for the cross-source checks."""
        for name, lines in self._keyed.items():
            self._flush(name)
            with writing(self._paths[name]):
                self._handles[name].write("".join(_keyed_lines(lines)))
            self._counts[name] += len(lines)
        for name in self._buffers:
            self._flush(name)
        files = {f.name: f.file for f in self.spec.writes}
        self.report.files = {files[name]: count for name, count in self._counts.items()}
        self.report.rows_valid = self._counts[self.spec.rows.name]
        self.report.held = sum(self._counts[f.name] for f in self.spec.holds)
        self.report.products = len(self.products)
        self.report.unknown_fields = dict(self.unknown_fields)
        self.report.unknown_values = dict(self.unknown_values)
        self.report.missing_fields = dict(self.missing)
        if self.unknown_fields or self.unknown_values:
            log.info(
                "%s: kept unknown fields %s and values %s",
                self.spec.name,
                self.report.unknown_fields,
                self.report.unknown_values,
            )
        return self._tallies


def _keyed_lines(lines: dict[Hashable, tuple[Any, ...]]) -> list[str]:
    """The lines of a keyed file; a list value is joined with ",". Most keyed files hold text only,
    and joining them in one pass is 4 times faster than testing every value (85,000 item names)."""
    try:
        return ["\t".join(values) + "\n" for values in lines.values()]
    except TypeError:  # a list among the values (a product's SKUs)
        return [
            "\t".join(v if isinstance(v, str) else ",".join(v) for v in values) + "\n"
            for values in lines.values()
        ]


@contextmanager
def writing(target: Any) -> Iterator[None]:
    """Name the file when a write fails: ``No space left on device`` alone names nothing.

    ``StagingWriteError`` is not permanent: once space is freed, a retry of the task succeeds.
    """
    try:
        yield
    except OSError as exc:
        failed = f" ({exc.filename})" if exc.filename else ""  # the folder, when it could not be made
        raise StagingWriteError(f"cannot write {target}: {exc.strerror or exc}{failed}") from exc


def _where(staging: StagingArea) -> str:
    return f"account {staging.account}, run {staging.run_key}: "


def staged_rows(staging: StagingArea, manifest: Manifest, verify: bool = True) -> Iterator[list[Any]]:
    """The rows of every staged answer, page by page, where ``methods.py`` says they sit, without the
    rows a page repeats from the one before (``verify``: see ``StagingArea.pages``)."""
    ozon = method(manifest.method)
    for number, (name, raw) in enumerate(staging.pages(manifest, verify)):
        try:
            records = ozon.rows(parse_answer(raw))
        except (ValueError, RecursionError) as exc:
            raise StagingError(
                f"{_where(staging)}staged answer {staging.dir(manifest.source) / name} of {manifest.source} "
                f"({manifest.method}) is not a valid answer: {exc}"
            ) from exc
        # pages after the first repeat the previous page's last rows (offset paging's overlap)
        yield records[manifest.overlap :] if number else records


class _Suspects:
    """Exact duplicates among the keys whose hash came more than once (``KeyLog.repeated``); no other
    key can repeat."""

    def __init__(self, hashes: frozenset[int]):
        self.hashes = hashes
        self.keys: set[Hashable] = set()

    def __contains__(self, key: object) -> bool:
        return key in self.keys

    def add(self, key: Hashable) -> None:
        if hash(key) in self.hashes:
            self.keys.add(key)

    def add_new(self, keys: Iterable[Hashable]) -> bool:
        return False  # a suspect key may come again: every row is checked on its own


def rejects_part(source: str) -> ModelFile:
    """``validated/rejects_<source>.tsv``: one source's rejects (validate joins them into rejects.tsv)."""
    return ModelFile(f"rejects_{source}", REJECTS.columns, folder="validated")


class _Rejects:
    """One source's rejects, one line each; a failed write names the file."""

    def __init__(self, staging: StagingArea, source: str):
        part = rejects_part(source)
        self.path = staging.file(part.folder, part.file)
        with writing(self.path):
            self.handle: TextIO = staging.open_write(part.folder, part.file)

    def write(self, line: str) -> None:
        with writing(self.path):
            self.handle.write(line)

    def close(self) -> None:
        with writing(self.path):
            self.handle.close()


#: per source: the check's tallies beside what it found (``staging.CHECKED``, ``SourceCheck.store``)
_TALLIES = "tallies_{}.npz"

#: A sum per key, as the cross-source checks compare them: the keys (int64, ascending) and their sums.
Tally = tuple[np.ndarray, np.ndarray]
_NO_TALLY: Tally = (np.empty(0, np.int64), np.empty(0, np.int64))


def _tally(sums: dict[int, int]) -> Tally:
    """A check's sums as two arrays, keys ascending: 150,000 keys load in a millisecond, where the
    same pairs as JSON took 0.2 s to read back, and two sources compare without a Python loop."""
    keys = np.fromiter(sums.keys(), np.int64, len(sums))
    values = np.fromiter(sums.values(), np.int64, len(sums))
    order = np.argsort(keys)
    return keys[order], values[order]


class SourceCheck:
    """The validation of one source's rows, fed page by page.

    The fetch feeds it each answer as it lands (``fetch_source(check_pages=True)``), while the next
    pages are still on their way, so a source is validated when its last page is in; ``validate_run``
    then reuses what it wrote (:func:`checked_result`). Where that was not done or does not match the
    staged answers (a backfill, a compacted run, a check the fetch gave up), ``validate_run`` feeds
    it the staged answers instead. Both write the same files.
    """

    def __init__(self, staging: StagingArea, manifest: Manifest):
        self.staging, self.manifest = staging, manifest
        self.spec = source_spec(manifest.source)
        rules = self.spec.method_rows(manifest.method, _where(staging))
        self._validate_row, self._validate_page, self._known = rules.validate, rules.page, rules.known_fields
        self.seconds = 0.0
        self.repassed = False  # the rows were checked again from staging (files written anew)
        staging.remove("validated", CHECKED.format(self.spec.name))
        self._open(KeyLog())

    def _open(self, seen: KeySet) -> None:
        started = time.thread_time()
        self.report = SourceReport("ok", self.manifest.method)
        self.rows_in = 0
        self.rejects = _Rejects(self.staging, self.spec.name)
        self.writer = _Writer(self.staging, self.spec, self.report, self.rejects, self._known)
        self.writer.seen = seen
        self.writer.__enter__()
        self.seconds += time.thread_time() - started

    def add(self, records: list[Any]) -> None:
        """Validate one answer's rows (without the rows it repeats from the previous answer)."""
        started = time.thread_time()
        validate_row, validate_page, writer = self._validate_row, self._validate_page, self.writer
        if validate_page is None or not validate_page(records, writer):  # else: all plain, all written
            for record in records:
                try:
                    validate_row(record, writer)
                except Reject as exc:
                    writer.reject(exc, record)
        self.rows_in += len(records)
        self.seconds += time.thread_time() - started

    def close(self) -> None:
        """Close the files (the check is done or abandoned)."""
        try:
            self.writer.__exit__(None, None, None)
        finally:
            self.rejects.close()

    def finish(self) -> tuple[SourceReport, dict[str, Tally]]:
        """Resolve duplicates, write what is left, fill the report; return it and the tallies."""
        seen = self.writer.seen
        suspects = seen.repeated() if isinstance(seen, KeyLog) else frozenset()
        if suspects:
            # rare: Ozon listed a key twice (or two keys share a hash); check again, exactly
            log.info(
                "%s%s: %d keys may repeat; checking the staged answers again",
                _where(self.staging),
                self.spec.name,
                len(suspects),
            )
            self.repassed = True
            self.close()
            self._open(_Suspects(suspects))
            for records in staged_rows(self.staging, self.manifest):
                self.add(records)
        started = time.thread_time()
        report, manifest = self.report, self.manifest
        report.as_of, report.fallback_from, report.requests = (
            manifest.as_of,
            manifest.fallback_from,
            manifest.requests,
        )
        report.rows_in = self.rows_in
        tallies = {name: _tally(sums) for name, sums in self.writer.finish().items()}
        self.close()
        self.seconds += time.thread_time() - started
        report.check_s = round(self.seconds, 3)
        return report, tallies

    def store(self, report: SourceReport, tallies: dict[str, Tally]) -> None:
        """Keep the result beside the files, tied to the manifest's checksums (``checked_result``)."""
        name = self.spec.name
        report.checked_while_fetching = True
        packed = io.BytesIO()
        arrays: dict[str, np.ndarray] = {}
        for tally, (keys, sums) in tallies.items():
            arrays[f"{tally}.keys"], arrays[f"{tally}.sums"] = keys, sums
        np.savez(packed, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
        target = self.staging.file("validated", _TALLIES.format(name))
        with writing(target):
            target.write_bytes(packed.getvalue())
        checked = {
            "sha256": self.manifest.sha256,
            "packed_sha256": self.manifest.packed_sha256,
            "method": self.manifest.method,
            "report": asdict(report),
        }
        target = self.staging.file("validated", CHECKED.format(name))
        with writing(target):
            self.staging.write_json("validated", CHECKED.format(name), checked)


def checked_result(staging: StagingArea, manifest: Manifest) -> tuple[SourceReport, dict[str, Tally]] | None:
    """The fetch's check of ``manifest``'s answers, when it is whole and matches them; else None.

    It matches when it was made from these answers (the manifest's checksums), its files are all
    there (a compaction after the load drops them) and the staged answers are intact
    (``StagingArea.intact``), so a damaged archive is read, and named, by the full check instead of
    going unnoticed.
    """
    name = manifest.source
    try:
        if staging.compacted or not manifest.packed_sha256:
            return None
        checked = staging.read_json("validated", CHECKED.format(name))
        if (checked.get("sha256"), checked.get("packed_sha256"), checked.get("method")) != (
            manifest.sha256,
            manifest.packed_sha256,
            manifest.method,
        ):
            return None
        parts = [*source_spec(name).writes, rejects_part(name)]
        if not all(staging.file(f.folder, f.file).exists() for f in parts):
            return None
        if not staging.intact(manifest):
            return None
        stored = staging.file("validated", _TALLIES.format(name)).read_bytes()
        with np.load(io.BytesIO(stored), allow_pickle=False) as packed:
            arrays = {key: packed[key] for key in packed.files}
        names = [key.removesuffix(".keys") for key in arrays if key.endswith(".keys")]
        tallies = {tally: (arrays[f"{tally}.keys"], arrays[f"{tally}.sums"]) for tally in names}
        fields = SourceReport.__dataclass_fields__
        report = SourceReport(**{k: v for k, v in checked["report"].items() if k in fields})
    except (OSError, ValueError, TypeError, KeyError, StagingError, EOFError, zipfile.BadZipFile) as exc:
        log.info(
            "%s%s: checking the staged answers (the fetch's check is not usable: %s)",
            _where(staging),
            name,
            exc,
        )
        return None
    report.as_of, report.fallback_from, report.requests = (
        manifest.as_of,
        manifest.fallback_from,
        manifest.requests,
    )
    return report, tallies


def _check_staged(staging: StagingArea, manifest: Manifest) -> tuple[SourceReport, dict[str, Tally]]:
    """Validate the staged answers of one source."""
    check = SourceCheck(staging, manifest)
    try:
        for records in staged_rows(staging, manifest):
            check.add(records)
    except BaseException:
        check.close()
        raise
    return check.finish()


def _fetch_failure(staging: StagingArea, source: str) -> dict[str, Any] | None:
    """Why the source's fetch failed, as it recorded it (``fetch.FAILED``), if it did."""
    from ozon_inventory.fetch import FAILED

    try:
        if not staging.file(source, FAILED).exists():
            return None
        return staging.read_json(source, FAILED)
    except (OSError, ValueError, StagingError) as exc:
        log.info("%s%s: why its fetch failed is unreadable: %s", _where(staging), source, exc)
        return None


def _join_rejects(staging: StagingArea, sources: list[str]) -> None:
    """``validated/rejects.tsv``: the rejects of every validated source, in the registry's order."""
    target = staging.file(REJECTS.folder, REJECTS.file)
    with writing(target), staging.open_write(REJECTS.folder, REJECTS.file) as out:
        for source in sources:
            part = rejects_part(source)
            with staging.open_read(part.folder, part.file) as handle:
                shutil.copyfileobj(handle, out)


def validate_run(
    staging: StagingArea,
    previous: Mapping[str, LoadedState] | None = None,
    shrink_threshold: float = 0.5,
    allow_shrink: bool = False,
    skipped: set[str] | None = None,
) -> ValidationReport:
    """Validate every staged source of the run and write its files (``validated/``, ``model/``).

    ``previous`` is what the account has loaded per source (``load.previous_counts``); a source
    below ``(1 - shrink_threshold)`` of it raises ``ShrinkGuardError`` unless ``allow_shrink``.
    """
    report = ValidationReport(staging.account, staging.run_key, {})
    tallies: dict[tuple[str, str], Tally] = {}
    for source in REGISTRY:
        manifest = staging.manifest(source.name)
        if manifest is None:
            status = "skipped" if skipped and source.name in skipped else "missing"
            report.sources[source.name] = SourceReport(status, error=_fetch_failure(staging, source.name))
            continue
        checked = checked_result(staging, manifest) or _check_staged(staging, manifest)
        report.sources[source.name], sums = checked
        tallies.update({(source.name, name): values for name, values in sums.items()})
    _join_rejects(staging, report.ok)
    ok = set(report.ok)
    for check in CHECKS:
        if check.expected[0] not in ok or check.actual[0] not in ok:
            continue
        if check.only_with is not None and report.sources[check.actual[0]].method not in check.only_with:
            continue
        _cross_check(
            report, check, tallies.get(check.expected, _NO_TALLY), tallies.get(check.actual, _NO_TALLY)
        )
    with writing(staging.file("validated", "report.json")):
        staging.write_json("validated", "report.json", report.as_dict())
    _shrink_guard(
        report, previous or {}, shrink_threshold, allow_shrink, staging.file(REJECTS.folder, REJECTS.file)
    )
    return report


def _cross_check(report: ValidationReport, check: CrossCheck, expected: Tally, actual: Tally) -> None:
    """Per key: the expected source's sum against the actual source's (a key one source lacks sums to 0)."""
    keys = np.union1d(expected[0], actual[0])
    want, got = np.zeros(len(keys), np.int64), np.zeros(len(keys), np.int64)
    want[np.searchsorted(keys, expected[0])] = expected[1]
    got[np.searchsorted(keys, actual[0])] = actual[1]
    differ = np.flatnonzero(want != got)
    mismatches = len(differ)
    examples = [
        {"sku": int(keys[i]), check.expected_label: int(want[i]), check.actual_label: int(got[i])}
        for i in differ[:10]
    ]
    report.mismatches += mismatches
    report.checks[check.name] = {"skus": len(keys), "mismatches": mismatches}
    report.mismatch_examples = sorted(report.mismatch_examples + examples, key=lambda e: e["sku"])[:10]
    report.cross_checked_skus += len(keys)
    if mismatches:
        log.warning(
            "%scross-source check %s: %d of %d %s, e.g. %s",
            _where_report(report),
            check.name,
            mismatches,
            len(keys),
            check.what,
            report.mismatch_examples[:3],
        )


def _where_report(report: ValidationReport) -> str:
    return f"account {report.account}, run {report.run_key}: "


def _shrink_guard(
    report: ValidationReport,
    previous: Mapping[str, LoadedState],
    threshold: float,
    allow: bool,
    rejects: Any = "validated/rejects.tsv",
) -> None:
    """Fail when a source has far fewer products or rows than the account's last good snapshot.

    A source older than what is loaded is left to the load, which marks it stale and does not apply
    it (a backfill reprocessing an older, smaller archive is not a shrink). A shrink that comes with
    rows rejected for a missing field is Ozon's answer changing shape, not the catalogue shrinking:
    that error comes first, ``OzonSchemaChanged``, whatever ``allow_shrink`` says (loading it would
    empty the source), and nothing advises ``allow_shrink``.
    """
    problems, figures = [], []
    for spec in REGISTRY:
        src, before = report.sources.get(spec.name), previous.get(spec.name)
        if spec.shrink is None or src is None or src.status != "ok" or before is None:
            continue
        if src.as_of and datetime.fromisoformat(src.as_of) < before.as_of:
            log.info(
                "%s%s is from %s, older than the loaded %s: not shrink-checked (load marks it stale)",
                _where_report(report),
                spec.name,
                src.as_of,
                before.as_of,
            )
            continue
        was = before.products if spec.shrink.count == "products" else before.rows
        now = src.products if spec.shrink.count == "products" else src.rows_valid
        if was and now < was * (1 - threshold):
            shrank = f"{spec.name}: {now} {spec.shrink.unit} against {was} in the last good snapshot"
            if src.missing_fields:
                field, count = max(src.missing_fields.items(), key=lambda item: (item[1], item[0]))
                raise OzonSchemaChanged(
                    str(src.method),
                    field,
                    f"{count} of {src.rows_in} rows lack {field!r} (account {report.account}, run "
                    f"{report.run_key}: {shrank}; that is Ozon's answer, not a smaller catalogue)",
                    f"the rejected rows in {rejects}",
                )
            problems.append(shrank)
            figures.append({"source": spec.name, "unit": spec.shrink.unit, "before": was, "after": now})
    if problems and not allow:
        raise ShrinkGuardError(
            f"account {report.account}, run {report.run_key}: snapshot shrank by more than "
            f"{threshold:.0%} ({'; '.join(problems)}); nothing was loaded. If the catalogue really "
            "shrank, approve this run's load (the approve_shrink task, while it waits) or trigger the "
            "run again with the param allow_shrink=true.",
            figures,
        )
    if problems:
        log.warning(
            "%sshrink guard overridden by allow_shrink: %s", _where_report(report), "; ".join(problems)
        )
