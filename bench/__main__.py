"""``python -m bench``: run the scenarios, print one table of figures with their goals.

To add a scenario, write a module with ``run(harness) -> list[Figure]`` (see
:mod:`bench.harness`) and add it to :data:`SCENARIOS`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import audio, fanout, ghost, soak, sockets, ttft, workers
from bench.figures import Figure, render_table
from bench.harness import SOAK_LONG_S, Harness, Options
from bench.proc import raise_nofile_limit

Scenario = Callable[[Harness], list[Figure]]

SCENARIOS: dict[str, Scenario] = {
    "socket": sockets.run,
    "ttft": ttft.run,
    "fanout": fanout.run,
    "ghost": ghost.run,
    "audio": audio.run,
    "workers": workers.run,
    "soak": soak.run,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter run, rougher figures")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument(
        "--only", action="append", choices=sorted(SCENARIOS), help="run only this scenario"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="pipelined load-generator processes (1)"
    )
    parser.add_argument(
        "--soak", action="store_true", help=f"run the soak for {SOAK_LONG_S / 60:.0f} minutes"
    )
    parser.add_argument("--soak-users", type=int, default=None, help="users of the soak (200)")
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 when a goal is missed"
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="run every server under cProfile, writing NAME-PID.prof files to DIR "
        "(the figures are then not comparable)",
    )
    parser.add_argument(
        "--idle-connections",
        type=int,
        default=None,
        help="idle connections for the memory figure (2,000; --quick 1,000)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = Options()
    if args.quick:
        options = options.quick()
    if args.soak:
        options = dataclasses.replace(options, soak_s=SOAK_LONG_S)
    if args.soak_users is not None:
        options = dataclasses.replace(options, soak_users=args.soak_users)
    if args.workers is not None:
        options = dataclasses.replace(options, workers=args.workers)
    if args.idle_connections is not None:
        options = dataclasses.replace(options, idle_connections=args.idle_connections)
    if args.profile is not None:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        options = dataclasses.replace(options, profile_dir=args.profile)
    raise_nofile_limit()
    # SIGTERM unwinds like Ctrl-C, so that every server and load generator is ended.
    signal.signal(signal.SIGTERM, _terminate)
    names = args.only or list(SCENARIOS)
    started = time.monotonic()
    figures: list[Figure] = []
    with (
        tempfile.TemporaryDirectory(prefix="yamabiko-bench-") as tmp,
        Harness(options, Path(tmp)) as harness,
    ):
        for name in names:
            print(f"{name}:", file=sys.stderr, flush=True)
            figures.extend(SCENARIOS[name](harness))
        notes = list(harness.notes)
    print()
    print(_environment())
    print(render_table(figures))
    print()
    for note in notes:
        print(f"- {note}")
    print(
        "- vs baseline: yamabiko / baseline (x), or yamabiko - baseline where the goal is "
        "an added amount; for memory and latency lower is better."
    )
    missed = [f.name for f in figures if f.verdict == "MISS"]
    print(
        f"- {len(figures)} figures in {time.monotonic() - started:.0f} s; "
        f"goals missed: {', '.join(missed) if missed else 'none'}"
    )
    if args.json:
        document = {
            "environment": _environment(),
            "options": dataclasses.asdict(options),
            "figures": [f.to_json() for f in figures],
            "notes": notes,
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    return 1 if missed and args.strict else 0


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _environment() -> str:
    from importlib.metadata import version

    return (
        f"python {platform.python_version()}, websockets {version('websockets')}, "
        f"uvloop {version('uvloop')}, msgspec {version('msgspec')}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
