"""The staging area under attack: damaged, truncated and deleted pages and manifests, a full disk, read-only.

Damaged staging never loads: the error names the file and says to fetch again (permanent for that
run: another try of validate would read the same bytes); a full or read-only disk names the file and
is worth retrying once the operator fixes it. The previous snapshot stays whole meanwhile.
"""

from __future__ import annotations

import errno
import gzip
import os
import subprocess
from pathlib import Path

import pytest

from ozon_inventory.staging import MANIFEST
from tests.fault_matrix.conftest import assert_names, permanent


def first_page(staging, source: str = "stocks") -> Path:
    return staging.dir(source) / "page-000001.json.gz"


def flip_bytes(path: Path, start: int | None = None) -> None:
    """Flip 16 bytes: at the head of the deflate stream (zlib.error), or mid-file (a CRC mismatch)."""
    data = bytearray(path.read_bytes())
    start = len(data) // 2 if start is None else start
    for i in range(start, start + 16):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


#: Damage done after the fetch (source, what, the error's regex).
DAMAGE = {
    "page-deflate-stream-corrupted": (
        "stocks",
        lambda s: flip_bytes(first_page(s), 12),
        r"staged answer .*/stocks/page-000001\.json\.gz is missing or damaged: it does not decompress \(error: Error -3 while "
        r"decompressing.*\); fetch stocks again \(clear fetch_stocks with its downstream tasks\)",
    ),
    "page-crc-mismatch": (
        "stocks",
        lambda s: flip_bytes(first_page(s)),
        r"staged answer .*/stocks/page-000001\.json\.gz is missing or damaged: it does not decompress .*; fetch stocks again",
    ),
    "page-truncated": (
        "warehouse_stocks",
        lambda s: truncate(first_page(s, "warehouse_stocks")),
        r"staged answer .*/warehouse_stocks/page-000001\.json\.gz is missing or damaged: it does not decompress "
        r"\(EOFError: Compressed file ended.*\); fetch warehouse_stocks again",
    ),
    "page-not-gzip": (
        "stocks",
        lambda s: first_page(s).write_bytes(b'{"items": []}'),
        r"staged answer .*/stocks/page-000001\.json\.gz is missing or damaged: it does not decompress .*; fetch stocks again",
    ),
    "page-deleted": (
        "stocks",
        lambda s: first_page(s).unlink(),
        r"staged answer .*/stocks/page-000001\.json\.gz is missing or damaged: the file is gone; fetch stocks again",
    ),
    "page-replaced-by-other-answer": (
        "stocks",
        lambda s: first_page(s).write_bytes(gzip.compress(b'{"items": [], "cursor": ""}')),
        r"staged answers of stocks in .*/stocks do not match their manifest's checksum: re-run the fetch",
    ),
    "manifest-garbage": (
        "warehouses",
        lambda s: (s.dir("warehouses") / MANIFEST).write_bytes(b"\x00\xffnot json"),
        rf"unreadable manifest .*/warehouses/{MANIFEST}",
    ),
    "manifest-truncated": (
        "stocks",
        lambda s: truncate(s.dir("stocks") / MANIFEST),
        rf"unreadable manifest .*/stocks/{MANIFEST}",
    ),
    "manifest-empty": (
        "stocks",
        lambda s: (s.dir("stocks") / MANIFEST).write_bytes(b""),
        rf"unreadable manifest .*/stocks/{MANIFEST}",
    ),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_staging_never_loads_and_names_the_file(matrix, case):
    _source, damage, cause = DAMAGE[case]
    matrix.good_run()
    matrix.catalogue.change_stock(0.05, seed=10)
    before = matrix.state()
    key = matrix.next_key()
    result = matrix.run(key, between=damage)
    assert result.error is not None and result.loaded is None, result.text
    assert_names(cause, str(result.error))
    assert permanent(result.error), f"{type(result.error).__name__} would be retried: {result.error}"
    matrix.assert_unchanged(before)
    # the operator fetches the run again (clears the fetch with its downstream tasks)
    matrix.good_run(run_key=key)
    matrix.assert_recovered()


def test_deleted_manifest_degrades_only_its_source(matrix):
    """Without its manifest a source counts as not fetched: its last good rows stay, the rest loads."""
    matrix.good_run()
    matrix.catalogue.change_stock(0.05, seed=11)
    before = matrix.state()
    key = matrix.next_key()
    result = matrix.run(key, between=lambda s: (s.dir("warehouse_stocks") / MANIFEST).unlink())
    assert result.degraded and result.loaded.missing == ["warehouse_stocks"], result.text
    matrix.assert_unchanged(before, ("stock_by_warehouse", "ozon_warehouses"))
    matrix.good_run(run_key=key)
    matrix.assert_recovered()


def test_d7_disk_full_while_the_manifest_is_written(matrix, monkeypatch):
    """The manifest is written atomically: a full disk leaves none, never a 0-byte one that blocks later runs."""
    matrix.good_run()
    before = matrix.state()

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", full_disk)
        result = matrix.run()
    error = result.fetch_errors["stocks"]
    assert_names(rf"cannot write .*/stocks/{MANIFEST}: No space left on device", str(error))
    assert not permanent(error)  # once space is freed, a retry succeeds
    matrix.assert_unchanged(before)
    staging = matrix.staging(result.run_key)
    assert not (staging.dir("stocks") / MANIFEST).exists()
    assert [p.name for p in staging.dir("stocks").iterdir() if p.name.startswith(".")] == []
    matrix.good_run()  # the next run reads the previous run's staging without tripping on it
    matrix.assert_recovered()


@pytest.fixture
def mounted(matrix):
    """Mount helpers for the staging root (tmpfs, read-only bind); skipped where mounting is not allowed."""
    root = matrix.staging_root
    root.mkdir(parents=True, exist_ok=True)
    mounts: list[Path] = []

    def mount(*args: str) -> None:
        done = subprocess.run(["mount", *args, str(root)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount here: {done.stderr.strip()}")
        mounts.append(root)

    yield mount
    for path in reversed(mounts):
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte: unbuffered, in ever smaller writes, so no
    byte is left over for the close to write (how much space is left depends on what ran before)."""
    filler = folder / "filler.bin"
    with filler.open("wb", buffering=0) as handle:
        size = 65536
        while size:
            try:
                handle.write(b"\0" * size)
            except OSError:
                size //= 2
    return filler


def test_disk_full_while_pages_are_fetched(matrix, mounted):
    mounted("-t", "tmpfs", "-o", "size=8m", "tmpfs")
    matrix.good_run()
    before = matrix.state()
    filler = fill(matrix.staging_root)
    result = matrix.run()
    assert result.loaded is None, result.text
    for source, error in result.fetch_errors.items():
        assert_names(
            rf"cannot write .*/{source}/(page-000001\.json\.gz|{MANIFEST}): No space left on device",
            str(error),
        )
        assert not permanent(error)
    matrix.assert_unchanged(before)
    filler.unlink()
    matrix.good_run()
    matrix.assert_recovered()


def test_disk_full_while_validating(matrix, mounted):
    mounted("-t", "tmpfs", "-o", "size=8m", "tmpfs")
    matrix.good_run()
    before = matrix.state()
    fillers: list[Path] = []
    key = matrix.next_key()
    result = matrix.run(key, between=lambda s: fillers.append(fill(matrix.staging_root)))
    assert result.error is not None and result.loaded is None, result.text
    assert_names(r"cannot write .*/acc/\w+/(validated|model)/\S+: No space left on device", str(result.error))
    assert not permanent(result.error)
    matrix.assert_unchanged(before)
    fillers[0].unlink()
    matrix.good_run(run_key=key)
    matrix.assert_recovered()


def test_read_only_staging_before_the_fetch(matrix, mounted):
    matrix.good_run()
    before = matrix.state()
    mounted("--bind", str(matrix.staging_root))
    mounted("-o", "remount,bind,ro")
    result = matrix.run()
    assert result.loaded is None, result.text
    for error in result.fetch_errors.values():
        assert_names(r"Read-only file system.*/staging/acc/\w+", str(error))
        assert not permanent(error)
    matrix.assert_unchanged(before)
    subprocess.run(["umount", "-l", str(matrix.staging_root)], check=False)
    subprocess.run(["umount", "-l", str(matrix.staging_root)], check=False)
    matrix.good_run()
    matrix.assert_recovered()


def test_read_only_staging_after_the_fetch(matrix, mounted):
    matrix.good_run()
    before = matrix.state()
    key = matrix.next_key()

    def read_only(_staging):
        mounted("--bind", str(matrix.staging_root))
        mounted("-o", "remount,bind,ro")

    result = matrix.run(key, between=read_only)
    assert result.error is not None and result.loaded is None, result.text
    assert_names(r"(?=.*Read-only file system)(?=.*/staging/acc/\w+/(validated|model)/)", str(result.error))
    assert not permanent(result.error)
    matrix.assert_unchanged(before)
    subprocess.run(["umount", "-l", str(matrix.staging_root)], check=False)
    subprocess.run(["umount", "-l", str(matrix.staging_root)], check=False)
    matrix.good_run(run_key=key)
    matrix.assert_recovered()


def test_model_file_deleted_before_the_load(matrix):
    matrix.good_run()
    matrix.catalogue.change_stock(0.05, seed=12)
    before = matrix.state()
    key = matrix.next_key()

    def lose_model(staging):
        for path in staging.dir("model").iterdir():
            if "warehouse" in path.name:
                path.unlink()

    result = matrix.run(key, before_load=lose_model)
    assert result.error is not None and result.loaded is None, result.text
    assert_names(
        r"account acc, run \w+: \S+/model/\S*warehouse\S* is missing: run validate and merge again "
        r"\(clear validate with its downstream tasks\)",
        str(result.error),
    )
    assert permanent(result.error)
    matrix.assert_unchanged(before)
    matrix.good_run(run_key=key)
    matrix.assert_recovered()
