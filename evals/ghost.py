"""Ghost text that is right when it speaks: the ``ngram`` engine typed through held-out
text, English and Japanese, chat and lyrics.

The texts are ``evals/data/ghost/{calibrate,report}/<language>_<kind>.txt``, one
document a line, written for this evaluation and in neither corpus. The ``calibrate``
half sets the engine's calibration and thresholds (``--calibrate`` prints them for
``yamabiko/engines/ghost/calibration.py``); the figures come from the ``report`` half
only.

The simulation (:mod:`yamabiko.engines.ghost.savings`, docs/ghost.md "Evaluation"): a
typist types each line character by character; before each keystroke they look at the
first suggestion; when the text goes on with exactly that suggestion they press Tab (one
keystroke) and jump past it, otherwise they type one character. Figures, per language
(chat and lyrics together): precision (shown suggestions that were right), keystroke
savings (``1 - keystrokes / characters``, Tabs counted), suggestions shown per 100
keystrokes, and the engine's own time per keystroke: the CPU time of the thread that
runs it (p99 over every call, English and Japanese), so that a loaded machine's
scheduling does not count.

``python -m evals.ghost --calibrate`` refits the calibration (a logistic regression of
"typed exactly this next" on every ending of every candidate at every character of the
calibrate half) and picks each threshold (see the calibration module).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Final

import numpy as np

from bench.figures import NO_BASELINE, Figure
from yamabiko.engines.ghost import calibration
from yamabiko.engines.ghost.base import (
    Count,
    DocumentKind,
    GhostRequest,
    GhostSuggestion,
    PersonalCounts,
)
from yamabiko.engines.ghost.ngram import NgramGhostEngine
from yamabiko.engines.ghost.savings import Savings, keystroke_savings_of

DATA: Final = Path(__file__).parent / "data" / "ghost"
CELLS: Final[tuple[tuple[calibration.Language, DocumentKind], ...]] = (
    ("en", "chat"),
    ("en", "lyrics"),
    ("ja", "chat"),
    ("ja", "lyrics"),
)
GOALS: Final = {
    "en": {"precision": 45.0, "savings": 28.0},
    "ja": {"precision": 40.0, "savings": 18.0},
}
SHOWN_GOAL: Final = 30.0
LATENCY_GOAL_MS: Final = 5.0
THRESHOLD_GRID: Final = tuple(round(0.05 * i, 2) for i in range(2, 19))


def texts(split: str, language: str, kind: str) -> list[str]:
    path = DATA / split / f"{language}_{kind}.txt"
    return [line for line in path.read_text("utf-8").splitlines() if line.strip()]


class Timed:
    """The engine, with the time of each call kept."""

    name = "timed"

    def __init__(self, engine: NgramGhostEngine) -> None:
        self.engine = engine
        self.seconds: list[float] = []

    async def suggest(
        self, request: GhostRequest, personal: PersonalCounts | None = None
    ) -> list[GhostSuggestion]:
        started = time.thread_time()
        found = self.engine.suggest_now(request, personal)
        self.seconds.append(time.thread_time() - started)
        return found

    def learn(self, request: GhostRequest, accepted: str) -> list[Count]:
        return self.engine.learn(request, accepted)


def measure(split: str = "report") -> tuple[dict[str, Savings], list[float]]:
    """Savings per language over ``split``, and every call's latency in seconds."""
    engine = NgramGhostEngine()
    engine.warm()
    timed = Timed(engine)
    totals: dict[str, Savings] = {}

    async def typed() -> None:
        for language, kind in CELLS:
            found = await keystroke_savings_of(
                timed, texts(split, language, kind), language=language, kind=kind
            )
            totals[language] = totals.get(language, Savings(0, 0, 0, 0, 0)) + found

    asyncio.run(typed())
    return totals, timed.seconds


def run(quick: bool) -> list[Figure]:
    # The report half is small (a few thousand keystrokes): quick changes nothing.
    totals, seconds = measure("report")
    figures: list[Figure] = []
    for language, found in totals.items():
        label = language.upper()
        goals = GOALS[language]
        figures += [
            Figure(
                f"ghost precision of shown, {label}",
                "%",
                100 * found.precision,
                NO_BASELINE,
                higher_is_better=True,
                goal=goals["precision"],
                decimals=1,
                goal_on="value",
            ),
            Figure(
                f"ghost keystroke savings (Tab counted), {label}",
                "%",
                100 * found.savings,
                NO_BASELINE,
                higher_is_better=True,
                goal=goals["savings"],
                decimals=1,
                goal_on="value",
            ),
            Figure(
                f"ghost suggestions shown per 100 keys, {label}",
                "",
                found.shown_per_100,
                NO_BASELINE,
                higher_is_better=True,
                goal=SHOWN_GOAL,
                decimals=1,
                goal_on="value",
            ),
        ]
    figures.append(
        Figure(
            "ghost engine CPU time per keystroke, p99",
            "ms",
            1000 * float(np.percentile(seconds, 99)),
            NO_BASELINE,
            higher_is_better=False,
            goal=LATENCY_GOAL_MS,
            decimals=2,
            goal_on="value",
        )
    )
    return figures


# Calibration


def samples(language: calibration.Language) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of every ending at every character of the calibrate half."""
    engine = NgramGhostEngine()
    rows: list[tuple[float, ...]] = []
    labels: list[float] = []
    for lang, kind in CELLS:
        if lang != language:
            continue
        for text in texts("calibrate", lang, kind):
            for position in range(len(text)):
                request = GhostRequest(
                    text=text[:position], cursor=position, language=lang, kind=kind
                )
                for ends in engine.endings(request):
                    for ending, p, words, typed, _ in ends:
                        rows.append(calibration.features(p, words, typed, kind == "lyrics"))
                        labels.append(1.0 if text.startswith(ending, position) else 0.0)
    return np.array(rows), np.array(labels)


def fit(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 50) -> np.ndarray:
    """Logistic regression by Newton's method (a small L2 keeps it finite)."""
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -50, 50)))
        gradient = x.T @ (p - y) + l2 * w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + l2 * np.eye(x.shape[1])
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def calibrate() -> None:
    for language in ("en", "ja"):
        x, y = samples(language)
        weights = fit(x, y)
        calibration.WEIGHTS[language] = tuple(round(float(v), 4) for v in weights)
        print(f"{language}: {len(y)} endings, {int(y.sum())} right")
    print("WEIGHTS = {")
    for language, weights in calibration.WEIGHTS.items():
        print(f'    "{language}": {weights},')
    print("}")
    engine = NgramGhostEngine()
    print("THRESHOLDS = {")
    for language, kind in CELLS:
        tried = []
        for threshold in THRESHOLD_GRID:
            found = asyncio.run(
                keystroke_savings_of(
                    engine,
                    texts("calibrate", language, kind),
                    language=language,
                    kind=kind,
                    threshold=threshold,
                )
            )
            tried.append((threshold, found))
        chosen = calibration.choose_threshold(
            language, [(t, f.precision, f.savings, f.shown_per_100) for t, f in tried]
        )
        print(f'    ("{language}", "{kind}"): {chosen},')
    print("}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m evals.ghost", description=__doc__)
    parser.add_argument("--calibrate", action="store_true", help="refit; print the constants")
    if parser.parse_args().calibrate:
        calibrate()
    else:
        for figure in run(quick=False):
            print(f"{figure.name}: {figure.yamabiko:.{figure.decimals}f} {figure.unit}")


if __name__ == "__main__":
    main()
