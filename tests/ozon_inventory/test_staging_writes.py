"""Staging writes: the manifest is whole or absent, and a failed write names its file."""

from __future__ import annotations

import os

import pytest

from ozon_inventory.exceptions import StagingWriteError
from ozon_inventory.staging import MANIFEST, Manifest, StagingArea


def test_a_manifest_that_cannot_be_written_leaves_no_empty_file(tmp_path, monkeypatch):
    staging = StagingArea(str(tmp_path), "acc", "20261124T000000Z")
    staging.begin("stocks")
    manifest = Manifest("acc", "20261124T000000Z", "stocks", "/v4/product/info/stocks", "2026-11-24", "x")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(
        StagingWriteError, match=rf"cannot write .*stocks/{MANIFEST}: No space left on device"
    ):
        staging.write_manifest(manifest)
    assert list(staging.dir("stocks").iterdir()) == []  # neither a 0-byte manifest nor a partial file
    assert staging.manifest("stocks") is None
    monkeypatch.undo()
    staging.write_manifest(manifest)
    assert staging.manifest("stocks") == manifest


def test_a_page_write_failure_names_the_file(tmp_path):
    staging = StagingArea(str(tmp_path), "acc", "20261124T000000Z")
    folder = staging.begin("stocks")
    os.chmod(folder, 0o500)
    try:
        if os.access(folder, os.W_OK):  # root ignores permissions: make the target a folder instead
            (folder / "page-000001.json.gz").mkdir()
        with pytest.raises(StagingWriteError, match=r"cannot write .*page-000001\.json\.gz"):
            staging.write_page("stocks", 1, b"{}")
    finally:
        os.chmod(folder, 0o700)
