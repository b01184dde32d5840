"""Keystroke savings: how much typing an engine's suggestions spare a user.

A simulated user types ``text`` character by character. Before each keystroke they
look at the engine's first suggestion for the text typed so far (the grey text); when
the text goes on with exactly that suggestion, they accept it with one keystroke (Tab)
and jump past it, otherwise they type one character (a wrong suggestion costs
nothing but is counted). Savings are ``1 - keystrokes / characters``: 0 for an engine
that never helps, close to 1 for one that knows the text. Precision is the share of
the keystrokes that showed a suggestion where that suggestion was right (accepted);
``shown_per_100`` is how many keystrokes in 100 showed one. The counts a user has
(``personal``) are read, never updated, so a run is repeatable. Used by the tests,
``make bench`` and ``make eval`` (see docs/ghost.md, "Evaluation").
"""

from __future__ import annotations

from dataclasses import dataclass

from yamabiko.engines.ghost.base import DocumentKind, GhostEngine, GhostRequest, PersonalCounts


@dataclass(frozen=True)
class Savings:
    characters: int
    """Characters of the text (code points)."""
    keystrokes: int
    """Keystrokes the simulated user needed: characters typed plus accepts."""
    accepted: int
    """Suggestions accepted."""
    accepted_characters: int
    """Characters those suggestions inserted."""
    shown: int = 0
    """Keystrokes before which a suggestion was shown (right or wrong)."""

    @property
    def savings(self) -> float:
        """``1 - keystrokes / characters`` (0 for an empty text)."""
        return 1.0 - self.keystrokes / self.characters if self.characters else 0.0

    @property
    def precision(self) -> float:
        """The share of shown suggestions that were right (0 when none was shown)."""
        return self.accepted / self.shown if self.shown else 0.0

    @property
    def shown_per_100(self) -> float:
        """Keystrokes with a suggestion shown, per 100 keystrokes."""
        return 100.0 * self.shown / self.keystrokes if self.keystrokes else 0.0

    def __add__(self, other: Savings) -> Savings:
        return Savings(
            self.characters + other.characters,
            self.keystrokes + other.keystrokes,
            self.accepted + other.accepted,
            self.accepted_characters + other.accepted_characters,
            self.shown + other.shown,
        )


async def keystroke_savings(
    engine: GhostEngine,
    text: str,
    personal: PersonalCounts | None = None,
    *,
    language: str | None = None,
    kind: DocumentKind = "chat",
    max_items: int = 3,
    max_chars: int = 48,
    threshold: float | None = None,
) -> Savings:
    """Simulates typing ``text`` with ``engine``'s suggestions (see the module)."""
    position = keystrokes = accepted = accepted_characters = shown = 0
    while position < len(text):
        request = GhostRequest(
            text=text[:position],
            cursor=position,
            language=language,
            kind=kind,
            max_items=max_items,
            max_chars=max_chars,
            threshold=threshold,
        )
        suggestions = await engine.suggest(request, personal)
        keystrokes += 1
        first = suggestions[0].text if suggestions else ""
        shown += bool(first)
        if first and text.startswith(first, position):
            position += len(first)
            accepted += 1
            accepted_characters += len(first)
        else:
            position += 1
    return Savings(len(text), keystrokes, accepted, accepted_characters, shown)


async def keystroke_savings_of(
    engine: GhostEngine,
    texts: list[str],
    personal: PersonalCounts | None = None,
    *,
    language: str | None = None,
    kind: DocumentKind = "chat",
    max_chars: int = 48,
    threshold: float | None = None,
) -> Savings:
    """:func:`keystroke_savings` summed over several texts (each typed on its own)."""
    total = Savings(0, 0, 0, 0, 0)
    for text in texts:
        total += await keystroke_savings(
            engine,
            text,
            personal,
            language=language,
            kind=kind,
            max_chars=max_chars,
            threshold=threshold,
        )
    return total
