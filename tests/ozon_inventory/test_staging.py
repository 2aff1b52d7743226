"""The staging area: layout, manifests, checked pages, compaction after the load, retention by age and
by size; its source list is the registry's."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import UTC, datetime

import pytest

from ozon_inventory import sources, staging
from ozon_inventory.exceptions import StagingError
from ozon_inventory.staging import (
    Manifest,
    StagingArea,
    adopt_legacy_runs,
    legacy_folder,
    purge_older_than,
    purge_over_size,
    run_key_for,
    safe_part,
)


def test_sources_come_from_the_registry():
    assert staging.SOURCES == sources.SOURCES == tuple(s.name for s in sources.REGISTRY)


def test_layout_by_account_and_run(tmp_path):
    area = StagingArea(str(tmp_path), "ozon default/1", "manual__2026-11-22T10:00:00+00:00")
    assert area.base == tmp_path / "ozon~20default~2F1" / "manual__2026-11-22T10_00_00_00_00"
    assert StagingArea(str(tmp_path), "ozon_default", "r").base == tmp_path / "ozon_default" / "r"
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


def test_retention_by_age_never_removes_the_current_run(tmp_path):
    for key in ("20261001T000000Z", "20261002T000000Z"):
        StagingArea(str(tmp_path), "acc", key).begin("stocks")
    removed = purge_older_than(
        str(tmp_path), 30, now=datetime(2026, 11, 22, tzinfo=UTC), keep="20261002T000000Z"
    )
    assert removed == [str(tmp_path / "acc" / "20261001T000000Z")]
    assert [p.name for p in (tmp_path / "acc").iterdir()] == ["20261002T000000Z"]


def _derived(area: StagingArea) -> None:
    """What validate, merge and load leave in a run folder."""
    for folder, name, size in (
        ("validated", "product_skus.tsv", 3000),
        ("validated", "rejects.tsv", 100),
        ("model", "stock_by_warehouse.tsv", 50_000),
        ("model", "products.tsv", 2000),
    ):
        with area.open_write(folder, name) as out:
            out.write("x" * size)
    area.write_json("validated", "report.json", {"sources": {}})
    area.write_json("validated", "summary.json", {"duration_s": 1.0})
    area.write_json("model", "merge.json", {"files": {}})
    area.write_json("load", "result.json", {"status": "complete"})


def test_compact_keeps_the_raw_answers_and_small_reports(tmp_path):
    area = StagingArea(str(tmp_path), "acc", "20261122T100000Z")
    manifest = _stage(area, b'{"items": [1]}', b'{"items": []}')
    _derived(area)
    before = area.size_bytes()
    assert area.loaded and not area.compacted
    marker = area.compact()
    assert marker["dropped"] == [
        "validated/product_skus.tsv",
        "validated/rejects.tsv",
        "model/products.tsv",
        "model/stock_by_warehouse.tsv",
    ]
    assert marker["bytes"] == 55_100 and before - area.size_bytes() > 54_000  # the marker is small
    assert area.compacted and area.loaded
    left = sorted(str(p.relative_to(area.base)) for p in area.base.rglob("*") if p.is_file())
    assert left == [
        "load/result.json",
        "model/compacted.json",
        "model/merge.json",
        "stocks/manifest.json",
        "stocks/page-000001.json.gz",
        "stocks/page-000002.json.gz",
        "validated/report.json",
        "validated/summary.json",
    ]
    # the raw answers are whole and still checked against the manifest: everything can be rebuilt
    assert [raw for _, raw in area.pages(manifest)] == [b'{"items": [1]}', b'{"items": []}']
    assert area.read_json("validated", "report.json") == {"sources": {}}
    # compacting again keeps the first marker; a rebuild removes it; a re-run validate resets it too
    assert area.compact() == marker == area.read_json("model", "compacted.json")
    area.rebuilt()
    assert not area.compacted
    area.compact()
    area.reset("validated", "model", "load")
    assert not area.compacted and not area.loaded


def _run(root, account: str, key: str, mb: float, loaded: bool = True) -> None:
    area = StagingArea(str(root), account, key)
    area.begin("stocks")
    (area.dir("stocks") / "page-000001.json.gz").write_bytes(b"x" * int(mb * 2**20))
    if loaded:
        area.write_json("load", "result.json", {"status": "degraded"})


def test_retention_by_size_removes_the_oldest_loaded_runs_first(tmp_path):
    _run(tmp_path, "acc", "20261120T000000Z", 3)
    _run(tmp_path, "acc", "20261120T010000Z", 3, loaded=False)  # failed or still running: kept
    _run(tmp_path, "acc", "20261120T020000Z", 3)
    _run(tmp_path, "acc", "20261120T030000Z", 3)
    _run(tmp_path, "acc", "20261120T040000Z", 3, loaded=False)  # the current run, not loaded yet
    _run(tmp_path, "other", "20261120T000000Z", 3)  # another account's staging is its own
    (tmp_path / "acc" / "not-a-run").mkdir()
    assert purge_over_size(str(tmp_path), "acc", 16, keep="20261120T040000Z") == []
    removed = purge_over_size(str(tmp_path), "acc", 10, keep="20261120T040000Z")
    assert removed == [str(tmp_path / "acc" / "20261120T000000Z"), str(tmp_path / "acc" / "20261120T020000Z")]
    assert sorted(p.name for p in (tmp_path / "acc").iterdir()) == [
        "20261120T010000Z",
        "20261120T030000Z",
        "20261120T040000Z",
        "not-a-run",
    ]
    # however small the limit: never the current run, never a run whose load has not finished
    purge_over_size(str(tmp_path), "acc", 0.001, keep="20261120T030000Z")
    assert sorted(p.name for p in (tmp_path / "acc").iterdir()) == [
        "20261120T010000Z",
        "20261120T030000Z",
        "20261120T040000Z",
        "not-a-run",
    ]
    assert [p.name for p in (tmp_path / "other").iterdir()] == ["20261120T000000Z"]
    assert purge_over_size(str(tmp_path), "nobody", 1) == []


def test_the_size_limit_is_a_setting_like_the_others(monkeypatch):
    from ozon_inventory.config import run_settings
    from ozon_inventory.exceptions import ConfigError

    assert run_settings({}).retention_mb_per_account == 2048
    monkeypatch.setenv("AIRFLOW_VAR_OZON_INVENTORY_RETENTION_MB_PER_ACCOUNT", "512")
    assert run_settings({}).retention_mb_per_account == 512
    assert run_settings({"retention_mb_per_account": 100}).retention_mb_per_account == 100  # the param wins
    with pytest.raises(ConfigError, match="retention_mb_per_account must be a positive number of MB, got 0"):
        run_settings({"retention_mb_per_account": 0})
    with pytest.raises(ConfigError, match="retention_mb_per_account must be a number, got 'lots'"):
        run_settings({"retention_mb_per_account": "lots"})


def test_nothing_is_dropped_when_the_marker_cannot_be_written(tmp_path, monkeypatch):
    area = StagingArea(str(tmp_path), "acc", "20261122T100000Z")
    _derived(area)

    def full(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(area, "write_json", full)
    with pytest.raises(OSError, match="No space"):
        area.compact()
    assert (area.dir("model") / "stock_by_warehouse.tsv").exists() and not area.compacted


def test_accounts_the_old_layout_merged_get_folders_of_their_own(tmp_path):
    areas = {
        a: StagingArea(str(tmp_path), a, "20261122T100000Z") for a in ("shop:1", "shop_1", "Shop", "shop")
    }
    for account, area in areas.items():
        _stage(area, account.encode())
    assert len({area.base for area in areas.values()}) == 4
    for account, area in areas.items():
        manifest = area.manifest("stocks")
        assert manifest is not None and manifest.account == account
        assert [raw for _, raw in area.pages(manifest)] == [account.encode()]
    for area in areas.values():
        area.write_json("load", "result.json", {"status": "complete"})
    assert purge_over_size(str(tmp_path), "shop:1", 0.000001) == [str(areas["shop:1"].base)]
    assert areas["shop_1"].base.exists()  # the size limit of one is never another's


def _legacy(root, account: str, key: str, owner: str | None = None) -> StagingArea:
    """A run staged in the old layout: the folder ``legacy_folder(account)``, manifests of ``owner``."""
    area = StagingArea(str(root), owner or account, key)
    _stage(area, b'{"items": []}')
    old = root / legacy_folder(account) / key
    old.parent.mkdir(parents=True, exist_ok=True)
    area.base.rename(old)
    if not any(area.base.parent.iterdir()):
        area.base.parent.rmdir()
    return area


def test_the_old_layout_runs_move_to_their_own_account_once(tmp_path):
    _legacy(tmp_path, "shop:1", "20261120T000000Z")
    _legacy(tmp_path, "shop:1", "20261120T010000Z")
    _legacy(tmp_path, "shop_1", "20261120T020000Z")  # the other seller of the shared folder
    (tmp_path / "shop_1" / "20261120T030000Z").mkdir()  # a run whose fetches never completed
    _legacy(tmp_path, "Shop", "20261120T000000Z")
    assert legacy_folder("shop:1") == legacy_folder("shop_1") == "shop_1"

    moved = adopt_legacy_runs(str(tmp_path), "shop:1")
    assert moved == [str(tmp_path / "shop~3A1" / k) for k in ("20261120T000000Z", "20261120T010000Z")]
    area = StagingArea(str(tmp_path), "shop:1", "20261120T010000Z")
    assert area.manifest("stocks") is not None and area.manifest("stocks").account == "shop:1"
    assert StagingArea(str(tmp_path), "shop:1", "20261120T020000Z").previous_manifest("stocks") is not None
    # shop_1's own run stays in its folder (also its name now), as does the run nobody owns
    assert sorted(p.name for p in (tmp_path / "shop_1").iterdir()) == ["20261120T020000Z", "20261120T030000Z"]
    assert StagingArea(str(tmp_path), "shop_1", "20261120T020000Z").manifest("stocks").account == "shop_1"
    assert adopt_legacy_runs(str(tmp_path), "shop_1") == []  # its name is its old folder: nothing to do
    assert adopt_legacy_runs(str(tmp_path), "shop:1") == []  # once

    assert adopt_legacy_runs(str(tmp_path), "Shop") == [str(tmp_path / "~53hop" / "20261120T000000Z")]
    assert not (tmp_path / "Shop").exists()  # the old folder, now empty and no id's name, goes


def test_a_run_two_accounts_wrote_into_or_a_taken_key_stays(tmp_path):
    first = _legacy(tmp_path, "ozon_магазин", "20261120T000000Z")
    assert legacy_folder("ozon_магазин") == legacy_folder("ozon_склад") == "ozon"
    # the other seller's fetch wrote a source of the same run into the shared folder
    mixed = tmp_path / "ozon" / "20261120T000000Z" / "warehouses"
    mixed.mkdir()
    theirs = Manifest("ozon_склад", "20261120T000000Z", "warehouses", "/v2/warehouse/list", "", "")
    (mixed / "manifest.json").write_text(json.dumps(theirs.as_dict()))
    _legacy(tmp_path, "ozon_магазин", "20261120T010000Z")
    StagingArea(str(tmp_path), "ozon_магазин", "20261120T010000Z").begin("stocks")  # already in its folder
    assert adopt_legacy_runs(str(tmp_path), "ozon_магазин") == []
    assert adopt_legacy_runs(str(tmp_path), "ozon_склад") == []
    assert sorted(p.name for p in (tmp_path / "ozon").iterdir()) == ["20261120T000000Z", "20261120T010000Z"]
    assert first.manifest("stocks") is None  # nothing of the mixed run reached either account


def test_no_old_folder_or_no_old_name_moves_nothing(tmp_path):
    assert adopt_legacy_runs(str(tmp_path), "shop:1") == []
    assert adopt_legacy_runs(str(tmp_path), "///") == []  # the old layout had no folder for it
    assert legacy_folder("///") is None
