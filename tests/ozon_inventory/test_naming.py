"""Account ids as names: injective (also folded to one case), reversible, one safe path segment,
a valid asset URI; long ids bounded; the usual ids unchanged."""

from __future__ import annotations

import random
import string
from pathlib import Path
from urllib.parse import quote, unquote

import pytest

from ozon_inventory import naming
from ozon_inventory.naming import LONG_MARK, MAX_NAME, account_name, account_of, clashes

#: ids Airflow tells apart (and that the old folder naming merged), plus what a path or URI cannot hold
TRICKY = [
    "shop:1",
    "shop_1",
    "shop-1",
    "shop.1",
    "ozon_магазин",
    "ozon_склад",
    "Shop",
    "shop",
    "SHOP",
    "seller/east",
    "seller\\east",
    "seller_east",
    "..",
    ".",
    "...",
    "../etc",
    "a/../b",
    "shop#2",
    "shop%232",
    "shop~232",
    "shop%2",
    "shop~2",
    "a~~b",
    "my shop",
    "my  shop",
    " lead",
    "trail ",
    "_under_",
    "tab\there",
    "new\nline",
    "nul\x00byte",
    "~tilde",
    "percent%",
    "emoji😀",
    "e\u0301",  # e + combining acute
    "\u00e9",  # é precomposed: another id
    "(x)!",
    "CON",
    "a=b",
]
ALPHABET = string.ascii_letters + string.digits + "_-.:/\\#!() %~" + "абвгдеёжзийАБВГДЁ" + "é😀"


def _random_ids(count: int, seed: int = 29) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 12))) for _ in range(count)]


def test_the_usual_ids_are_their_own_names():
    for account in ("ozon_default", "ozon_second", "shop-2", "acc", "a1_b2-c3"):
        assert account_name(account) == account
        assert account_of(account) == account


def test_the_names_the_old_folders_merged_are_apart():
    assert account_name("shop:1") == "shop~3A1" and account_name("shop_1") == "shop_1"
    assert account_name("ozon_магазин") == "ozon_~D0~BC~D0~B0~D0~B3~D0~B0~D0~B7~D0~B8~D0~BD"
    assert account_name("ozon_магазин") != account_name("ozon_склад")
    assert account_name("Shop") == "~53hop" and account_name("shop") == "shop"
    assert account_name("..") == "~2E~2E" and account_name("seller/east") == "seller~2Feast"
    assert account_name("shop%1") == "shop~251" and account_name("a~b") == "a~7Eb"


def test_injective_even_folded_to_one_case():
    ids = sorted(set(TRICKY + _random_ids(20_000)))
    names = [account_name(a) for a in ids]
    assert len(set(names)) == len(ids)
    assert len({n.lower() for n in names}) == len(ids)
    assert len({n.upper() for n in names}) == len(ids)
    assert clashes(ids) == []


def test_round_trip():
    for account in TRICKY + _random_ids(5_000, seed=7):
        name = account_name(account)
        assert account_of(name) == account, (account, name)
        assert account_name(account) == name  # the same id always gets the same name


def test_what_is_no_name_gives_no_id():
    # the old layout's folders, hand-typed ids, non-canonical escapes, broken UTF-8, a long id's name
    for text in (
        "Shop",
        "shop:1",
        "shop~3a1",
        "~73hop",
        "~FF",
        "~D0",
        "x~",
        "~zz",
        "",
        "a~~b",
        "ozon.x",
        "shop%3A1",
    ):
        assert account_of(text) is None, text
    assert account_of(account_name("ю" * 60)) is None


def test_every_name_is_one_safe_path_segment(tmp_path):
    ids = sorted(set(TRICKY + _random_ids(2_000, seed=3)))
    allowed = set(naming.SAFE) | set("~0123456789ABCDEF") | set("abcdef")
    for account in ids:
        name = account_name(account)
        assert name.isascii() and set(name) <= allowed, name
        assert name not in (".", "..") and not name.startswith(".") and 0 < len(name) <= MAX_NAME
        assert unquote(name) == name == quote(name, safe="")  # a URL carries it as it is, decoded or not
        folder = tmp_path / name
        folder.mkdir()  # one new folder right under the root, never elsewhere, never an existing one
        assert folder.resolve().parent == tmp_path.resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(account_name(a) for a in ids)


def _spec(account: str) -> str:
    """The encoding as the module's docstring states it: UTF-8 bytes percent-encoded with ~ for %,
    capitals in the escapes, only a-z 0-9 _ - as themselves."""
    keep = set(string.ascii_lowercase + string.digits + "_-")
    return "".join(c if c in keep else "".join(f"~{b:02X}" for b in c.encode()) for c in account)


def test_names_follow_the_stated_encoding():
    for account in TRICKY + _random_ids(2_000, seed=11):
        assert account_name(account) == _spec(account)


def test_long_ids_get_a_bounded_name_apart_from_every_other():
    long_ids = ["ozon_" + "магазин" * 20, "ozon_" + "магазин" * 20 + "2", "я" * 250, "😀" * 250, "x" * 250]
    long_ids += ["ozon_" + "д" * n for n in range(30, 60)]  # cuts falling in every spot of an escape
    names = [account_name(a) for a in long_ids]
    assert len(set(names)) == len(long_ids) and len({n.lower() for n in names}) == len(long_ids)
    hashed = 0
    for account, name in zip(long_ids, names, strict=True):
        full = _spec(account)
        if len(full) <= MAX_NAME:
            assert name == full and account_of(name) == account
            continue
        hashed += 1
        head, mark, digest = name.rpartition(LONG_MARK)
        assert mark and len(digest) == 64 and len(name) <= MAX_NAME
        assert full.startswith(head) and (full[len(head)] == "~" or full[len(head)] in naming.SAFE)
        assert account_of(name) is None  # a hashed name is not reversed
    assert hashed > 20
    assert account_name("x" * MAX_NAME) == "x" * MAX_NAME  # the longest name still is the id
    assert LONG_MARK in account_name("x" * (MAX_NAME + 1))


def test_a_name_makes_a_valid_asset_uri():
    from airflow.models.asset import AssetModel

    from ozon_inventory.tasks import stock_asset

    for account in [*TRICKY, "ozon_" + "магазин" * 30, "😀" * 250]:
        asset = stock_asset(account)
        assert asset.uri == f"ozon-inventory://{account_name(account)}/"
        AssetModel(name=asset.name, uri=asset.uri)  # what Airflow builds when it records the event
    assert stock_asset("ozon_default").uri == "ozon-inventory://ozon_default/"  # as before the encoding


def test_empty_id_has_no_name():
    with pytest.raises(ValueError, match="cannot be empty"):
        account_name("")


def test_clashes_names_the_ids_whose_names_meet(monkeypatch):
    from ozon_inventory.staging import safe_part

    monkeypatch.setattr(naming, "account_name", safe_part)  # the old, lossy folder naming
    assert clashes(["shop:1", "shop_1", "ozon_магазин", "ozon_склад", "fine"]) == [
        ("shop:1", "shop_1"),
        ("ozon_магазин", "ozon_склад"),
    ]


def test_path_module_joins_a_name_as_one_part():
    for account in TRICKY:
        assert Path("/root", account_name(account)).parts == ("/", "root", account_name(account))
