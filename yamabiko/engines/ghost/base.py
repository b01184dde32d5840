"""The ghost-text engine interface: a document and a cursor in, ranked continuations out.

Theory of operation. The handler (``handlers/ghost.py``) keeps each document's text and
version; after a keystroke it asks an engine for suggestions for the newest version
and drops the answer if a newer version arrived meanwhile. So an engine is a pure
function of its :class:`GhostRequest` (and the user's :class:`PersonalCounts`): no
documents, no sessions, no versions.

Guarantees of :meth:`GhostEngine.suggest`:

- at most ``max_items`` suggestions, best first, no two with the same text, none empty,
  each at most ``max_chars`` characters (code points);
- a suggestion's ``text`` is inserted at ``cursor`` as it is: when the cursor is inside
  a word it starts with the rest of that word (``"kic"`` -> ``"k drum"``), and it
  carries its own leading space when it starts a new word in space-separated text;
- ``score`` is in [0, 1], higher is better: the engine's estimate of the probability
  that the user types exactly this text next; an engine that estimates it (``ngram``)
  returns only suggestions scoring at least ``threshold``;
- cancelling the awaiting task abandons the work (an engine that runs off the event
  loop lets its thread finish and drops the result);
- it never raises for any text: an engine that has nothing to say returns ``[]``;
  :class:`GhostEngineError` is for engines that cannot run at all (a missing model).

Personal models. :meth:`GhostEngine.learn` turns an accepted suggestion (the text
before it and the text accepted) into count increments, :class:`Count` rows keyed by
an engine-defined ``context`` string and the ``token`` that followed it. The handler
persists them per user (the store adds them up) and hands them back, gathered in a
:class:`PersonalCounts`, with each later request of that user; engines weigh them
above the shared corpus. Engines that do not adapt return ``[]`` and ignore the counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal, Protocol

import msgspec

DocumentKind = Literal["lyrics", "chat", "prompt", "notes"]


class GhostEngineError(Exception):
    """The engine cannot run (no model configured, a model file that will not load).
    Its message is safe to show a client."""


class GhostRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What to complete. ``cursor`` is a code-point offset into ``text`` (0 ..
    ``len(text)``); ``language`` a BCP 47 hint (``en``, ``ja``), None to detect it
    from the text."""

    text: str
    cursor: int
    language: str | None = None
    kind: DocumentKind = "chat"
    max_items: int = 3
    max_chars: int = 48
    threshold: float | None = None
    """Show a suggestion only when the engine finds it at least this likely to be what
    the user types next (0 to 1); None: the engine's calibrated default for the kind
    and language (see docs/ghost.md, "Confidence")."""

    @property
    def before(self) -> str:
        return self.text[: self.cursor]

    @property
    def after(self) -> str:
        return self.text[self.cursor :]

    def __repr__(self) -> str:
        # Never the text: reprs end up in logs.
        return f"GhostRequest(chars={len(self.text)}, cursor={self.cursor}, kind={self.kind!r})"


class GhostSuggestion(msgspec.Struct, frozen=True):
    text: str
    score: float


class Count(msgspec.Struct, frozen=True):
    """``token`` followed ``context`` ``count`` more times (engine-defined strings)."""

    context: str
    token: str
    count: int = 1


class PersonalCounts:
    """One user's counts for one engine: ``context -> {token: count}``. Built from the
    stored rows, updated in place as the user accepts suggestions."""

    __slots__ = ("_counts", "total")

    def __init__(self, rows: Iterable[Count] = ()) -> None:
        self._counts: dict[str, dict[str, int]] = {}
        self.total = 0
        self.add(rows)

    def add(self, rows: Iterable[Count]) -> None:
        for row in rows:
            followers = self._counts.setdefault(row.context, {})
            followers[row.token] = followers.get(row.token, 0) + row.count
            self.total += row.count

    def get(self, context: str) -> Mapping[str, int]:
        """The tokens seen after ``context`` and how often (empty if never)."""
        return self._counts.get(context, _NONE)

    def __len__(self) -> int:
        return len(self._counts)


_NONE: Mapping[str, int] = {}


class GhostEngine(Protocol):
    name: str
    """``ngram``, ``onnx``, ``llm``: what ``ghost/configure {engine}`` names."""

    async def suggest(
        self, request: GhostRequest, personal: PersonalCounts | None = None
    ) -> list[GhostSuggestion]:
        """Up to ``request.max_items`` continuations at the cursor (see the module)."""
        ...

    def learn(self, request: GhostRequest, accepted: str) -> list[Count]:
        """The counts that accepting ``accepted`` at ``request.cursor`` adds to the
        user's personal model ([] for an engine that does not adapt)."""
        ...
