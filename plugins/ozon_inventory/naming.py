"""An account id as a name: the one encoding used wherever an id becomes part of a name.

An account is an Airflow connection id, and Airflow tells apart ids that a file system, an object
store or a URI cannot hold as they are: ``shop:1`` and ``shop_1``, ``Shop`` and ``shop`` (one folder
on a disk that ignores case), ``ozon_магазин``, ``a/b``, ``..``. Every name made from an id (its
staging folder and so its object-store keys, its asset URI, its route in the UI, the id in a
``key=value`` log line) is :func:`account_name`: percent-encoding of the id's UTF-8 bytes with ``~``
in place of ``%``, where only ``a-z``, ``0-9``, ``_`` and ``-`` stand for themselves (capitals are
escaped too) and escapes are in capitals: ``shop:1`` is ``shop~3A1``, ``Shop`` is ``~53hop``.
Hence:

- two ids never share a name, not even folded to one case: outside its escapes a name has only small
  letters, inside them only capitals, so the folded name still tells the id;
- a name is one safe path segment anywhere (no ``/``, ``\\``, ``.``, space or control character,
  never ``.`` or ``..``), ASCII (Airflow refuses other asset URIs), valid as a URI's host and
  unchanged by URL decoding: ``~`` is unreserved in URIs, where a ``%`` would be decoded by every
  server and proxy on the way (``shop%2F1`` reaching a route as ``shop/1``);
- the usual ids (``ozon_default``, ``shop-2``) are their own names: their folders and asset URIs
  are what they were before this encoding;
- :func:`account_of` gives the id back.

An id whose encoding is longer than ``MAX_NAME`` (a long Cyrillic id takes six characters a letter)
would not fit a file name: its name is the start of the encoding, ``~~`` and the SHA-256 of the id.
No other name holds ``~~`` (an escape's ``~`` is followed by two hex digits), so such names stay
apart from every other; they are the one kind :func:`account_of` cannot reverse.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from urllib.parse import unquote

#: the characters that stand for themselves in a name
SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")
#: what starts an escape (``~`` and two hex digits: one byte of the id's UTF-8)
ESCAPE = "~"
#: the longest name (a file name may have 255 bytes; a name is ASCII)
MAX_NAME = 240
#: the fewest characters of an id whose name is hashed (one character encodes to at most 12)
LONG_ID = MAX_NAME // 12 + 1
#: between the start of a long id's encoding and its hash
LONG_MARK = ESCAPE * 2
_HASH_LEN = 64  # sha256, hex
_ESCAPES = tuple(f"{ESCAPE}{b:02X}" for b in range(256))


def _encode(account: str) -> str:
    return "".join(c if c in SAFE else "".join(_ESCAPES[b] for b in c.encode()) for c in account)


def account_name(account: str) -> str:
    """The account's name: the same id always gets the same name, two ids never one name."""
    if not account:
        raise ValueError("an account id cannot be empty")
    full = _encode(account)
    if len(full) <= MAX_NAME:
        return full
    head = full[: MAX_NAME - len(LONG_MARK) - _HASH_LEN]
    if ESCAPE in head[-2:]:  # never end inside an escape
        head = head[: head.rindex(ESCAPE)]
    return head + LONG_MARK + hashlib.sha256(account.encode()).hexdigest()


def account_of(name: str) -> str | None:
    """The id whose name is ``name``; None for anything else (a folder of the old layout, a long id's
    hashed name, a name typed by hand that no id encodes to)."""
    if not name or LONG_MARK in name or "%" in name:
        return None
    try:  # the escapes as percent-encoding; a name that is not canonical fails the check below
        account = unquote(name.replace(ESCAPE, "%"), errors="strict")
    except UnicodeDecodeError:
        return None
    return account if account and _encode(account) == name else None


def clashes(accounts: Iterable[str]) -> list[tuple[str, str]]:
    """Pairs of different ids whose names meet, folded to one case (a disk that ignores case)."""
    seen: dict[str, str] = {}
    out: list[tuple[str, str]] = []
    for account in accounts:
        key = account_name(account).lower()
        first = seen.setdefault(key, account)
        if first != account:
            out.append((first, account))
    return out
