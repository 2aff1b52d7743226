"""Row keys of a whole source in little memory: one 8-byte hash each, compared when the source is done.

A set of millions of keys (or of their hashes) costs hundreds of MB; an array of the hashes costs 8
bytes a key (docs/architecture.md, "Row keys as hashes"). The price is that nothing is known to
repeat until the source is done: :meth:`KeyLog.repeated` then names the hashes that came more than
once, and the caller resolves those few exactly (validation re-checks the suspect keys, the fetch
reads them back from staging). Hashes are Python's, so they compare only within one process.
"""

from __future__ import annotations

from array import array
from collections.abc import Hashable, Iterable

import numpy


class KeyLog:
    """The hashes of the keys added, in order; a key never counts as seen while they go by."""

    def __init__(self) -> None:
        self.hashes = array("q")

    def __contains__(self, key: object) -> bool:
        return False

    def add(self, key: Hashable) -> None:
        self.hashes.append(hash(key))

    def add_new(self, keys: Iterable[Hashable]) -> bool:
        """Add every key; none counts as seen here (a repeat is found by :meth:`repeated`)."""
        self.hashes.extend(map(hash, keys))
        return True

    def counted(self) -> tuple[int, frozenset[int]]:
        """(distinct hashes, the hashes that came more than once)."""
        if not self.hashes:
            return 0, frozenset()
        ordered = numpy.sort(numpy.frombuffer(self.hashes, dtype=numpy.int64))
        same = ordered[1:] == ordered[:-1]
        return len(ordered) - int(same.sum()), frozenset(int(h) for h in ordered[1:][same].tolist())

    def repeated(self) -> frozenset[int]:
        """The hashes that came more than once."""
        return self.counted()[1]
