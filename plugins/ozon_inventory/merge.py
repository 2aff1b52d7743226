"""Merge the validated sources into one model: the joins that span two sources.

Validate already writes each source's facts in their final, COPY-ready shape into ``model/``
(``sources.py`` declares every file and its columns); what needs a second source is declared in
``sources.JOINS`` and built here. Today that is one join: ``products.tsv`` (product_id, offer_id,
name) from the v4 items (``validated/product_skus.tsv``), each product named after the first of its
SKUs that the analytics answer names (``validated/item_names.tsv``). A product whose analytics rows
are missing gets no name (NULL), and the load keeps the name it had.

A source missing from the run is simply absent here, and ``load`` keeps that source's last good rows.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from itertools import islice
from typing import Any

from ozon_inventory.rules import NULL
from ozon_inventory.sources import JOINS, REGISTRY, Join, ModelFile, owner
from ozon_inventory.staging import StagingArea
from ozon_inventory.validate import ValidationReport, writing

_BATCH = 5000


@dataclass
class MergeResult:
    account: str
    run_key: str
    files: dict[str, int] = field(default_factory=dict)  # model file -> rows
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def merge_run(staging: StagingArea, report: ValidationReport) -> MergeResult:
    """Write the joined model files for the sources the report marks ``ok``; list every model file."""
    started = time.monotonic()
    result = MergeResult(staging.account, staging.run_key)
    ok = set(report.ok)
    for spec in REGISTRY:
        if spec.name in ok:
            written = report.sources[spec.name].files
            result.files.update({f.file: written.get(f.file, 0) for f in spec.writes if f.folder == "model"})
    for join in JOINS:
        if owner(join.base) not in ok:
            continue
        lookup = _lookup(staging, join.lookup) if owner(join.lookup) in ok else {}
        result.files[join.target.file] = _join(staging, join, lookup)
    result.duration_s = round(time.monotonic() - started, 3)
    with writing(staging.file("model", "merge.json")):
        staging.write_json("model", "merge.json", result.as_dict())
    return result


def _lookup(staging: StagingArea, file: ModelFile) -> dict[str, str]:
    """A two-column file as key -> value."""
    with staging.open_read(file.folder, file.file) as handle:
        return dict(line.split("\t", 1) for line in handle.read().splitlines())


def _join(staging: StagingArea, join: Join, lookup: dict[str, str]) -> int:
    """Stream ``join.base`` into ``join.target`` with the keys column replaced; return the rows written."""
    keys_at = join.base.columns.index(join.keys)
    take = [join.base.columns.index(c) if c in join.base.columns else -1 for c in join.target.columns]
    count = 0
    target = staging.file(join.target.folder, join.target.file)
    with (
        staging.open_read(join.base.folder, join.base.file) as src,
        writing(target),
        staging.open_write(join.target.folder, join.target.file) as out,
    ):
        while batch := list(islice(src, _BATCH)):
            lines = []
            for line in batch:
                values = line.rstrip("\n").split("\t")
                keys = values[keys_at]
                # most products have one SKU: one lookup, no generator
                found = lookup.get(keys, NULL) if "," not in keys else _first_known(lookup, keys)
                lines.append("\t".join([values[i] if i >= 0 else found for i in take]) + "\n")
            out.write("".join(lines))
            count += len(batch)
    return count


def _first_known(lookup: dict[str, str], keys: str) -> str:
    """The value of the first of the comma-separated ``keys`` that ``lookup`` knows, else NULL."""
    for key in keys.split(","):
        if key in lookup:
            return lookup[key]
    return NULL
