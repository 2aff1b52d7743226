"""Request bodies read the way Ozon's gateway reads them, with its error wording.

Ozon's Seller API is a gRPC service behind grpc-gateway, with protoc-gen-validate rules. That
shows in what it accepts and in how it words a refusal, and a client written against the real
API must get the same from the simulator:

- a field sent as JSON ``null`` is a field not sent: it takes its default (protobuf has no null);
- int64 values may be JSON numbers or strings of digits (proto3 JSON mapping);
- a value of the wrong type is refused by the JSON decoder:
  ``proto: invalid value for enum field warehouseType: "fbo"`` (the field's JSON name, the value
  as JSON);
- a value that breaks a rule is refused by the validator: ``invalid <Request>.<Field>: <reason>``,
  for example ``invalid AnalyticsStocksRequest.Skus: value must contain between 1 and 100 items``
  (that exact text is quoted from a real answer in public client code; the other reasons follow
  protoc-gen-validate's wording).

Never a Python repr: values are echoed as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


class ApiError(Exception):
    """An error answer with Ozon's rpcStatus body."""

    def __init__(self, status: int, code: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def as_json(value: Any) -> str:
    """A value as the gateway echoes it: JSON text (strings in double quotes, ``null``)."""
    return json.dumps(value, ensure_ascii=False)


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class Body:
    """One JSON object of a request (``message`` is its protobuf message name, for errors)."""

    def __init__(self, data: Any, message: str):
        if not isinstance(data, dict):
            raise ApiError(400, 3, f"proto: syntax error: unexpected token {as_json(data)}")
        self.data, self.message = data, message

    # -- errors ----------------------------------------------------------------------------------

    def invalid(self, name: str, reason: str) -> ApiError:
        """A validation rule broken: ``invalid <Request>.<Field>: <reason>``."""
        return ApiError(400, 3, f"invalid {self.message}.{_pascal(name)}: {reason}")

    @staticmethod
    def wrong_type(kind: str, name: str, value: Any) -> ApiError:
        """A value the JSON decoder cannot take for the field's type."""
        return ApiError(400, 3, f"proto: invalid value for {kind} field {_camel(name)}: {as_json(value)}")

    # -- fields ----------------------------------------------------------------------------------

    def sent(self, name: str) -> bool:
        """Whether the field was sent with a value (``null`` counts as not sent)."""
        return self.data.get(name) is not None

    def int(self, name: str, default: int = 0, low: int | None = None, high: int | None = None) -> int:
        """An integer field (number or digit string); outside ``[low, high]`` is refused."""
        value = self.data.get(name)
        number = default if value is None else _to_int(value, name)
        if (low is not None and number < low) or (high is not None and number > high):
            if low is not None and high is not None:
                reason = f"value must be inside range [{low}, {high}]"
            elif low is not None:
                reason = f"value must be greater than or equal to {low}"
            else:
                reason = f"value must be less than or equal to {high}"
            raise self.invalid(name, reason)
        return number

    def string(self, name: str, default: str = "") -> str:
        value = self.data.get(name)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.wrong_type("string", name, value)
        return value

    def enum(self, name: str, allowed: Iterable[str], default: str) -> str:
        """An enum field by name; a name the enum does not have is refused by the decoder."""
        value = self.data.get(name)
        if value is None:
            return default
        if not isinstance(value, str) or value not in set(allowed):
            raise self.wrong_type("enum", name, value)
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.data.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.wrong_type("bool", name, value)
        return value

    def _list(self, name: str, min_items: int, max_items: int | None) -> list[Any]:
        value = self.data.get(name)
        items = [] if value is None else value
        if not isinstance(items, list):
            raise self.wrong_type("repeated", name, value)
        if max_items is not None and len(items) > max_items and min_items:
            raise self.invalid(name, f"value must contain between {min_items} and {max_items} items")
        if max_items is not None and len(items) > max_items:
            raise self.invalid(name, f"value must contain no more than {max_items} item(s)")
        if len(items) < min_items:
            if max_items is not None:
                raise self.invalid(name, f"value must contain between {min_items} and {max_items} items")
            raise self.invalid(name, f"value must contain at least {min_items} item(s)")
        return items

    def ints(self, name: str, min_items: int = 0, max_items: int | None = None) -> list[int]:
        """A repeated int64 field (numbers or digit strings, as Ozon's int64 string arrays)."""
        return [_to_int(v, name) for v in self._list(name, min_items, max_items)]

    def strings(self, name: str, min_items: int = 0, max_items: int | None = None) -> list[str]:
        items = self._list(name, min_items, max_items)
        for item in items:
            if not isinstance(item, str):
                raise self.wrong_type("string", name, item)
        return items

    def enums(self, name: str, allowed: Iterable[str]) -> list[str]:
        """A repeated enum field by names."""
        known = set(allowed)
        items = self._list(name, 0, None)
        for item in items:
            if not isinstance(item, str) or item not in known:
                raise self.wrong_type("enum", name, item)
        return items

    def object(self, name: str, message: str, required: bool = False) -> Body:
        """A nested message; ``required`` ones must be sent (``{}`` is enough)."""
        value = self.data.get(name)
        if value is None:
            if required:
                raise self.invalid(name, "value is required")
            value = {}
        if not isinstance(value, dict):
            raise self.wrong_type("message", name, value)
        return Body(value, message)


def _to_int(value: Any, name: str) -> int:
    """An int64 as proto3 JSON allows it: a number with no fraction, or a string of one."""
    if isinstance(value, bool):
        raise Body.wrong_type("int64", name, value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
    raise Body.wrong_type("int64", name, value)
