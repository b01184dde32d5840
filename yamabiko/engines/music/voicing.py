"""Voice leading: four-voice voicings (the root in the bass, three upper voices) for a
chord sequence, chosen by a search over voicings with costs for parallels, leaps, range
and spacing (docs/agent.md, "What the music engine guarantees").

Theory of operation: every chord has a small set of candidate voicings (the root in the
bass, C2-F#3, in either octave where both fit; the upper voices holding the triad, or a
seventh chord's third, fifth and seventh, between E3 and C5, adjacent voices at most an
octave apart). Moving from one voicing to the next costs:

- a large penalty for each pair of voices (bass included) a perfect fifth or an octave
  apart in both chords with both voices moving (parallel or contrary consecutives),
- the semitones the upper voices move, and more for leaps over a major third,
- the semitones the bass moves, and more for a bass leap over a fourth,
- small costs for a top voice far from the middle of the range and for wide spacing.

The search keeps the cheapest few partial sequences (a beam) rather than only the
cheapest next voicing, so a choice that leads into unavoidable parallels two chords
later loses to one that does not. Each step is memoized: loops repeat their chords,
so an 8-bar part costs a few distinct steps.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import lru_cache
from typing import Final

from .theory import Chord

Voicing = tuple[int, ...]

BASS_LOW: Final = 36  # C2
BASS_HIGH: Final = 55  # G3 (exclusive): most roots have two octaves to choose from
BASS_HOME: Final = 45  # A2
UPPER_LOW: Final = 52  # E3
UPPER_HIGH: Final = 72  # C5
TOP_TARGET: Final = 67  # G4: the top voice's home, under a melody from C4 up

PARALLEL: Final = 100.0
_BEAM: Final = 4


@lru_cache(maxsize=256)
def candidates(chord: Chord) -> tuple[Voicing, ...]:
    """Every voicing of ``chord`` the search considers, from the bass up."""
    upper_tones = chord.tones if len(chord.tones) == 3 else chord.tones[1:]
    basses = [p for p in range(BASS_LOW, BASS_HIGH) if p % 12 == chord.root]
    options = [[p for p in range(UPPER_LOW, UPPER_HIGH + 1) if p % 12 == pc] for pc in upper_tones]
    found: set[Voicing] = set()
    for combo in itertools.product(*options):
        upper = sorted(combo)
        if any(b - a > 12 or b == a for a, b in itertools.pairwise(upper)):
            continue
        if upper[-1] - upper[0] > 16:
            continue
        for bass in basses:
            if upper[0] - bass >= 3:
                found.add((bass, *upper))
    return tuple(sorted(found))


def consecutives(before: Voicing, after: Voicing) -> int:
    """Pairs of voices a perfect fifth or octave apart in both voicings with both
    voices moving (voices paired from the bottom)."""
    count = 0
    for i, j in itertools.combinations(range(min(len(before), len(after))), 2):
        if before[i] == after[i] or before[j] == after[j]:
            continue
        first = (before[j] - before[i]) % 12
        if first in (0, 7) and first == (after[j] - after[i]) % 12:
            count += 1
    return count


def _shape(voicing: Voicing) -> float:
    """The cost of a voicing on its own: its top voice's and its bass's distance from
    home, spacing."""
    upper = voicing[1:]
    cost = 0.15 * max(0, abs(upper[-1] - TOP_TARGET) - 3)
    cost += 0.5 * max(0, upper[-1] - upper[0] - 12)
    cost += 0.3 * max(0, upper[0] - voicing[0] - 19)
    cost += 0.3 * max(0, abs(voicing[0] - BASS_HOME) - 5)  # the bass drifts no further
    return cost


@lru_cache(maxsize=8192)
def step_cost(before: Voicing, after: Voicing) -> float:
    """The cost of moving from ``before`` to ``after`` (see the module's docstring)."""
    cost = PARALLEL * consecutives(before, after) + _shape(after)
    bass = abs(after[0] - before[0])
    cost += 0.8 * bass + (2.0 * (bass - 5) if bass > 5 else 0.0)
    for a, b in zip(before[1:], after[1:], strict=False):
        move = abs(a - b)
        cost += move + (1.5 * (move - 4) if move > 4 else 0.0)
    return cost


def _start_cost(voicing: Voicing) -> float:
    # With nothing before it, the first chord sits in the middle: bass near A2, the
    # root on top or in the middle voice (a full, familiar sound).
    return _shape(voicing) + 0.3 * abs(voicing[0] - BASS_HOME) + 0.2 * abs(voicing[-1] - TOP_TARGET)


def voice(chords: Sequence[Chord], previous: Voicing | None = None) -> list[Voicing]:
    """A voicing per chord, led from ``previous`` (or from nothing), by the beam search
    described in the module's docstring. Deterministic: ties go to the lower voicing."""
    if not chords:
        return []
    # A beam entry: (cost so far, its last voicing, index of its parent in the
    # previous step's beam); the path is read back through the parents at the end.
    steps: list[list[tuple[float, Voicing, int]]] = []
    first = candidates(chords[0])
    if previous is None:
        beam = sorted((_start_cost(v), v, -1) for v in first)[:_BEAM]
    else:
        beam = sorted((step_cost(previous, v), v, -1) for v in first)[:_BEAM]
    steps.append(beam)
    for chord in chords[1:]:
        options = candidates(chord)
        grown = sorted(
            (cost + step_cost(last, v), v, parent)
            for parent, (cost, last, _) in enumerate(beam)
            for v in options
        )
        beam = []
        seen: set[Voicing] = set()
        for entry in grown:
            if entry[1] in seen:
                continue  # one path per end voicing: the rest can only do worse from here
            seen.add(entry[1])
            beam.append(entry)
            if len(beam) == _BEAM:
                break
        steps.append(beam)
    path: list[Voicing] = []
    index = 0
    for beam in reversed(steps):
        _, voicing, parent = beam[index]
        path.append(voicing)
        index = parent
    return path[::-1]
