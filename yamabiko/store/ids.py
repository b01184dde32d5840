"""Server-generated ids and timestamps.

Ids are UUIDv7 strings (RFC 9562): 48 bits of Unix milliseconds, then random bits, so
they sort roughly by creation time and never collide in practice across nodes.
Timestamps are UTC with microseconds, and strictly increasing within a process, so two
rows written one after the other in this process never share a ``created_at`` and lists
come back in the order things happened, whatever the wall clock does.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime, timedelta

_MICROSECOND = timedelta(microseconds=1)
_last_now = datetime.min.replace(tzinfo=UTC)


def new_id() -> str:
    """A fresh UUIDv7, as the canonical 36-character string."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10))  # 80 bits; the version and variant take 6
    value = (millis & (2**48 - 1)) << 80 | rand
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 9562 variant
    return str(uuid.UUID(int=value))


def utc_now() -> datetime:
    """The current UTC time, strictly later than any earlier call in this process."""
    global _last_now  # one monotonic clock per process is the point
    now = datetime.now(UTC)
    if now <= _last_now:
        now = _last_now + _MICROSECOND
    _last_now = now
    return now
