"""Keystroke savings: how much typing an engine's suggestions spare a user.

A simulated user types ``text`` character by character. Before each keystroke they
look at the engine's first suggestion for the text typed so far; when it is exactly
what they were about to type next, they accept it with one keystroke (Tab) and jump
past it, otherwise they type one character. Savings are ``1 - keystrokes /
characters``: 0 for an engine that never helps, close to 1 for one that knows the text.
The counts a user has (``personal``) are read, never updated, so a run is repeatable.
Used by the tests and by ``make bench``.
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

    @property
    def savings(self) -> float:
        """``1 - keystrokes / characters`` (0 for an empty text)."""
        return 1.0 - self.keystrokes / self.characters if self.characters else 0.0

    def __add__(self, other: Savings) -> Savings:
        return Savings(
            self.characters + other.characters,
            self.keystrokes + other.keystrokes,
            self.accepted + other.accepted,
            self.accepted_characters + other.accepted_characters,
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
) -> Savings:
    """Simulates typing ``text`` with ``engine``'s suggestions (see the module)."""
    position = keystrokes = accepted = accepted_characters = 0
    while position < len(text):
        request = GhostRequest(
            text=text[:position],
            cursor=position,
            language=language,
            kind=kind,
            max_items=max_items,
            max_chars=max_chars,
        )
        suggestions = await engine.suggest(request, personal)
        keystrokes += 1
        first = suggestions[0].text if suggestions else ""
        if first and text.startswith(first, position):
            position += len(first)
            accepted += 1
            accepted_characters += len(first)
        else:
            position += 1
    return Savings(len(text), keystrokes, accepted, accepted_characters)


async def keystroke_savings_of(
    engine: GhostEngine,
    texts: list[str],
    personal: PersonalCounts | None = None,
    *,
    language: str | None = None,
    kind: DocumentKind = "chat",
    max_chars: int = 48,
) -> Savings:
    """:func:`keystroke_savings` summed over several texts (each typed on its own)."""
    total = Savings(0, 0, 0, 0)
    for text in texts:
        total += await keystroke_savings(
            engine, text, personal, language=language, kind=kind, max_chars=max_chars
        )
    return total
