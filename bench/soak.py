"""Soak: does one node's memory and CPU stay flat under a steady mixed load?

``soak_users`` users (200) on one fresh Yamabiko process, from a worker process
(:mod:`bench.soakers`): each types ghost text at 5 keys/s, sends a ``chat/send`` every
8 s (the offline ``local`` engine), a four-note song every 20 s and a ``ping`` every
second, for ``soak_s`` (120 s; 900 s with ``python -m bench --soak``; 30 s with
``--quick``). Every :data:`SAMPLE_S` (less in a short run) the server's resident memory and CPU
time are read from ``/proc``.

Figures (docs/streams.md, "Retention", says what bounds the memory):

- **RSS plateau**: the highest RSS over the last third of the run (goal: 300 MB);
- **RSS growth**: the RSS slope over the last half, MB per minute (a plateau is ~0);
- **CPU per minute drift**: the server's CPU seconds per minute in the last third of
  the run against the first third after :data:`WARMUP_S`, in percent, as an absolute
  value (goal: 10%): a heap that grows makes the same load cost more;
- **ping p99** while all this runs (after the warm-up), and, in the notes, errors,
  closed sockets, replies and songs completed, the load generator's own CPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from bench.figures import NO_BASELINE, Figure
from bench.harness import Harness
from bench.proc import cpu_seconds, end_process, read_line, rss_kib
from bench.servers import ROOT, YAMABIKO

SAMPLE_S = 5.0
WARMUP_S = 20.0
"""Left out of the CPU comparison and the ping figure (a quarter of a shorter run):
sessions, documents, caches and the engines' first loads are still forming."""
RSS_GOAL_MB = 300.0
DRIFT_GOAL_PCT = 10.0
START_IN_S = 0.5


def run(harness: Harness) -> list[Figure]:
    options = harness.options
    duration = options.soak_s
    config = {
        "users": options.soak_users,
        "duration_s": duration,
        "keys_per_s": 5.0,
        "chat_every_s": 8.0,
        "song_every_s": 20.0,
        "ping_every_s": 1.0,
        "out": str(harness.workdir / "soak.json"),
    }
    with harness.fresh_server(YAMABIKO, name="yamabiko-soak") as server:
        target = server.target
        assert target is not None
        config["target"] = target.to_json()
        worker = subprocess.Popen(
            [sys.executable, "-m", "bench.soakers", json.dumps(config)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            line = read_line(worker, timeout_s=120.0, what="the soak's load generator")
            if line != "ready":
                raise RuntimeError(f"the soak's load generator said {line!r}")
            harness.progress(f"soak: {options.soak_users} users for {duration:.0f} s")
            t0 = time.monotonic() + START_IN_S
            assert worker.stdin is not None
            worker.stdin.write(f"go {t0!r}\n".encode())
            worker.stdin.flush()
            samples = _sample(target.pid, t0, duration, harness, min(SAMPLE_S, duration / 24))
            line = read_line(worker, timeout_s=60.0, what="the soak's load generator")
            if line != "done":
                raise RuntimeError(f"the soak's load generator said {line!r}")
        finally:
            end_process(worker)
    with open(config["out"], encoding="utf-8") as file:
        record = json.load(file)
    return _figures(harness, samples, record, duration)


def _sample(
    pid: int, t0: float, duration: float, harness: Harness, every: float
) -> list[tuple[float, float, float]]:
    """(seconds since T0, RSS MB, CPU s) every ``every`` seconds until the end."""
    samples: list[tuple[float, float, float]] = []
    next_at = t0
    while True:
        time.sleep(max(0.0, next_at - time.monotonic()))
        now = time.monotonic() - t0
        samples.append((now, rss_kib(pid) / 1024, cpu_seconds(pid)))
        if len(samples) % max(1, round(60 / every)) == 0:
            harness.progress(f"soak: {now:.0f} s, RSS {samples[-1][1]:.0f} MB")
        if now >= duration:
            return samples
        next_at += every


def _rate(samples: list[tuple[float, float, float]], start: float, end: float) -> float:
    """CPU seconds per minute between ``start`` and ``end`` (seconds since T0)."""
    inside = [s for s in samples if start <= s[0] <= end]
    if len(inside) < 2:
        return float("nan")
    (t1, _, c1), (t2, _, c2) = inside[0], inside[-1]
    return (c2 - c1) / (t2 - t1) * 60


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points."""
    n = len(points)
    if n < 2:
        return float("nan")
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else float("nan")


def _figures(
    harness: Harness,
    samples: list[tuple[float, float, float]],
    record: dict[str, Any],
    duration: float,
) -> list[Figure]:
    warmup = min(WARMUP_S, duration / 4)
    third = (duration - warmup) / 3
    first_cpu = _rate(samples, warmup, warmup + third)
    last_cpu = _rate(samples, duration - third, duration)
    drift = (last_cpu - first_cpu) / first_cpu * 100 if first_cpu else float("nan")
    plateau = max(rss for t, rss, _ in samples if t >= duration - duration / 3)
    growth = _slope([(t / 60, rss) for t, rss, _ in samples if t >= duration / 2])
    start = record["t0"] + warmup
    rtts = sorted(rtt for sent, rtt in record["pings"] if sent >= start)
    worst = max((rtt for _, rtt in record["pings"]), default=float("nan")) * 1000
    p99 = rtts[int(len(rtts) * 0.99)] * 1000 if rtts else float("nan")
    minutes = duration / 60
    step = duration / 6
    trace = ", ".join(
        f"{min(samples, key=lambda s: abs(s[0] - k * step))[1]:.0f}" for k in range(7)
    )
    harness.note(
        f"soak: {duration:.0f} s, RSS {samples[0][1]:.0f} -> {samples[-1][1]:.0f} MB "
        f"(every {step:.0f} s: {trace}); "
        f"server CPU {first_cpu:.1f} s/min after warm-up, {last_cpu:.1f} s/min at the end"
    )
    harness.note(
        f"soak: {len(rtts)} pings after the warm-up ({warmup:.0f} s), worst of all "
        f"{worst:.0f} ms, {record['unanswered_pings']} unanswered, "
        f"{record['error_count']} errors, {record['closed']} closed sockets, "
        f"{record['stream_ends']} replies and {record['audio_ends']} songs ended "
        f"({record['audio_frames']} audio frames); load generator CPU "
        f"{record['cpu_s'] / minutes:.1f} s/min, late p99 {record['late_p99_s'] * 1000:.1f} ms"
    )
    for error in record["errors"][:3]:
        harness.note(f"soak error: {error}")
    return [
        Figure(
            "soak: RSS plateau (last third)", "MB", plateau, NO_BASELINE, False,
            goal=RSS_GOAL_MB, decimals=0, against="-", goal_on="value",
        ),
        Figure(
            "soak: RSS growth (last half)", "MB/min", growth, NO_BASELINE, False,
            decimals=1, against="-", goal_on="value",
        ),
        Figure(
            "soak: server CPU per minute, |drift|", "%", abs(drift), NO_BASELINE, False,
            goal=DRIFT_GOAL_PCT, decimals=1, against="-", goal_on="value",
        ),
        Figure(
            "soak: ping p99", "ms", p99, NO_BASELINE, False,
            decimals=1, against="-", goal_on="value",
        ),
    ]  # fmt: skip
