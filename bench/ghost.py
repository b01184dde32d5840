"""Ghost text: how fast suggestions follow keystrokes, and how many keystrokes they save.

**Typing latency.** ``ghost_documents`` documents (50; 10 with ``--quick``) are typed at
once against the real server (the shared ``yamabiko`` one, default ``ngram`` engine),
each on its own connection, from a worker process (:mod:`bench.typists`), at
``ghost_keystrokes_per_s`` (10) each for ``ghost_typing_s`` (20 s; 4 s), on a fixed
schedule with the documents evenly out of phase (500 keystrokes per second in all).
Each keystroke is a ``ghost/change`` appending one character of music-production text
(every fifth document Japanese), with now and then a typo and its backspace.

For every ``ghost/suggestions`` received: latency = its arrival at the worker minus the
send time of the keystroke whose version it names. A suggestion is **stale** when

- its version is lower than one the document already got suggestions for (out of
  order), or
- the keystroke after its version had been sent more than :data:`GRACE_S` (5 ms)
  before it arrived (overtaken: the server had had that long to read the newer
  keystroke, cancel the old work and drop its queued result).

Also: the share of keystrokes that got suggestions for their own version, the server's
CPU time per keystroke, its own view of the latency (``/metrics``), and how late the
worker sent against its schedule (if that is large, the client is the bottleneck).

**Keystroke savings** (no server): :func:`~yamabiko.engines.ghost.savings.
keystroke_savings_of` with :class:`~yamabiko.engines.ghost.ngram.NgramGhostEngine` on
held-out sentences written for this bench (in neither corpus), English and Japanese,
with the corpora alone and then with a :class:`~yamabiko.engines.ghost.base.
PersonalCounts` learned from a few texts the same user accepted before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from bench import typists
from bench.figures import NO_BASELINE, Figure
from bench.harness import Harness
from bench.proc import end_process, read_line
from bench.servers import ROOT, YAMABIKO, Target

P99_GOAL_MS = 20.0
GRACE_S = 0.005
DRAIN_S = 1.0
"""After the last keystroke, how long the workers wait for the last suggestions."""
START_IN_S = 0.5
"""The schedule starts this long after every worker is ready."""
SAVINGS_GOAL_POINTS = 0.1
"""Personal counts must add at least this many points of savings (after > before)."""


def run(harness: Harness) -> list[Figure]:
    return _typing(harness) + _savings(harness)


# Typing latency


@dataclass(frozen=True)
class Typed:
    """What the workers saw, pooled over the documents."""

    keystrokes: int
    latencies: list[float]
    """Seconds, one per suggestion received."""
    latencies_by_language: dict[str, list[float]]
    suggestions: int
    empty: int
    """Suggestions with no items."""
    own_version: int
    """Keystrokes that got suggestions naming their version."""
    out_of_order: int
    overtaken: int
    stale: int
    """Suggestions that were out of order or overtaken (or both), each counted once."""
    duplicates: int
    resyncs: list[str]
    others: int
    closed: int
    late: list[float]
    """How late each keystroke left against its schedule, s."""
    client_cpu_s: float
    drain_s: float


def _typing(harness: Harness) -> list[Figure]:
    options = harness.options
    server = harness.server(YAMABIKO)
    target = server.target
    assert target is not None
    documents = options.ghost_documents
    period = 1.0 / options.ghost_keystrokes_per_s
    keystrokes = max(1, round(options.ghost_typing_s * options.ghost_keystrokes_per_s))
    workers = max(1, min(options.workers, documents))
    shares = [documents // workers + (1 if i < documents % workers else 0) for i in range(workers)]
    outs = [harness.workdir / f"typists-{i}.json" for i in range(workers)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        first = 0
        for share, out in zip(shares, outs, strict=True):
            config = {
                "target": target.to_json(),
                "first": first,
                "documents": share,
                "total": documents,
                "keystrokes": keystrokes,
                "period_s": period,
                "drain_s": DRAIN_S,
                "out": str(out),
            }
            first += share
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bench.typists", json.dumps(config)],
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                )
            )
        for proc in procs:
            line = read_line(proc, timeout_s=120.0, what="a typist worker")
            if line != "ready":
                raise RuntimeError(f"a typist worker said {line!r} instead of 'ready'")
        before = _metrics(target)
        gc_before = server.command("gc")
        cpu_before = server.cpu_seconds()
        t0 = time.monotonic() + START_IN_S
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(f"go {t0!r}\n".encode())
            proc.stdin.flush()
        bound = START_IN_S + options.ghost_typing_s + DRAIN_S + 60.0
        for proc in procs:
            line = read_line(proc, timeout_s=bound, what="a typist worker")
            if line != "done":
                raise RuntimeError(f"a typist worker said {line!r} instead of 'done'")
        window = time.monotonic() - t0
        server_cpu = server.cpu_seconds() - cpu_before
        gc_after = server.command("gc")
        after = _metrics(target)
    finally:
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5.0)
            end_process(proc)
    results = [json.loads(out.read_text()) for out in outs]
    typed = _pool(results, keystrokes)
    if typed.resyncs or typed.closed:
        raise RuntimeError(
            f"ghost: {len(typed.resyncs)} resyncs, {typed.closed} connections closed by the "
            f"server: {typed.resyncs[:1]}"
        )
    p50 = _percentile(typed.latencies, 0.50) * 1000
    p99 = _percentile(typed.latencies, 0.99) * 1000
    own = typed.own_version / typed.keystrokes * 100 if typed.keystrokes else float("nan")
    server_us = server_cpu / typed.keystrokes * 1e6 if typed.keystrokes else float("nan")
    _notes(harness, typed, documents, keystrokes, window, server_cpu, gc_before, gc_after)
    _server_view(harness, before, after, typed)
    _engine_alone(harness, documents, keystrokes, server_us)
    harness.progress(
        f"ghost typing: {documents} documents x {keystrokes} keystrokes, p50 {p50:.2f} ms, "
        f"p99 {p99:.2f} ms, {typed.stale} stale, {own:.1f}% answered for their own version"
    )
    return [
        Figure("ghost keystroke to suggestions p50", "ms", p50, NO_BASELINE, False,
               decimals=2, against="-", goal_on="value"),
        Figure("ghost keystroke to suggestions p99", "ms", p99, NO_BASELINE, False,
               P99_GOAL_MS, decimals=2, against="-", goal_on="value"),
        Figure("  stale suggestions", "count", typed.stale, NO_BASELINE, False, 0,
               against="-", goal_on="value"),
        Figure("  keystrokes answered for their version", "%", own, NO_BASELINE, True,
               decimals=1, against="-", goal_on="value"),
        Figure("  server CPU per keystroke", "us", server_us, NO_BASELINE, False,
               against="-", goal_on="value"),
    ]  # fmt: skip


def _pool(results: list[dict[str, Any]], keystrokes: int) -> Typed:
    latencies: list[float] = []
    by_language: dict[str, list[float]] = {}
    suggestions = empty = own = out_of_order = overtaken = stale = duplicates = 0
    resyncs: list[str] = []
    others = closed = 0
    sent_count = 0
    for result in results:
        for doc in result["documents"]:
            sent: list[float] = doc["sent"]
            sent_count += len(sent)
            seen: set[int] = set()
            highest = 0
            lang = by_language.setdefault(doc["language"], [])
            for version, items, at in doc["suggestions"]:
                suggestions += 1
                empty += items == 0
                if not 1 <= version <= len(sent):
                    raise RuntimeError(f"a suggestion for version {version}, never sent")
                latency = at - sent[version - 1]
                latencies.append(latency)
                lang.append(latency)
                late_order = version < highest
                passed = version < len(sent) and sent[version] <= at - GRACE_S
                out_of_order += late_order
                overtaken += passed
                stale += late_order or passed
                duplicates += version in seen
                seen.add(version)
                highest = max(highest, version)
            own += len(seen)
            resyncs += doc["resyncs"]
            others += doc["others"]
            closed += bool(doc["closed"])
    if sent_count != keystrokes * sum(len(r["documents"]) for r in results):
        raise RuntimeError(f"the workers sent {sent_count} keystrokes, not all of them")
    return Typed(
        keystrokes=sent_count,
        latencies=latencies,
        latencies_by_language=by_language,
        suggestions=suggestions,
        empty=empty,
        own_version=own,
        out_of_order=out_of_order,
        overtaken=overtaken,
        stale=stale,
        duplicates=duplicates,
        resyncs=resyncs,
        others=others,
        closed=closed,
        late=[t for r in results for t in r["late"]],
        client_cpu_s=sum(float(r["cpu_s"]) for r in results),
        drain_s=max(float(r["drain_s"]) for r in results),
    )


def _notes(
    harness: Harness,
    typed: Typed,
    documents: int,
    keystrokes: int,
    window: float,
    server_cpu: float,
    gc_before: dict[str, Any],
    gc_after: dict[str, Any],
) -> None:
    ms = 1000.0
    languages = ", ".join(
        f"{lang} p50 {_percentile(v, 0.5) * ms:.2f} ms / p99 {_percentile(v, 0.99) * ms:.2f} ms "
        f"({len(v):,})"
        for lang, v in sorted(typed.latencies_by_language.items())
    )
    gc_s = sum(gc_after["seconds"]) - sum(gc_before["seconds"])
    backspaces = sum(
        1 for i in range(documents) for _, _, text in typists.keystrokes(i, keystrokes) if not text
    )
    japanese = sum(1 for i in range(documents) if typists.language(i) == "ja")
    harness.note(
        f"ghost typing: {documents} documents ({japanese} Japanese) x {keystrokes} keystrokes "
        f"({typed.keystrokes:,} in all, {backspaces} backspaces), one connection each; "
        f"{typed.suggestions:,} "
        f"suggestions received ({typed.empty:,} empty), max latency "
        f"{max(typed.latencies, default=float('nan')) * ms:.1f} ms; by language: {languages}"
    )
    harness.note(
        f"ghost typing: stale = {typed.out_of_order} out of order + {typed.overtaken} "
        f"overtaken (newer keystroke sent > {GRACE_S * ms:.0f} ms before), counted once each; "
        f"{typed.duplicates} duplicates; {typed.keystrokes - typed.own_version:,} keystrokes got "
        f"no suggestions for their own version; last suggestions waited for "
        f"{typed.drain_s * ms:.0f} ms after the last keystroke"
    )
    harness.note(
        f"ghost typing: the server used {server_cpu / window:.0%} of a core "
        f"({server_cpu / typed.keystrokes * 1e6:.0f} us per keystroke, garbage collector "
        f"{gc_s / server_cpu if server_cpu else 0:.0%} of it), the typist workers "
        f"{typed.client_cpu_s / window:.0%}; keystrokes left "
        f"{_percentile(typed.late, 0.5) * ms:.2f} ms late at p50, "
        f"{_percentile(typed.late, 0.99) * ms:.2f} ms at p99, "
        f"{max(typed.late, default=0.0) * ms:.1f} ms at most against their schedule"
    )


# The server's own view, from /metrics

_SAMPLE = re.compile(r"^([a-z_]+)(\{[^}]*\})? ([0-9.eE+-]+|NaN|\+Inf)$")


def _metrics(target: Target) -> dict[str, float]:
    """The ghost samples of the server's ``/metrics`` (name plus labels -> value)."""
    url = f"http://{target.host}:{target.port}/metrics"
    with urllib.request.urlopen(url, timeout=10.0) as response:
        text = response.read().decode()
    found: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match.group(1).startswith("yamabiko_ghost_"):
            found[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return found


def _server_view(
    harness: Harness, before: dict[str, float], after: dict[str, float], typed: Typed
) -> None:
    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    engine = '{engine="ngram"}'
    count = delta(f"yamabiko_ghost_latency_seconds_count{engine}")
    total = delta(f"yamabiko_ghost_latency_seconds_sum{engine}")
    if not count:
        harness.note("ghost typing: /metrics has no ghost latency for the ngram engine")
        return
    buckets = sorted(
        (float(m.group(1)), delta(key))
        for key in after
        if (m := re.search(r'le="([0-9.eE+-]+)"', key))
        and key.startswith("yamabiko_ghost_latency_seconds_bucket")
        and 'engine="ngram"' in key
    )
    p99_bound = next((le for le, n in buckets if n >= 0.99 * count), float("inf"))
    client_mean = sum(typed.latencies) / len(typed.latencies) if typed.latencies else 0.0
    harness.note(
        f"ghost typing, the server's view (yamabiko_ghost_latency_seconds: a keystroke's "
        f"handler starting to its suggestions queued): {count:,.0f} pushed, mean "
        f"{total / count * 1000:.3f} ms, p99 at most {p99_bound * 1000:g} ms; the client "
        f"saw a mean of {client_mean * 1000:.3f} ms (the rest is reading, parsing, writing "
        f"and the sockets); {delta('yamabiko_ghost_stale_total'):.0f} results dropped "
        f"as stale, {delta('yamabiko_ghost_resyncs_total'):.0f} resyncs"
    )


def _engine_alone(harness: Harness, documents: int, keystrokes: int, server_us: float) -> None:
    """The same keystrokes replayed through the engine alone, in the bench process: the
    share of the server's time per keystroke that is the engine's."""
    from yamabiko.engines.ghost.base import GhostRequest
    from yamabiko.engines.ghost.ngram import NgramGhostEngine

    engine = NgramGhostEngine()
    engine.suggest_now(GhostRequest(text="warm", cursor=4))
    engine.suggest_now(GhostRequest(text="ミックス", cursor=4))
    times: list[float] = []
    for index in range(documents):
        text = ""
        for start, end, typed in typists.keystrokes(index, keystrokes):
            text = text[:start] + typed + text[end:]
            request = GhostRequest(text=text, cursor=start + len(typed))
            started = time.perf_counter()
            engine.suggest_now(request)
            times.append(time.perf_counter() - started)
    mean_us = sum(times) / len(times) * 1e6
    harness.note(
        f"ghost typing, the engine alone (the same keystrokes replayed through "
        f"NgramGhostEngine.suggest_now in the bench process): mean {mean_us:.0f} us, p50 "
        f"{_percentile(times, 0.5) * 1e6:.0f} us, p99 {_percentile(times, 0.99) * 1e6:.0f} us "
        f"per keystroke, {mean_us / server_us:.0%} of the server's CPU per keystroke; the "
        f"rest is the protocol (frames, JSON, the session, the task, the write)"
    )


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# Keystroke savings

HELD_OUT_EN = [
    "Bounce the stems at 24 bit before the mastering session on Friday.",
    "Put the 1176 on the bass guitar with a slow attack so the pick still comes through.",
    "Route the toms to the parallel compression bus as well.",
    "Automate the delay throws on the last word of the second verse.",
    "Pan the two rhythm guitars hard left and hard right and keep the lead in the middle.",
    "High pass the overheads around two hundred hertz so the cymbals stay bright.",
    "Check the mix in mono before you print it, because phase problems hide in stereo.",
    "A little saturation on the bass helps it read on small speakers.",
    "Leave some headroom on the master bus so the mastering engineer has room to work.",
    "Double the chorus vocal and tuck the second take a few decibels under the first.",
    "If the kick and the bass fight, carve a small dip in the bass where the kick hits.",
    "Take a break every hour, because tired ears hear the high end as dull.",
]
"""Written for this bench: in neither corpus (nor in the tests)."""
HELD_OUT_JA = [
    "ベースにも1176を挿して、アタックは遅めにしてピッキングの音を残す。",
    "タムもパラレルコンプのバスに送っておく。",
    "書き出す前に、マスターのリミッターを外しておくのを忘れずに。",
    "サビのボーカルは二回録って、二本目を少し下げて重ねる。",
    "ギターは左右に振って、歌は真ん中に置く。",
    "長時間のミックスでは、一時間ごとに休憩を入れる。",
]
ACCEPTED = [
    "Bounce the stems at 24 bit and 48 kHz before sending them to the mastering engineer.",
    "Put the 1176 on the lead vocal with a fast attack and a slow release.",
    "Route the drum room mics to the parallel compression bus and blend it under the kit.",
    "Automate the delay throws on the last word of every chorus line.",
    "ボーカルには1176を挿して、アタックは速め、リリースは遅めにする。",
    "ドラムのルームマイクはパラレルコンプのバスに送って、キットの下に混ぜる。",
    "ミックスを書き出す前に、マスターのリミッターを外しておく。",
]
"""What the same user accepted before: their studio's habits (the personal counts)."""


def _savings(harness: Harness) -> list[Figure]:
    from yamabiko.engines.ghost.base import GhostRequest, PersonalCounts
    from yamabiko.engines.ghost.ngram import NgramGhostEngine
    from yamabiko.engines.ghost.savings import Savings, keystroke_savings_of

    engine = NgramGhostEngine()
    personal = PersonalCounts()
    for text in ACCEPTED:
        personal.add(engine.learn(GhostRequest(text="", cursor=0), text))

    async def measure(texts: list[str]) -> tuple[Savings, Savings, float]:
        await keystroke_savings_of(engine, texts[:1])  # builds the models (not timed)
        started = time.perf_counter()
        alone = await keystroke_savings_of(engine, texts)
        helped = await keystroke_savings_of(engine, texts, personal)
        calls = alone.keystrokes + helped.keystrokes
        return alone, helped, (time.perf_counter() - started) / calls

    figures: list[Figure] = []
    for label, texts in (("English", HELD_OUT_EN), ("Japanese", HELD_OUT_JA)):
        alone, helped, per_call = asyncio.run(measure(texts))
        harness.note(
            f"keystroke savings, {label}: {len(texts)} held-out sentences, "
            f"{alone.characters:,} characters; corpora alone {alone.keystrokes:,} keystrokes "
            f"({alone.accepted} suggestions accepted, {alone.accepted_characters:,} characters), "
            f"with personal counts from {len(ACCEPTED)} accepted texts {helped.keystrokes:,} "
            f"({helped.accepted} accepted, {helped.accepted_characters:,} characters); "
            f"engine.suggest took {per_call * 1e6:.0f} us per call in the bench process"
        )
        figures.append(
            Figure(f"keystroke savings, {label}", "%", helped.savings * 100,
                   alone.savings * 100, True, SAVINGS_GOAL_POINTS, decimals=1,
                   against="corpora alone", goal_on="added")
        )  # fmt: skip
    return figures
