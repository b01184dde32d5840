"""Rules for the strings inside a message's params: no NUL character.

PostgreSQL's ``text`` cannot hold U+0000 (it refuses the row), SQLite stores it and C
clients cut the string there; a server that accepted it would behave differently per
store. So no string in params may contain it, on every method, and the check costs a
byte search of the raw params (JSON spells NUL only as ``\\u0000``); the params are
walked, to name the field, only when that search hits.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

_ESCAPED_NUL: Final = b"\\u0000"
_decode: Final = msgspec.json.Decoder().decode


def nul_path(params: bytes) -> str | None:
    """The JSONPath of the first string (value or key) holding U+0000, else None."""
    if _ESCAPED_NUL not in params:
        return None
    try:
        value = _decode(params)
    except (msgspec.DecodeError, RecursionError):
        return None  # the caller's decoder already judged the JSON; nothing to name
    return _find(value, "$")


def _find(value: Any, path: str) -> str | None:
    # Iterative: params nest as deep as the decoder allows, deeper than Python's stack.
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if type(item) is str:
            if "\x00" in item:
                return where
        elif type(item) is dict:
            for key, child in reversed(item.items()):
                if "\x00" in key:
                    return where
                stack.append((child, f"{where}.{key}"))
        elif type(item) is list:
            stack.extend((child, f"{where}[{i}]") for i, child in reversed(list(enumerate(item))))
    return None
