"""Bases for the contract types: camelCase on the wire, ``_meta`` on every request.

Float bounds are written as floats (``Meta(ge=0.0)``): ``typing`` caches
``Annotated[float, Meta(ge=0)]`` and ``Annotated[float, Meta(ge=0.0)]`` as one alias
(the two Metas are equal), so mixing the forms made the generated schema say ``0`` or
``0.0`` depending on import order.

Unknown fields are ignored, not refused, so that a newer client can talk to an older
server; wrong types and missing required fields are -32602 with the field path.
"""

from __future__ import annotations

from typing import Annotated, Final, NamedTuple

import msgspec
from msgspec import Struct, field


class RequestMeta(Struct, kw_only=True, rename="camel", omit_defaults=True):
    """The ``_meta`` object a request's params may carry (MCP convention)."""

    progress_token: int | str | None = None
    traceparent: str | None = None
    """A W3C trace context header, carried into log lines and provider calls."""


class Params(Struct, kw_only=True, rename="camel", omit_defaults=True):
    """Base of every method's params."""

    meta: RequestMeta | None = field(default=None, name="_meta")


class Result(Struct, kw_only=True, rename="camel", omit_defaults=True):
    """Base of every method's result."""


class Empty(Params):
    """Params of a method that takes none."""


class EmptyResult(Result):
    """``{}``."""


SCOPE_CHAT: Final = "chat"
SCOPE_AGENT: Final = "agent"
SCOPE_GHOST: Final = "ghost"
SCOPE_AUDIO: Final = "audio"
SCOPE_MCP: Final = "mcp"
SCOPE_ADMIN: Final = "admin"


class MethodSchema(NamedTuple):
    """One row of the contract: what a method takes and gives, who sends it."""

    name: str
    params: type[msgspec.Struct]
    result: type[msgspec.Struct] | None
    """None for a notification."""
    summary: str
    sender: str = "client"
    """Who sends it: ``client`` (we serve it) or ``server`` (we send it)."""
    scope: str | None = None
    """The scope a caller needs; None: any authenticated session."""
    cost: float = 1.0
    """What one call takes from the caller's rate budget, in requests: a fraction for
    the cheap notifications a client sends many of (keystrokes, cancels)."""

    @property
    def is_notification(self) -> bool:
        return self.result is None


class PageParams(Params):
    """Cursor pagination: pass back ``nextCursor`` to get the next page."""

    cursor: str | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 50
