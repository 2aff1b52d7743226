"""The staging area: Ozon's raw answers and the files built from them, laid out by account and run.

``{root}/{account}/{run_key}/{source}/page-000001.json.gz`` holds each answer exactly as received
(gzip-compressed), and ``manifest.json`` beside the pages is written last, so a source counts as
fetched only when its manifest exists. ``validated/`` and ``model/`` hold the COPY-ready files of the
later tasks. The root is a local folder or any fsspec / ObjectStoragePath URL (``s3://conn@bucket/x``).
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
from ozon_inventory.sources import SOURCES

__all__ = ["MANIFEST", "SOURCES", "Manifest", "StagingArea", "purge_older_than", "run_key_for", "safe_part"]
MANIFEST = "manifest.json"
_SAFE = re.compile(r"[^A-Za-z0-9._=-]+")


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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def safe_part(value: str) -> str:
    """A path segment from an account or run id ("ozon_default", "manual__2026-…")."""
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
        self.base = _path(root) / safe_part(account) / safe_part(run_key)

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

    def write_page(self, source: str, number: int, raw: bytes) -> tuple[str, int]:
        name = f"page-{number:06d}.json.gz"
        target = self.dir(source) / name
        with _writing(target), target.open("wb") as handle:
            handle.write(gzip.compress(raw, compresslevel=1))
        return name, len(raw)

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
        target = self.dir(source) / MANIFEST
        if not target.exists():
            return None
        try:
            return Manifest.from_dict(json.loads(target.read_text()))
        except (ValueError, TypeError) as exc:
            raise StagingError(f"unreadable manifest {target}: {exc}") from exc

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

    def pages(self, manifest: Manifest) -> Iterator[tuple[str, bytes]]:
        """The staged raw answers in order, checked against the manifest's checksum.

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
        if digest.hexdigest() != manifest.sha256:
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


def purge_older_than(root: str, days: float, now: datetime | None = None) -> list[str]:
    """Delete run folders older than ``days`` (by their run key); return what was removed."""
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
            try:
                stamp = datetime.strptime(run.name, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            except ValueError:
                continue
            if stamp < cutoff:
                _remove(run)
                removed.append(str(run))
    return removed


def _remove(folder: Any) -> None:
    if not folder.exists():
        return
    if isinstance(folder, Path):
        shutil.rmtree(folder)
    else:
        folder.rmdir(recursive=True)
