"""Which error codes each method can answer, beyond those every request can.

Every request can be answered -32602 (invalid params), -32603 (internal error),
-32800 (cancelled by ``$/cancelRequest``); every request but ``initialize`` and ``ping``
also -32002 (not initialized) and -32029 (rate limited); a method with a scope also
-32003 (forbidden). :data:`SPECIFIC` adds what the method itself can answer. The OpenRPC
document lists the union per method, and the abuse tests check that no method answers
a code its row does not list.
"""

from __future__ import annotations

from typing import Final

from yamabiko.protocol import errors

E = errors
_NF, _CF, _EU, _BX = E.NOT_FOUND, E.CONFLICT, E.ENGINE_UNAVAILABLE, E.BUDGET_EXCEEDED
_RL = E.RATE_LIMITED

SPECIFIC: Final[dict[str, tuple[int, ...]]] = {
    "initialize": (E.INVALID_REQUEST,),
    "session/refresh": (E.UNAUTHORIZED,),
    "chat/send": (_NF, _CF, _EU, _BX),
    "stream/subscribe": (_NF,),
    "stream/cancel": (_NF,),
    "agent/run": (_NF, _CF, _EU, _BX),
    "music/generate": (_NF, _EU, _BX),
    "audio/synthesize": (_NF, _EU),
    "audio/cancel": (_NF,),
    "ghost/open": (_CF, _EU),
    "ghost/close": (_NF,),
    "ghost/configure": (_NF, _EU),
    "ghost/complete": (_NF, _EU, E.CONTENT_MODIFIED),
    "agents/create": (_NF, _CF),
    "agents/get": (_NF,),
    "agents/update": (_NF, _CF),
    "agents/delete": (_NF,),
    "agents/secrets/set": (_NF,),
    "agents/secrets/list": (_NF,),
    "agents/secrets/delete": (_NF,),
    "conversations/create": (_NF,),
    "conversations/get": (_NF,),
    "conversations/archive": (_NF,),
    "conversations/delete": (_NF, _CF),
    "conversations/messages": (_NF,),
    "tenants/create": (_CF,),
    "tenants/get": (_NF,),
    "tenants/update": (_NF,),
    "tenants/delete": (_NF,),
    "models/register": (_CF,),
    "models/update": (_NF,),
    "models/delete": (_NF,),
    "mcp/servers/add": (_CF,),
    "mcp/servers/remove": (_NF,),
    "mcp/servers/test": (_NF, _EU),
    # Each resource kind needs its own scope (docs/mcp.md, Resources).
    "resources/read": (_NF, E.FORBIDDEN, _EU),
    "resources/subscribe": (_NF, E.FORBIDDEN),
    "resources/unsubscribe": (_NF,),
    "prompts/get": (_NF,),
    "tools/call": (_NF,),
    "client/applyActions": (E.INVALID_PARAMS, E.INTERNAL_ERROR),
}

_ALWAYS: Final = (E.INVALID_PARAMS, E.INTERNAL_ERROR, E.REQUEST_CANCELLED)
_UNGATED: Final = frozenset({"initialize", "ping"})


def codes(method: str, *, scope: str | None, sender: str = "client") -> tuple[int, ...]:
    """Every code ``method`` can answer, sorted (descending: -32001 before -32602)."""
    if sender == "server":
        return tuple(sorted(set(SPECIFIC.get(method, ())), reverse=True))
    found = set(_ALWAYS) | set(SPECIFIC.get(method, ()))
    if method not in _UNGATED:
        found |= {E.NOT_INITIALIZED, _RL}
    if scope is not None:
        found.add(E.FORBIDDEN)
    return tuple(sorted(found, reverse=True))
