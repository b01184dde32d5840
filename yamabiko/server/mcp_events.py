"""Streamable HTTP resumability: the SDK's :class:`EventStore` on the node's broker.

Every message the SDK sends on an SSE stream (a POST's response stream or the session's
GET stream) is stored with an event id first; a client whose stream dropped sends
``GET`` with ``Last-Event-ID`` and gets what came after it, then the live stream
(docs/mcp.md, Resumability).

Theory of operation
-------------------
The SDK keeps one event store for every session and names streams by request id or
``_GET_stream``, the same names in every session. So each stored event is put under
its session: the broker stream ``mcp:{session}:{stream}``, and the event id is
``{session}:{seq}:{stream}``. Which session a message belongs to is the
:class:`SessionTag` in :data:`CURRENT` (a context variable): the face sets it before the
SDK sees a request, and the SDK's per-session tasks are started from the request that
opened the session, so they carry its tag. A replay is served only when the
``Last-Event-ID`` names the session of the request asking (the face answers 404
otherwise, and the store checks again).

On a broker backed by Redis the events are in Redis, so they outlive the node's memory
for the broker's retention (a live stream is dropped after its idle timeout, 10
minutes); an MCP session itself lives in the SDK on the node that opened it.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from typing import Any, Final

import mcp_types as types
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore

from yamabiko.protocol.errors import Conflict, NotFound

log = logging.getLogger("yamabiko.mcp_http")

_KIND: Final = "mcp"
_PRIMING: Final = b""


class SessionTag:
    """The MCP session (and its owner) the current request belongs to; ``session_id``
    is filled in once the SDK has given the opening request one."""

    __slots__ = ("session_id", "sub", "tid")

    def __init__(self, tid: str, sub: str, session_id: str | None = None) -> None:
        self.tid = tid
        self.sub = sub
        self.session_id = session_id


CURRENT: Final[contextvars.ContextVar[SessionTag | None]] = contextvars.ContextVar(
    "yamabiko_mcp_session", default=None
)


def session_of(event_id: str) -> str | None:
    """The session an event id belongs to, None if it is not one of ours."""
    session_id, sep, _ = event_id.partition(":")
    return session_id if sep else None


def _parse(event_id: str) -> tuple[str, int, str] | None:
    session_id, _, rest = event_id.partition(":")
    seq_text, _, stream_id = rest.partition(":")
    if not session_id or not seq_text.isdigit() or not stream_id:
        return None
    return session_id, int(seq_text), stream_id


class BrokerEventStore(EventStore):
    """Events in the broker, under their session (see the module's docstring)."""

    def __init__(self, broker: Any) -> None:
        self._broker = broker
        self._created: set[str] = set()

    async def store_event(self, stream_id: str, message: types.JSONRPCMessage | None) -> str:
        tag = CURRENT.get()
        if tag is None or tag.session_id is None:
            # Not within one of our sessions (stateless requests have no event store):
            # an id that replays nothing.
            return f"-:0:{stream_id}"
        key = f"mcp:{tag.session_id}:{stream_id}"
        if key not in self._created:
            with contextlib.suppress(Conflict):  # made by an earlier request of this session
                await self._broker.create(key, owner_tenant=tag.tid, owner_user=tag.sub)
            self._created.add(key)
            if len(self._created) > 10_000:  # a cache of creations, not a registry
                self._created.clear()
        payload = (
            _PRIMING
            if message is None
            else types.jsonrpc_message_adapter.dump_json(message, by_alias=True, exclude_none=True)
        )
        seq = await self._broker.publish(key, _KIND, payload)
        return f"{tag.session_id}:{seq}:{stream_id}"

    async def replay_events_after(
        self, last_event_id: str, send_callback: EventCallback
    ) -> str | None:
        parsed = _parse(last_event_id)
        tag = CURRENT.get()
        if parsed is None or tag is None or tag.session_id != parsed[0]:
            return None
        session_id, after_seq, stream_id = parsed
        key = f"mcp:{session_id}:{stream_id}"
        try:
            subscription = await self._broker.subscribe(key, after_seq)
        except NotFound:
            log.info("MCP replay past the retention", extra={"mcpSession": session_id})
            return None
        except Exception:
            log.info("MCP replay refused", extra={"mcpSession": session_id}, exc_info=True)
            return None
        async with subscription:
            last = subscription.info.last_seq  # the newest item when subscribed
            if last <= after_seq:
                return stream_id
            async for item in subscription:
                if item.payload != _PRIMING:
                    message = types.jsonrpc_message_adapter.validate_json(item.payload)
                    await send_callback(
                        EventMessage(message, f"{session_id}:{item.seq}:{stream_id}")
                    )
                if item.seq >= last:
                    break
        return stream_id
