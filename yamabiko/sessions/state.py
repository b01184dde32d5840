"""The session's lifecycle as a table of allowed transitions (docs/protocol.md, Lifecycle).

Theory of operation
-------------------
A session is in exactly one :class:`State`. Something that happens to it is an
:class:`Event`; :func:`next_state` looks the pair up in :data:`TRANSITIONS` and returns
where the session goes, or raises :class:`IllegalTransition` at once when the table has
no such move. Nothing else changes a session's state: :meth:`Session._transition
<yamabiko.sessions.session.Session._transition>` is the one caller, so a move the table
does not allow is a bug found where it happens, not a state quietly overwritten.

::

    NEW --initialize--> READY
     |                    |
     +------close-------->+--close--> CLOSING
     |                    |              |
     +------gone--------->+----gone----->+--gone--> CLOSED

- ``initialize``: the client's ``initialize`` succeeded (or a face that negotiated the
  session itself, MCP over HTTP, adopted it). A second one is the client's error
  (-32600), checked before the move.
- ``close``: the server asked to close the connection (a close code is chosen); requests
  that already run keep running until the connection is gone.
- ``gone``: the connection is gone; everything the session runs is stopped and every
  request of ours still waiting for the client ends with
  :class:`~yamabiko.protocol.errors.ConnectionClosed`.

Whose fault an illegal move is: always ours (the client cannot reach one; what it may
send in each state is checked before a move is asked for).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final


class State(enum.Enum):
    NEW = "new"
    """Connected; only ``initialize`` and ``ping`` are served (-32002 for the rest)."""
    READY = "ready"
    """Initialized; every method the identity's scopes allow is served."""
    CLOSING = "closing"
    """The server asked to close; running requests finish or are stopped at ``gone``."""
    CLOSED = "closed"
    """The connection is gone; nothing runs and nothing is sent."""


class Event(enum.Enum):
    INITIALIZE = "initialize"
    CLOSE = "close"
    GONE = "gone"


TRANSITIONS: Final[Mapping[tuple[State, Event], State]] = {
    (State.NEW, Event.INITIALIZE): State.READY,
    (State.NEW, Event.CLOSE): State.CLOSING,
    (State.READY, Event.CLOSE): State.CLOSING,
    (State.NEW, Event.GONE): State.CLOSED,
    (State.READY, Event.GONE): State.CLOSED,
    (State.CLOSING, Event.GONE): State.CLOSED,
}
"""Every allowed move; a pair that is not here raises :class:`IllegalTransition`."""


class IllegalTransition(RuntimeError):
    """A move the table does not allow: a bug on our side, raised where it happens."""

    def __init__(self, state: State, event: Event) -> None:
        super().__init__(f"illegal session transition: {event.value} in state {state.value}")
        self.state = state
        self.event = event


def next_state(state: State, event: Event) -> State:
    """Where ``event`` takes a session in ``state``; raises :class:`IllegalTransition`."""
    try:
        return TRANSITIONS[state, event]
    except KeyError:
        raise IllegalTransition(state, event) from None
