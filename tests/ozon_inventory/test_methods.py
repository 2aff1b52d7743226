"""The method table's row helpers."""

from __future__ import annotations

from ozon_inventory.methods import V2_STOCK_ON_WAREHOUSES, method


def test_keys_of_a_page_are_each_rows_key():
    """A page's keys, column by column, are the keys ``key_of`` gives row by row, whatever the rows hold."""
    m = method(V2_STOCK_ON_WAREHOUSES)
    assert m.row_key == ("sku", "warehouse_name")
    plain = [{"sku": 1, "warehouse_name": "A"}, {"sku": "1", "warehouse_name": "Б"}, {"warehouse_name": None}]
    odd = [*plain, "not a row", {"sku": 2.0, "warehouse_name": ["x"]}]
    for rows in (plain, odd, []):
        assert m.keys_of(rows) == [m.key_of(row) for row in rows]
    assert m.keys_of(plain) == [("1", "A"), ("1", "Б"), ("None", "None")]
