"""The staging area: Ozon's raw answers and the files built from them, laid out by account and run.

``{root}/{account}/{run_key}/{source}/page-000001.json.gz`` holds each answer exactly as received
(gzip-compressed), and ``manifest.json`` beside the pages is written last, so a source counts as
fetched only when its manifest exists. ``{account}`` is the account's name (``naming.account_name``:
one folder per connection id, never shared; :func:`adopt_legacy_runs` moves runs of the old layout). ``validated/`` and ``model/`` hold the COPY-ready files of the
later tasks. The root is a local folder or any fsspec / ObjectStoragePath URL (``s3://conn@bucket/x``).

Once a run's load has succeeded, :meth:`StagingArea.compact` drops what can be rebuilt from the raw
answers (every file of ``validated/``, ``model/`` and ``load/`` but their small JSON reports) and
leaves ``model/compacted.json`` behind; a cleared merge or load finds it and rebuilds those files
from the raw answers first, and a re-run validate removes it with everything it rewrites. Retention:
:func:`purge_older_than` by age, :func:`purge_over_size` by total size per account.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ozon_inventory.exceptions import StagingError, StagingWriteError
from ozon_inventory.naming import account_name, account_of
from ozon_inventory.sources import SOURCES

__all__ = [
    "CHECKED",
    "COMPACTED",
    "DERIVED",
    "MANIFEST",
    "SOURCES",
    "Manifest",
    "StagingArea",
    "adopt_legacy_runs",
    "legacy_folder",
    "purge_older_than",
    "purge_over_size",
    "run_key_for",
    "safe_part",
]
MANIFEST = "manifest.json"
#: the folders the tasks after the fetches write: rebuildable from the raw answers
DERIVED = ("validated", "model", "load")
#: (folder, name) of the marker a compaction leaves: the derived files are gone, rebuild them first
COMPACTED = ("model", "compacted.json")
#: ``validated/checked_<source>.json``: a fetch's check of its answers, reusable only with its files
CHECKED = "checked_{}.json"
_SAFE = re.compile(r"[^A-Za-z0-9._=-]+")
_RUN_KEY = "%Y%m%dT%H%M%SZ"


@dataclass
class Manifest:
    """What a fetch staged: small enough for XCom, enough to check the files and fill the ledger."""

    account: str
    run_key: str
    source: str
    method: str
    as_of: str
    path: str
    files: list[str] = field(default_factory=list)
    pages: int = 0
    rows: int = 0
    bytes: int = 0
    sha256: str = ""
    fallback_from: str | None = None
    requests: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    reused: bool = False
    #: rows at the head of every page after the first that repeat the previous page's last rows
    #: (offset paging overlaps pages to notice rows that moved); readers skip them
    overlap: int = 0
    #: sha256 of the staged (compressed) files in order: the archive checked without unpacking it
    packed_sha256: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def safe_part(value: str) -> str:
    """A path segment from a run key ("20261122T100000Z", "manual__2026-…"): each run of other
    characters than ``[A-Za-z0-9._=-]`` becomes ``_``. Not injective, so never for an account (see
    ``naming.account_name``); account folders were named so before, which :func:`legacy_folder` keeps."""
    cleaned = _SAFE.sub("_", value).strip("._")
    if not cleaned:
        raise StagingError(f"cannot make a staging folder name from {value!r}")
    return cleaned


def _path(url: str) -> Any:
    """A pathlib-like object for a local folder or an object-storage URL."""
    if "://" in url and not url.startswith("file://"):
        from airflow.sdk import ObjectStoragePath

        return ObjectStoragePath(url)
    return Path(url.removeprefix("file://"))


class StagingArea:
    """The staging folder of one account's run."""

    def __init__(self, root: str, account: str, run_key: str):
        self.root_url = root
        self.account = account
        self.run_key = run_key
        self.base = _path(root) / account_name(account) / safe_part(run_key)

    def dir(self, name: str) -> Any:
        return self.base / name

    def file(self, folder: str, name: str) -> Any:
        return self.base / folder / name

    # -- raw answers ---------------------------------------------------------------------------

    def begin(self, source: str) -> Any:
        """Empty the source's folder: a re-run fetch replaces its own files, nothing else."""
        self.reset(source)
        folder = self.dir(source)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def reset(self, *folders: str) -> None:
        """Remove what a task wrote before (its own outputs and those built from them)."""
        for name in folders:
            _remove(self.dir(name))

    def remove(self, folder: str, name: str) -> None:
        """Remove one file of the run, if it is there."""
        target = self.file(folder, name)
        if target.exists():
            target.unlink()

    def write_page(self, source: str, number: int, raw: bytes, packed_digest: Any = None) -> tuple[str, int]:
        """Stage one answer, gzip-compressed; ``packed_digest`` (a hashlib object) takes the file's bytes."""
        name = f"page-{number:06d}.json.gz"
        target = self.dir(source) / name
        packed = gzip.compress(raw, compresslevel=1)
        with _writing(target), target.open("wb") as handle:
            handle.write(packed)
        if packed_digest is not None:
            packed_digest.update(packed)
        return name, len(raw)

    def intact(self, manifest: Manifest) -> bool:
        """The source's staged files are still those the fetch wrote, without unpacking them.

        Locally: the sha256 of the compressed files against ``manifest.packed_sha256`` (milliseconds;
        a file truncated, replaced or damaged on disk since shows). On an object store, where a PUT
        writes a whole object or nothing and reading every page back would cost a request each:
        every file is listed.
        """
        folder = self.dir(manifest.source)
        if not isinstance(folder, Path):
            return set(manifest.files) <= {entry.name for entry in folder.iterdir()}
        digest = hashlib.sha256()
        for name in manifest.files:
            digest.update((folder / name).read_bytes())
        return digest.hexdigest() == manifest.packed_sha256

    def write_manifest(self, manifest: Manifest) -> None:
        """Write the manifest last and atomically: a reader sees the whole manifest or none.

        Locally: a temporary file, fsync, rename, fsync of the folder, so a full disk or a crash
        leaves no empty ``manifest.json`` behind. On an object store one PUT is already atomic.
        """
        target = self.dir(manifest.source) / MANIFEST
        data = json.dumps(manifest.as_dict(), ensure_ascii=False, indent=1).encode()
        with _writing(target):
            if isinstance(target, Path):
                _atomic_write(target, data)
            else:
                target.write_bytes(data)

    def manifest(self, source: str) -> Manifest | None:
        """The source's manifest, or None when the fetch did not complete."""
        return _read_manifest(self.dir(source))

    def previous_manifest(self, source: str, lookback: int = 10) -> Manifest | None:
        """The source's manifest from the account's latest earlier run (a size hint for paging)."""
        account_dir = self.base.parent
        if not account_dir.exists():
            return None
        earlier = sorted((p.name for p in account_dir.iterdir() if p.name < self.base.name), reverse=True)
        for run_key in earlier[:lookback]:
            manifest = StagingArea(self.root_url, self.account, run_key).manifest(source)
            if manifest is not None:
                return manifest
        return None

    def pages(self, manifest: Manifest, verify: bool = True) -> Iterator[tuple[str, bytes]]:
        """The staged raw answers in order, checked against the manifest's checksum (``verify``; a
        fetch reading back the pass it is staging has no checksum yet).

        A page that is gone or does not decompress raises ``StagingError`` naming the file: permanent
        for the run (reading it again gives the same bytes), fixed by fetching the source again.
        """
        digest = hashlib.sha256()
        again = f"fetch {manifest.source} again (clear fetch_{manifest.source} with its downstream tasks)"
        for name in manifest.files:
            target = self.dir(manifest.source) / name
            try:
                packed = target.read_bytes()
            except FileNotFoundError as exc:
                raise StagingError(
                    f"staged answer {target} is missing or damaged: the file is gone; {again}"
                ) from exc
            except OSError as exc:
                raise StagingError(
                    f"staged answer {target} is missing or damaged: it cannot be read ({exc.strerror or exc}); {again}"
                ) from exc
            try:
                raw = gzip.decompress(packed)
            except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
                raise StagingError(
                    f"staged answer {target} is missing or damaged: it does not decompress "
                    f"({type(exc).__name__}: {exc}; {len(packed)} bytes on disk); {again}"
                ) from exc
            digest.update(raw)
            yield name, raw
        if verify and digest.hexdigest() != manifest.sha256:
            raise StagingError(
                f"staged answers of {manifest.source} in {self.dir(manifest.source)} do not match "
                "their manifest's checksum: re-run the fetch"
            )

    # -- derived files -------------------------------------------------------------------------

    def open_write(self, folder: str, name: str) -> Any:
        self.dir(folder).mkdir(parents=True, exist_ok=True)
        return self.file(folder, name).open("w", encoding="utf-8", newline="")

    def open_read(self, folder: str, name: str) -> Any:
        target = self.file(folder, name)
        if not target.exists():
            raise StagingError(f"{target} is missing: run the task that writes it again")
        return target.open("r", encoding="utf-8", newline="")

    def open_binary(self, folder: str, name: str) -> Any:
        return self.file(folder, name).open("rb")

    def write_json(self, folder: str, name: str, data: dict[str, Any]) -> None:
        self.dir(folder).mkdir(parents=True, exist_ok=True)
        self.file(folder, name).write_text(json.dumps(data, ensure_ascii=False, indent=1))

    def read_json(self, folder: str, name: str) -> dict[str, Any]:
        target = self.file(folder, name)
        if not target.exists():
            raise StagingError(f"{target} is missing: run the task that writes it again")
        return json.loads(target.read_text())

    # -- after the load --------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        """The run's load has succeeded (``load/result.json`` exists)."""
        return bool(self.file("load", "result.json").exists())

    @property
    def compacted(self) -> bool:
        """The derived files were dropped after the load: a merge or load must rebuild them first."""
        return bool(self.file(*COMPACTED).exists())

    def compact(self) -> dict[str, Any]:
        """Drop what can be rebuilt from the raw answers; keep the raw answers and small JSON reports.

        Removes every file of ``validated/``, ``model/`` and ``load/`` except ``*.json`` (the reports
        the later tasks, alerts and the ledger read: ``validated/report.json``, ``summary.json``,
        ``stop.json``, ``model/merge.json``, ``load/result.json``); the fetches' ``checked_*.json``
        go too, as they describe files that go. The marker ``model/compacted.json``
        (what goes, how many bytes) is written first: if it cannot be written nothing is dropped, and
        a drop that stops part-way still tells a later merge or load to rebuild. Returns the marker.
        """
        doomed: list[tuple[str, Any]] = []
        for name in DERIVED:
            folder = self.dir(name)
            if not folder.exists():
                continue
            for path in sorted(folder.iterdir(), key=lambda p: p.name):
                if not path.is_file() or (path.name.endswith(".json") and not _is_checked(path.name)):
                    continue
                doomed.append((f"{name}/{path.name}", path))
        if not doomed and self.compacted:
            return self.read_json(*COMPACTED)  # compacted already: keep what the first time dropped
        marker = {
            "dropped": [name for name, _ in doomed],
            "bytes": sum(path.stat().st_size for _, path in doomed),
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self.write_json(*COMPACTED, marker)
        for _, path in doomed:
            path.unlink()
        return marker

    def rebuilt(self) -> None:
        """The derived files are back (validate, and merge, ran again): drop the marker."""
        target = self.file(*COMPACTED)
        if target.exists():
            target.unlink()

    def size_bytes(self) -> int:
        """The run folder's size on disk (file sizes, summed)."""
        return _tree_size(self.base)


def _read_manifest(folder: Any) -> Manifest | None:
    """The manifest in a source's folder, or None when there is none."""
    target = folder / MANIFEST
    if not target.exists():
        return None
    try:
        return Manifest.from_dict(json.loads(target.read_text()))
    except (ValueError, TypeError) as exc:
        raise StagingError(f"unreadable manifest {target}: {exc}") from exc


def _is_checked(name: str) -> bool:
    prefix, suffix = CHECKED.split("{}")
    return name.startswith(prefix) and name.endswith(suffix)


@contextmanager
def _writing(target: Any) -> Iterator[None]:
    """Name the file when a write fails (``No space left on device`` alone names nothing)."""
    try:
        yield
    except OSError as exc:
        raise StagingWriteError(f"cannot write {target}: {exc.strerror or exc}") from exc


def _atomic_write(target: Path, data: bytes) -> None:
    partial = target.with_name(f".{target.name}.partial")
    try:
        with partial.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def run_key_for(moment: datetime) -> str:
    """The staging name of a run: its logical date (or, for a manual run, its run-after time)."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _run_stamp(name: str) -> datetime | None:
    try:
        return datetime.strptime(name, _RUN_KEY).replace(tzinfo=UTC)
    except ValueError:
        return None


def purge_older_than(
    root: str, days: float, now: datetime | None = None, keep: str | None = None
) -> list[str]:
    """Delete run folders older than ``days`` (by their run key), never the run ``keep``; return
    what was removed."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=days)
    base = _path(root)
    removed: list[str] = []
    if not base.exists():
        return removed
    for account in base.iterdir():
        if not account.is_dir():
            continue
        for run in account.iterdir():
            stamp = _run_stamp(run.name)
            if stamp is None or run.name == keep:
                continue
            if stamp < cutoff:
                _remove(run)
                removed.append(str(run))
    return removed


def purge_over_size(root: str, account: str, max_mb: float, keep: str | None = None) -> list[str]:
    """Delete the account's oldest run folders until its run folders total at most ``max_mb`` MB
    (2**20 bytes); return what was removed.

    Never the run ``keep`` (the current one) and never a run whose load has not finished (no
    ``load/result.json``: still running, or failed and waiting to be cleared; age retention removes
    those). Degraded runs have loaded, so they count and go like any other.
    """
    folder = _path(root) / account_name(account)
    removed: list[str] = []
    if not folder.exists():
        return removed
    runs = sorted((p for p in folder.iterdir() if _run_stamp(p.name) is not None), key=lambda p: p.name)
    sizes = {run.name: _tree_size(run) for run in runs}
    total = sum(sizes.values())
    limit = max_mb * 2**20
    for run in runs:
        if total <= limit:
            break
        if run.name == keep or not (run / "load" / "result.json").exists():
            continue
        _remove(run)
        total -= sizes[run.name]
        removed.append(str(run))
    return removed


def _tree_size(folder: Any) -> int:
    """The sizes of the files under ``folder``, summed (0 when it does not exist)."""
    if isinstance(folder, Path):
        total = 0
        for parent, _, names in os.walk(folder):
            for name in names:
                try:
                    total += os.lstat(os.path.join(parent, name)).st_size
                except FileNotFoundError:  # removed while we count
                    continue
        return total
    if not folder.exists():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _remove(folder: Any) -> None:
    if not folder.exists():
        return
    if isinstance(folder, Path):
        shutil.rmtree(folder)
    else:
        folder.rmdir(recursive=True)


def legacy_folder(account: str) -> str | None:
    """The account's folder name in the old layout (``safe_part`` of the id), None if it had none."""
    try:
        return safe_part(account)
    except StagingError:
        return None


def adopt_legacy_runs(root: str, account: str) -> list[str]:
    """Move the account's runs from its folder of the old layout into its own; return where to.

    The old layout named an account's folder ``safe_part(account)``, which gave ``shop:1`` and
    ``shop_1`` (or ``ozon_магазин`` and ``ozon_склад``) one folder. Its runs are moved once, by the
    planning task before any fetch, instead of being read under both names: a folder two ids shared
    may hold the other seller's runs, and reading it would hand them over again. Only a run's
    manifests say whose it is (``Manifest.account`` is the exact id), so a run moves when it has
    manifests, all of them name this account, and the account's own folder has no run of that key.
    Every other run stays: another account of the same old name adopts its own, and age retention
    removes the rest (among them a run two accounts wrote into). The old folder goes once empty,
    unless it is some id's name. Costs one look-up for an id whose name changed, nothing for the
    usual ids (``ozon_default`` is its own name in both layouts).
    """
    old, new = legacy_folder(account), account_name(account)
    if old is None or old == new:
        return []
    source = _path(root) / old
    if not source.exists():
        return []
    target = _path(root) / new
    moved: list[str] = []
    for run in sorted(source.iterdir(), key=lambda p: p.name):
        if _run_stamp(run.name) is None or (target / run.name).exists():
            continue
        try:
            owners = {m.account for s in SOURCES if (m := _read_manifest(run / s)) is not None}
        except StagingError:  # a manifest that does not read tells no owner: the run stays
            continue
        if owners != {account}:
            continue
        target.mkdir(parents=True, exist_ok=True)
        if isinstance(run, Path):
            run.rename(target / run.name)
        else:
            run.rename(target / run.name, recursive=True)
        moved.append(str(target / run.name))
    if isinstance(source, Path) and account_of(old) is None:
        try:
            source.rmdir()  # only when empty
        except OSError:
            pass
    return moved
