"""Registering handlers: the router, the bound method entries, the handler context.

Handlers are ``async def method(ctx, params) -> result`` registered with
``@router.method("ghost/complete")``. The router takes each method's types and scope
from the contract (``schema``), so a handler cannot disagree with it, and registering a
name twice is an error. ``server/`` assembles routers into one table and hands it to
every session as a value.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from yamabiko.schema.base import MethodSchema
from yamabiko.schema.methods import METHODS

if TYPE_CHECKING:
    from yamabiko.sessions.session import Context

Handler = Callable[["Context", Any], Awaitable[Any]]
H = TypeVar("H", bound=Handler)
Refused = Callable[["Context", Any, str], None]
"""Told that a notification was dropped over the rate budget: (context, params, why)."""


class MethodEntry:
    """A method of the contract bound to its handler."""

    __slots__ = ("decode", "handler", "inline", "name", "refused", "schema", "scope")

    def __init__(
        self, schema: MethodSchema, handler: Handler, *, inline: bool, refused: Refused | None
    ) -> None:
        self.schema = schema
        self.name = schema.name
        self.scope = schema.scope
        self.handler = handler
        self.inline = inline
        self.refused = refused
        self.decode: Callable[[bytes], Any] = msgspec.json.Decoder(schema.params).decode


class Router:
    """A set of handlers, usually one namespace's."""

    def __init__(self, schemas: Mapping[str, MethodSchema] = METHODS) -> None:
        self._schemas = schemas
        self.entries: dict[str, MethodEntry] = {}

    def method(
        self, name: str, *, inline: bool = False, refused: Refused | None = None
    ) -> Callable[[H], H]:
        """Register a handler for ``name``.

        ``inline=True`` runs the handler in the session's read loop with no task of its
        own: only for handlers that never wait on I/O (``ping``, bookkeeping
        notifications). Inline handlers are not cancellable and hold up later messages
        of the session while they run.

        ``refused``: for a notification, called (never awaited) when one is dropped
        over the caller's rate budget, so that the namespace can tell the client what
        it lost (a notification has no response to carry an error).
        """
        schema = self._schemas.get(name)
        if schema is None:
            raise KeyError(f"no schema for method {name!r}: add it to yamabiko.schema first")
        if schema.sender == "server":
            raise ValueError(f"{name!r} is sent by the server, not served")

        def register(handler: H) -> H:
            if name in self.entries:
                raise ValueError(f"method {name!r} is registered twice")
            self.entries[name] = MethodEntry(schema, handler, inline=inline, refused=refused)
            return handler

        return register

    def include(self, *others: Router) -> Router:
        for other in others:
            for name, entry in other.entries.items():
                if name in self.entries:
                    raise ValueError(f"method {name!r} is registered twice")
                self.entries[name] = entry
        return self
