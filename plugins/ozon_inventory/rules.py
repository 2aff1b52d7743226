"""Value rules every source's row validators share: integers, text, and the raw record of a reject.

The rules are about values, not characters: SKUs and ids are int64 (JSON numbers or strings of
digits), quantities non-negative integers; text may hold any Unicode, punctuation, underscores or
asterisks. Text that identifies a row (a key: offer id, warehouse name, stock type) is rejected
when it cannot be stored and indexed as it is: a NUL, a lone surrogate, or more than
``KEY_MAX_CHARS`` characters / ``KEY_MAX_BYTES`` bytes of UTF-8. Descriptive text (item names,
cluster names) keeps its row: a NUL or a lone surrogate becomes U+FFFD.

Every rule raises only :class:`Reject`, whose message is the reason stored with the row.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

INT64 = (1, 2**63 - 1)
QUANTITY = (0, 2**31 - 1)
#: Key text longer than this is rejected: a PostgreSQL index entry holds at most 2,704 bytes, and a
#: key sits in the unique indexes of the history tables and of ``ozon_warehouse``.
KEY_MAX_CHARS = 1000
KEY_MAX_BYTES = 2000
#: Key text this short fits an index whatever its characters (4 bytes of UTF-8 at most each): no count.
_SURELY_SHORT = KEY_MAX_BYTES // 4
#: An integer written with more digits than this is out of every range here (int64 has 19).
_MAX_DIGITS = 40

NULL = "\\N"  # COPY text format's NULL
_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_INTEGER = re.compile(r"-?[0-9]+")
_SURROGATE = re.compile("[\ud800-\udfff]")
#: what text may hold that COPY must escape or that cannot be stored as it is
_CARE = re.compile("[\\\\\t\n\r\x00\ud800-\udfff]")
_DAYS = {"MONDAY": 1, "TUESDAY": 2, "WEDNESDAY": 3, "THURSDAY": 4, "FRIDAY": 5, "SATURDAY": 6, "SUNDAY": 7}


class Reject(ValueError):
    """A row that breaks a rule; the message is the reason stored with it."""


class Missing(Reject):
    """A row without a field its source needs (absent or null): never read as 0, false or empty.

    ``field`` names it, so validation counts the rows each missing field rejected (a shrink that
    comes with them is Ozon's answer changing shape, not the catalogue shrinking).
    """

    def __init__(self, field: str):
        super().__init__(f"{field} is missing")
        self.field = field


def as_int(value: Any, name: str, bounds: tuple[int, int]) -> int:
    """An integer from a JSON number or a string of ASCII digits (``-?[0-9]+``), within ``bounds``.

    Raises only :class:`Reject`: ``"--5"``, ``"²"``, ``"1e3"``, ``NaN``, ``Infinity``, booleans
    and 5,000-digit strings are reasons, not crashes; a missing value is :class:`Missing`.
    """
    if type(value) is int:
        number = value
    elif value is None:
        raise Missing(name)
    elif isinstance(value, str):
        text = value.strip()
        if not _INTEGER.fullmatch(text):
            raise Reject(f"{name} is not an integer: {value!r}")
        if len(text.lstrip("-")) > _MAX_DIGITS:
            raise Reject(f"{name} out of range {bounds[0]}..{bounds[1]}: {len(text)} digits")
        number = int(text)
    elif isinstance(value, float) and value.is_integer():  # is_integer is False for NaN and ±inf
        number = int(value)
    else:
        raise Reject(f"{name} is not an integer: {printable(repr(value))}")
    if not bounds[0] <= number <= bounds[1]:
        raise Reject(f"{name} out of range {bounds[0]}..{bounds[1]}: {number}")
    return number


def as_key(value: Any, name: str) -> str:
    """Text that identifies a row, escaped for COPY: present, storable and short enough to index."""
    if type(value) is not str:
        if value is None:
            raise Missing(name)
        raise Reject(f"{name} is not a string: {printable(repr(value))[:200]}")
    if not value or value.isspace():
        raise Reject(f"{name} is empty")
    if len(value) > _SURELY_SHORT:  # could be too long to index: count
        if len(value) > KEY_MAX_CHARS:
            raise Reject(f"{name} is longer than {KEY_MAX_CHARS} characters: {len(value)}")
        size = len(_utf8(value, name))
        if size > KEY_MAX_BYTES:
            raise Reject(f"{name} is longer than {KEY_MAX_BYTES} bytes of UTF-8: {size} bytes")
    if _CARE.search(value) is None:  # the common case: one scan, nothing to escape or refuse
        return value
    if "\x00" in value:  # storing it altered would mis-key the row
        raise Reject(f"{name} holds a NUL character, which PostgreSQL text cannot store")
    _utf8(value, name)
    return value.translate(_ESCAPE)


def _utf8(value: str, name: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise Reject(f"{name} holds a lone surrogate, which is not valid Unicode text") from None


def as_label(value: Any, name: str) -> str:
    """Descriptive text, escaped for COPY; "" when missing. A NUL or lone surrogate becomes U+FFFD."""
    if type(value) is not str:
        if value is None:
            return ""
        raise Reject(f"{name} is not a string: {printable(repr(value))[:200]}")
    if _CARE.search(value) is None:
        return value
    text = value.replace("\x00", "\ufffd")
    if not text.isascii():
        text = printable(text, "\ufffd")
    return text.translate(_ESCAPE)


def is_label(value: Any, name: str) -> None:
    """Check a descriptive field nobody stores: a string or missing."""
    if value is not None and type(value) is not str:
        raise Reject(f"{name} is not a string: {printable(repr(value))[:200]}")


def as_text(value: Any, name: str, required: bool = True) -> str:
    """Text for a COPY field: a key (``required``) by :func:`as_key`, else a label by :func:`as_label`."""
    return as_key(value, name) if required else as_label(value, name)


# -- whole columns: a page's values at once, when every one is plain ------------------------------
# Each says, for a column of values, whether the rule above would pass every one of them unchanged:
# only then may a page skip the row-by-row rules (``sources.MethodRows.page``). A False is never a
# reason, just "go row by row"; the rules above give the reasons.


def plain_ints(values: list[Any], bounds: tuple[int, int]) -> bool:
    """Every value is a JSON integer within ``bounds`` (``as_int`` returns each as it is)."""
    return not values or (
        {int} == set(map(type, values)) and bounds[0] <= min(values) and max(values) <= bounds[1]
    )


def plain_keys(values: list[Any]) -> bool:
    """Every value is key text ``as_key`` returns as it is: a string, not blank, short enough to
    index, with nothing COPY must escape."""
    if not values:
        return True
    distinct = set(values)  # a page names a few dozen warehouses in a thousand rows
    return (
        {str} == set(map(type, distinct))
        and all(text and not text.isspace() and len(text) <= _SURELY_SHORT for text in distinct)
        and _CARE.search("".join(distinct)) is None
    )


def plain_optional(values: list[Any]) -> bool:
    """Every value is a string or missing (``is_label`` passes each)."""
    return set(map(type, values)) <= {str, type(None)}


def plain_labels(values: list[Any]) -> bool:
    """Every value is missing or descriptive text ``as_label`` returns as it is."""
    return plain_optional(values) and _CARE.search("".join(filter(None, values))) is None


def as_bool(value: Any, name: str) -> bool:
    """A JSON boolean (or the strings ``"true"``/``"false"``); a missing one is never read as false."""
    if type(value) is bool:
        return value
    if value is None:
        raise Missing(name)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise Reject(f"{name} is not a boolean: {printable(repr(value))[:200]}")


def working_days(value: Any) -> str:
    """``working_days`` as ints, digit strings or day names (v2) → "1,2,3"; missing is not "no days"."""
    if value is None:
        raise Missing("working_days")
    if not isinstance(value, list):
        raise Reject(f"working_days is not an array: {printable(repr(value))[:200]}")
    days = []
    for day in value:
        if isinstance(day, str) and day.upper() in _DAYS:
            days.append(_DAYS[day.upper()])
        elif isinstance(day, str) and day.upper() == "UNSPECIFIED":
            continue
        else:
            days.append(as_int(day, "working_days[]", (1, 7)))
    return ",".join(str(d) for d in sorted(set(days)))


def printable(text: str, surrogate: str | None = None) -> str:
    """``text`` with every lone surrogate replaced: by ``surrogate``, or by its visible ``\\udXXX`` escape."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return _SURROGATE.sub(surrogate if surrogate is not None else _visible, text)


def _visible(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def record_json(record: Any) -> str:
    """A raw record as one line of standard JSON that PostgreSQL ``jsonb`` accepts.

    Python's JSON reader accepts ``NaN``, ``Infinity`` and ``1e400`` and keeps lone surrogates; none
    of them is valid in ``jsonb``. Non-finite numbers become the strings "NaN", "Infinity",
    "-Infinity"; a lone surrogate and a NUL stay visible as the six characters of their escape.
    """
    try:
        raw = json.dumps(record, ensure_ascii=False, default=str, allow_nan=False)
    except ValueError:  # a non-finite float somewhere in the record
        raw = json.dumps(_finite(record), ensure_ascii=False, default=str, allow_nan=False)
    if not raw.isascii():
        raw = _SURROGATE.sub(_visible_in_json, raw)
    return raw.replace("\\u0000", "\\\\u0000")


def _visible_in_json(match: re.Match[str]) -> str:
    return f"\\\\u{ord(match.group()):04x}"  # an escaped backslash: the text "\\udXXX", not a code point


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def copy_text(text: str) -> str:
    """``text`` escaped for a COPY text-format field."""
    return text.translate(_ESCAPE)
