"""The staging area: layout, manifests, checked pages, retention; its source list is the registry's."""

from __future__ import annotations

import gzip
import hashlib
from datetime import UTC, datetime

import pytest

from ozon_inventory import sources, staging
from ozon_inventory.exceptions import StagingError
from ozon_inventory.staging import Manifest, StagingArea, purge_older_than, run_key_for, safe_part


def test_sources_come_from_the_registry():
    assert staging.SOURCES == sources.SOURCES == tuple(s.name for s in sources.REGISTRY)


def test_layout_by_account_and_run(tmp_path):
    area = StagingArea(str(tmp_path), "ozon default/1", "manual__2026-11-22T10:00:00+00:00")
    assert area.base == tmp_path / "ozon_default_1" / "manual__2026-11-22T10_00_00_00_00"
    assert safe_part("acc") == "acc"
    with pytest.raises(StagingError, match="cannot make a staging folder name"):
        safe_part("///")
    assert run_key_for(datetime(2026, 11, 22, 13, 0, tzinfo=UTC)) == "20261122T130000Z"


def _stage(area: StagingArea, *pages: bytes) -> Manifest:
    area.begin("stocks")
    manifest = Manifest(area.account, area.run_key, "stocks", "/v4/product/info/stocks", "2026-11-22", "")
    digest = hashlib.sha256()
    for number, raw in enumerate(pages, start=1):
        name, _ = area.write_page("stocks", number, raw)
        manifest.files.append(name)
        digest.update(raw)
    manifest.sha256 = digest.hexdigest()
    area.write_manifest(manifest)
    return manifest


def test_pages_come_back_as_staged_and_checked(tmp_path):
    area = StagingArea(str(tmp_path), "acc", "20261122T100000Z")
    manifest = _stage(area, b'{"items": [1]}', b'{"items": []}')
    assert area.manifest("stocks") == manifest
    assert [raw for _, raw in area.pages(manifest)] == [b'{"items": [1]}', b'{"items": []}']
    (area.dir("stocks") / manifest.files[1]).write_bytes(gzip.compress(b'{"items": [2]}'))
    with pytest.raises(StagingError, match="do not match their manifest's checksum"):
        list(area.pages(manifest))
    (area.dir("stocks") / manifest.files[0]).write_bytes(b"not gzip")
    with pytest.raises(StagingError, match="page-000001.json.gz is missing or damaged"):
        list(area.pages(manifest))


def test_a_source_without_manifest_was_not_fetched(tmp_path):
    area = StagingArea(str(tmp_path), "acc", "20261122T100000Z")
    assert area.manifest("stocks") is None
    area.begin("stocks")
    (area.dir("stocks") / "manifest.json").write_text("{broken")
    with pytest.raises(StagingError, match="unreadable manifest"):
        area.manifest("stocks")


def test_derived_files_are_written_read_and_reset(tmp_path):
    area = StagingArea(str(tmp_path), "acc", "20261122T100000Z")
    with area.open_write("model", "x.tsv") as out:
        out.write("a\tb\n")
    with area.open_read("model", "x.tsv") as handle:
        assert handle.read() == "a\tb\n"
    area.write_json("validated", "report.json", {"Ключ": 1})
    assert area.read_json("validated", "report.json") == {"Ключ": 1}
    area.reset("model")
    with pytest.raises(StagingError, match=r"x.tsv is missing: run the task that writes it again"):
        area.open_read("model", "x.tsv")


def test_the_previous_manifest_is_the_latest_earlier_run(tmp_path):
    for key in ("20261122T080000Z", "20261122T090000Z"):
        _stage(StagingArea(str(tmp_path), "acc", key), b"{}")
    now = StagingArea(str(tmp_path), "acc", "20261122T100000Z")
    previous = now.previous_manifest("stocks")
    assert previous is not None and previous.run_key == "20261122T090000Z"


def test_retention_removes_only_old_run_folders(tmp_path):
    for key in ("20261001T000000Z", "20261121T000000Z"):
        StagingArea(str(tmp_path), "acc", key).begin("stocks")
    (tmp_path / "acc" / "not-a-run").mkdir()
    removed = purge_older_than(str(tmp_path), 30, now=datetime(2026, 11, 22, tzinfo=UTC))
    assert removed == [str(tmp_path / "acc" / "20261001T000000Z")]
    assert sorted(p.name for p in (tmp_path / "acc").iterdir()) == ["20261121T000000Z", "not-a-run"]
