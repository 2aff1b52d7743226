"""KeyLog: row keys as 8-byte hashes, repeats found once the source is done."""

from __future__ import annotations

from ozon_inventory.keylog import KeyLog


def test_repeats_are_found_when_the_source_is_done_not_while_keys_go_by():
    log = KeyLog()
    for key in [("1", "A"), ("2", "A"), ("1", "A"), ("3", "Б"), ("1", "A")]:
        assert key not in log
        log.add(key)
    assert log.counted() == (3, frozenset({hash(("1", "A"))}))
    assert log.repeated() == frozenset({hash(("1", "A"))})
    assert log.hashes.itemsize == 8


def test_an_empty_or_single_log_repeats_nothing():
    assert KeyLog().counted() == (0, frozenset())
    one = KeyLog()
    one.add(("1",))
    assert one.counted() == (1, frozenset())
