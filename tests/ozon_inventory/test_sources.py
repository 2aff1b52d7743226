"""The registry: every spec is whole, and what it names exists (methods, SQL sections, temp tables)."""

from __future__ import annotations

import re

import pytest

from ozon_inventory import sources
from ozon_inventory.exceptions import ConfigError
from ozon_inventory.methods import AUTO_ORDER, METHODS
from ozon_inventory.sources import CHECKS, JOINS, REGISTRY, REJECTS, SOURCES, ModelFile, owner, spec
from ozon_inventory.sql import statements

HISTORY_STEPS = (
    "has_current",
    "first",
    "diff_table",
    "diff_new",
    "diff_vanished",
    "count_current",
    "count_new",
    "close",
    "open",
    "hold",
    "has_held",
    "confirm",
)


def test_every_method_a_fetch_can_use_has_row_rules_and_every_rule_a_method():
    """A method added to a source's plan (methods.AUTO_ORDER) needs its row rules here first."""
    assert set(SOURCES) == set(AUTO_ORDER)
    for source in SOURCES:
        assert set(spec(source).methods) == set(AUTO_ORDER[source])
        assert all(METHODS[path].source == source for path in spec(source).methods)


def test_every_sql_section_a_spec_names_is_in_load_sql():
    sql = statements("load")
    for source in REGISTRY:
        for file in source.loads:
            assert f"temp_{file.name}" in sql, file
        for table in source.history:
            for step in HISTORY_STEPS:
                assert f"{step}_{table.name}" in sql
        for name in source.apply:
            assert name in sql
    assert "temp_rejects" in sql


def test_temp_tables_have_exactly_the_declared_columns(pg_conn):
    sql = statements("load")
    files = {f.name: f for s in REGISTRY for f in s.loads} | {REJECTS.name: REJECTS}
    with pg_conn.transaction():
        for file in files.values():
            pg_conn.execute(sql[f"temp_{file.name}"])
            columns = pg_conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 ORDER BY attnum",
                (f"pg_temp.{file.table}",),
            ).fetchall()
            assert tuple(c for (c,) in columns) == file.columns
            assert file.copy_sql() == f"COPY tmp_{file.name} ({', '.join(file.columns)}) FROM STDIN"


def test_model_files_are_loaded_and_merge_inputs_are_not():
    for source in REGISTRY:
        for file in source.writes:
            loaded = file in source.loads
            assert loaded == (file.folder == "model"), file
        assert source.rows in source.writes and set(source.holds) <= set(source.loads)
        assert set(source.history) <= set(source.loads)


def test_a_join_replaces_its_keys_column_with_the_looked_up_value():
    for join in JOINS:
        assert len(join.lookup.columns) == 2
        expected = tuple(join.lookup.columns[1] if c == join.keys else c for c in join.base.columns)
        assert join.target.columns == expected
        assert join.target in spec(owner(join.base)).loads  # loaded with its base's source


def test_checks_compare_two_registered_sources():
    for check in CHECKS:
        assert check.expected[0] in SOURCES and check.actual[0] in SOURCES
        assert check.expected[0] != check.actual[0]


def test_shrink_and_ledger_counts_name_what_the_state_holds():
    for source in REGISTRY:
        assert source.shrink is None or source.shrink.count in ("products", "rows")
        assert set(source.counts.values()) <= {"products", "rows"}
    figures = [f for s in REGISTRY for f in s.counts]
    assert sorted(figures) == ["products", "stock_rows", "warehouse_rows"]


def test_not_provided_columns_are_columns_of_the_file():
    for source in REGISTRY:
        for rules in source.methods.values():
            assert rules.not_provided <= set(source.rows.columns)


def test_lookups_fail_with_what_is_known():
    with pytest.raises(ConfigError, match="unknown source 'nope'"):
        spec("nope")
    with pytest.raises(ConfigError, match="no source writes x.tsv"):
        owner(ModelFile("x", ("a",)))
    with pytest.raises(ConfigError, match=r"account a, run r: stocks was fetched with /v9/x"):
        spec("stocks").method_rows("/v9/x", "account a, run r: ")


def test_stage_modules_do_not_name_sources():
    """validate, merge and load iterate the registry: no source name, no file name in their code."""
    import inspect

    from ozon_inventory import load, merge, validate

    names = {*SOURCES, *(f.name for s in REGISTRY for f in s.writes)}
    for module in (validate, merge, load):
        code = inspect.getsource(module)
        code = re.sub(r'"""[\s\S]*?"""', "", code)  # docstrings may explain
        code = re.sub(r"#.*", "", code)
        found = {n for n in names if re.search(rf"[\"']{n}(\.tsv)?[\"']", code)}
        assert not found, f"{module.__name__} names {found}"


def test_the_registry_is_checked_against_the_method_table(monkeypatch):
    broken = sources.SourceSpec(
        name="stocks",
        methods={"/v2/warehouse/list": sources.MethodRows(sources.seller_warehouse)},
        rows=sources.SELLER_WAREHOUSES,
        writes=(),
        loads=(),
    )
    monkeypatch.setattr(sources, "REGISTRY", (broken,))
    with pytest.raises(ConfigError, match="not one of its methods"):
        sources._check_registry()
