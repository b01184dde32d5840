"""How sure the ``ngram`` engine is: its raw probabilities turned into calibrated
confidences, and the default threshold a suggestion's confidence must reach to be shown,
per language and document kind.

The n-gram models are overconfident on text they never saw (a context seen once makes
its one follower look certain), so a suggestion's score is not its raw probability but
a logistic fit of "the user typed exactly this next" on its features (:func:`features`)
over held-out text: ``score = 1 / (1 + exp(-w . x))``, one ``w`` per language.

Both the weights and the thresholds are set from the ``calibrate`` half of
``evals/data/ghost`` (text in neither corpus) by ``python -m evals.ghost --calibrate``:
it fits the weights on every ending of every candidate at every character, then, per
language and kind, types the texts with each threshold and keeps the one with the best
keystroke savings among those whose shown suggestions are right at least
:data:`PRECISION_FLOOR` of the time and that show one at :data:`SHOWN_FLOOR` keystrokes
in 100 or more (:func:`choose_threshold`). The ``report`` half is only ever typed to
report (docs/ghost.md, "Evaluation"). A document may set its own threshold
(``ghost/open``, ``ghost/configure``).
"""

from __future__ import annotations

import math
from typing import Final, Literal

Language = Literal["en", "ja"]

PRECISION_FLOOR: Final = {"en": 0.47, "ja": 0.42}
"""Shown suggestions must be right at least this often on the calibrate half (a little
above the goals of docs/ghost.md, for the report half's sake)."""
SHOWN_FLOOR: Final = 32.0
"""Keystrokes in 100 that must still show a suggestion: a silent engine is no goal."""

WEIGHTS: Final[dict[str, tuple[float, ...]]] = {
    "en": (-0.1684, 0.9603, -1.5076, 0.2661, -0.2079),
    "ja": (0.1232, 0.8197, -0.7421, 0.7147, -0.2763),
}
"""Per language, the weights of :func:`features` (generated; see the module)."""

THRESHOLDS: Final[dict[tuple[str, str], float]] = {
    ("en", "chat"): 0.4,
    ("en", "lyrics"): 0.4,
    ("ja", "chat"): 0.3,
    ("ja", "lyrics"): 0.35,
}
"""``(language, kind)`` -> the default threshold (generated; see the module). Kinds
other than ``lyrics`` read ``chat``'s: they are prose, completed from the same corpus."""


def features(probability: float, words: int, typed: int, lyrics: bool) -> tuple[float, ...]:
    """What the fit weighs: a bias, the log of the raw probability, how many words the
    suggestion adds after its first, how much of its first word was typed already (up
    to 4 characters), and whether the document is lyrics."""
    return (
        1.0,
        math.log(max(probability, 1e-9)),
        float(words - 1),
        float(min(typed, 4)),
        1.0 if lyrics else 0.0,
    )


def confidence(
    language: Language, probability: float, words: int, typed: int, lyrics: bool
) -> float:
    """The calibrated probability that the user types exactly this suggestion next."""
    x = features(probability, words, typed, lyrics)
    z = sum(w * v for w, v in zip(WEIGHTS[language], x, strict=True))
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def choose_threshold(language: Language, tried: list[tuple[float, float, float, float]]) -> float:
    """Of ``(threshold, precision, savings, shown per 100)`` measured on the calibrate
    half: the best savings among the thresholds that meet both floors; if none does,
    the most precise of those that still show enough."""
    loud = [t for t in tried if t[3] >= SHOWN_FLOOR] or tried
    good = [t for t in loud if t[1] >= PRECISION_FLOOR[language]]
    if good:
        return max(good, key=lambda t: (t[2], t[1]))[0]
    return max(loud, key=lambda t: (t[1], t[2]))[0]


def default_threshold(kind: str, language: Language) -> float:
    return THRESHOLDS[(language, "lyrics" if kind == "lyrics" else "chat")]
