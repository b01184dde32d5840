"""The session's transition table (docs/protocol.md, Lifecycle): every legal move, and
every other pair refused at once, on the table and on a real session."""

from __future__ import annotations

import itertools

import pytest

from yamabiko.sessions.state import TRANSITIONS, Event, IllegalTransition, State, next_state

LEGAL = [
    (State.NEW, Event.INITIALIZE, State.READY),
    (State.NEW, Event.CLOSE, State.CLOSING),
    (State.READY, Event.CLOSE, State.CLOSING),
    (State.NEW, Event.GONE, State.CLOSED),
    (State.READY, Event.GONE, State.CLOSED),
    (State.CLOSING, Event.GONE, State.CLOSED),
]
ILLEGAL = [
    (state, event)
    for state, event in itertools.product(State, Event)
    if (state, event) not in {(s, e) for s, e, _ in LEGAL}
]


@pytest.mark.parametrize(("state", "event", "to"), LEGAL)
def test_every_legal_move(state: State, event: Event, to: State) -> None:
    assert next_state(state, event) is to


def test_the_table_holds_exactly_the_legal_moves() -> None:
    assert dict(TRANSITIONS) == {(s, e): to for s, e, to in LEGAL}


@pytest.mark.parametrize(("state", "event"), ILLEGAL)
def test_every_other_move_raises_at_once(state: State, event: Event) -> None:
    with pytest.raises(IllegalTransition) as exc:
        next_state(state, event)
    assert exc.value.state is state
    assert exc.value.event is event
    assert state.value in str(exc.value)
    assert event.value in str(exc.value)


def test_closed_is_final_and_nothing_returns_to_new() -> None:
    assert all(state is not State.CLOSED for state, _ in TRANSITIONS)
    assert State.NEW not in TRANSITIONS.values()
