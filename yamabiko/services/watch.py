"""Which sessions watch which conversations (MCP ``resources/subscribe``), on this node,
and telling them when one changes, on any node.

A change (a message appended, a reply finished) is announced with
:meth:`ConversationWatch.changed`, which sends a signal every node hears
(:mod:`yamabiko.store.signals`); each node then notifies its own watching sessions with
``notifications/resources/updated {uri}``. Sessions are held weakly and forget their
watches when they close.
"""

from __future__ import annotations

import logging
import weakref
from typing import Final

from yamabiko.schema.mcp import RESOURCES_UPDATED, UpdatedParams
from yamabiko.sessions.session import Session
from yamabiko.store.signals import Signals

log = logging.getLogger("yamabiko.watch")

PREFIX: Final = "yamabiko://conversations/"
_SIGNAL: Final = "conversation:"


class ConversationWatch:
    def __init__(self, signals: Signals) -> None:
        self._signals = signals
        self._watching: dict[str, weakref.WeakSet[Session]] = {}
        signals.listen(self._on_signal)

    def watch(self, session: Session, conversation_id: str) -> None:
        self._watching.setdefault(conversation_id, weakref.WeakSet()).add(session)

    def unwatch(self, session: Session, conversation_id: str) -> None:
        sessions = self._watching.get(conversation_id)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._watching[conversation_id]

    async def changed(self, conversation_id: str) -> None:
        """Announce that the conversation changed (to every node). Never raises: a
        lost announcement costs a watcher a refresh, not the caller its work."""
        try:
            await self._signals.send(_SIGNAL + conversation_id)
        except Exception:
            log.warning("could not announce a conversation change", exc_info=True)

    def _on_signal(self, message: str) -> None:
        if not message.startswith(_SIGNAL):
            return
        conversation_id = message[len(_SIGNAL) :]
        for session in list(self._watching.get(conversation_id, ())):
            if not session.closing:
                session.notify(RESOURCES_UPDATED, UpdatedParams(uri=PREFIX + conversation_id))
