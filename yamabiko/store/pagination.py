"""Cursor pagination, the same for every list and every backend.

A list is ordered by a timestamp and then the id (both unique together, so the order is
total). A cursor is the position of the last item of a page: base64url of
``[timestamp, id]``. Because it names a position rather than an offset, inserting rows
while a client pages neither repeats nor skips the rows it has yet to see (new rows
appear on a later page when they sort after the cursor, or not at all). A cursor says
nothing about who may see what: queries stay scoped by tenant and owner whatever it holds.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Final

import msgspec

from yamabiko.store.errors import InvalidCursor, InvalidLimit

MAX_LIMIT: Final = 100
DEFAULT_LIMIT: Final = 50

_position = msgspec.json.Decoder(tuple[datetime, str])


def check_limit(limit: int) -> int:
    """``limit`` if it is a page size we serve (1..100); else :class:`InvalidLimit`.

    Refused rather than clamped: the wire schema bounds it as well, so a bigger one is a
    client bug worth a clear error, not a silently shorter page.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidLimit(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit


def encode_cursor(at: datetime, item_id: str) -> str:
    """The cursor for the position just after the item (``at``, ``item_id``)."""
    raw = msgspec.json.encode((at, item_id))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor names; :class:`InvalidCursor` for anything we did not make."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, item_id = _position.decode(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (UnicodeEncodeError, binascii.Error, ValueError, msgspec.DecodeError):
        raise InvalidCursor from None
    if at.tzinfo is None or not item_id:
        raise InvalidCursor
    return at, item_id
