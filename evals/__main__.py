"""``python -m evals``: measure the quality of what the engines produce, one table.

Speed is ``make bench``; this is quality: music a musician would keep, a voice that
sings, ghost text that is right, offline replies that answer. Every module in this
package other than this one (and names starting with ``_``) is a scenario: it defines
``run(quick: bool) -> list[Figure]``, figures with ``goal_on="value"`` and no baseline
(``baseline=NO_BASELINE``) unless a baseline is measured in the same run. Scenarios are
found by listing the package, so adding one means adding a module, nothing else.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.figures import Figure, render_table

Scenario = Callable[[bool], list[Figure]]


def scenarios() -> dict[str, Scenario]:
    """Every scenario module of this package by name, in name order."""
    found: dict[str, Scenario] = {}
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"evals.{info.name}")
        run = getattr(module, "run", None)
        if callable(run):
            found[info.name] = run
    return found


def main(argv: list[str] | None = None) -> int:
    found = scenarios()
    parser = argparse.ArgumentParser(prog="python -m evals", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer samples, rougher figures")
    parser.add_argument("--only", action="append", choices=sorted(found), help="one scenario")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    started = time.monotonic()
    figures: list[Figure] = []
    for name in args.only or list(found):
        began = time.monotonic()
        print(f"{name}:", file=sys.stderr, flush=True)
        figures.extend(found[name](args.quick))
        print(f"  {time.monotonic() - began:.1f} s", file=sys.stderr, flush=True)
    print()
    print(render_table(figures))
    missed = [f.name for f in figures if f.verdict == "MISS"]
    print()
    print(
        f"- {len(figures)} figures in {time.monotonic() - started:.0f} s; "
        f"goals missed: {', '.join(missed) if missed else 'none'}"
    )
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    raise SystemExit(main())
