"""A small run of the benchmark (1,000 products) keeps it working; its figures are not asserted as speeds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_small_benchmark_runs_and_history_matches_real_changes(tmp_path):
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "benchmark.py"),
            "--sizes",
            "1000",
            "--latency",
            "0",
            "--rate",
            "500",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "load vs raw COPY" in done.stdout and "peak memory of any stage" in done.stdout
    (result,) = json.loads(out.read_text())
    first, changed, unchanged = result["runs"]
    assert first["stages"]["fetch_stocks"]["rows"] == 1000
    # the 1% run writes exactly the rows that changed; the unchanged run writes none
    added, removed = changed["really_changed"]
    assert added > 0 and changed["stages"]["load"]["history_opened"] == added
    assert changed["stages"]["load"]["history_closed"] == removed
    assert unchanged["stages"]["load"]["history_opened"] == 0 == unchanged["stages"]["load"]["history_closed"]
    # the minimal one-pass pipeline read the same rows; the ratio is reported, not asserted as a speed
    assert "vs the minimal one-pass pipeline" in done.stdout
    stages = first["stages"]
    assert first["minimal"]["rows"] == stages["load"]["rows"] - stages["fetch_warehouses"]["rows"]
    assert first["minimal"]["products"] == 1000 and first["minimal"]["mismatches"] == 0
    assert result["processing_vs_minimal"] > 0
    # once loaded, a run folder keeps its raw answers and small reports
    assert 0 < result["staged_mb_after_load"] < first["compaction"]["staged_mb_before"]
    assert result["staged_mb_after_load"] <= first["compaction"]["raw_mb"] + 0.1


def test_model_tables_come_from_the_registry():
    from ozon_inventory import sources
    from scripts.benchmark import MODEL_TABLES

    expected = {
        "stock_by_type.tsv": ("ozon_stock_by_type_history", ", ".join(sources.STOCK_BY_TYPE.columns)),
        "stock_by_warehouse.tsv": (
            "ozon_stock_by_warehouse_history",
            ", ".join(sources.STOCK_BY_WAREHOUSE.columns),
        ),
        "products.tsv": ("ozon_product", ", ".join(sources.PRODUCTS.columns)),
    }
    assert expected == MODEL_TABLES
