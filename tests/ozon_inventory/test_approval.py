"""What the load asks of approve_shrink's record: a stop loads only once approved."""

from __future__ import annotations

from ozon_inventory.approval import DECISION, body, record_stop, unapproved
from ozon_inventory.exceptions import ShrinkGuardError
from ozon_inventory.staging import StagingArea

FIGURES = [
    {"source": "stocks", "unit": "products", "before": 1000, "after": 120},
    {"source": "warehouse_stocks", "unit": "rows", "before": 5200, "after": 610},
]


def test_a_stop_loads_only_once_approved(tmp_path):
    staging = StagingArea(str(tmp_path), "acc", "20261122T100000Z")
    assert unapproved(staging) is None  # nothing stopped
    record_stop(staging, ShrinkGuardError("snapshot shrank by more than 50 % (…)", FIGURES))
    assert (
        unapproved(staging)
        == "snapshot shrank by more than 50 % (…) The load of this run was not approved (no decision yet)."
    )
    staging.write_json("validated", DECISION, {"decision": "refused", "by": "ops", "at": "…"})
    assert "not approved (refused)" in unapproved(staging)
    staging.write_json("validated", DECISION, {"decision": "approved", "by": "ops", "at": "…"})
    assert unapproved(staging) is None


def test_the_request_shows_each_sources_figures():
    text = body("shop:1", "20261122T100000Z", {"figures": FIGURES})
    assert "account **shop:1**, run `20261122T100000Z`" in text
    assert "| stocks | products | 1,000 | 120 | -88% |" in text
    assert "| warehouse_stocks | rows | 5,200 | 610 | -88% |" in text
    assert "**Approve**" in text and "**Reject**" in text
