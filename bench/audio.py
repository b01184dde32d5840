"""Audio: how fast the singer renders, how soon the first frame comes, how steady
realtime streams are. No baseline: the figures stand alone.

**Render speed** (bench process, no server): :class:`~yamabiko.engines.audio.singer.
SingerEngine` renders a 32-bar melody with lyrics (:func:`melody`: 4/4 at 120 bpm, 64 s,
eighth to half notes, a breath every four bars, Japanese and English syllables) through
``blocks(request, 480)`` (20 ms blocks at 24 kHz) with the process pinned to one CPU;
the figure is audio seconds per CPU second of the process (``time.process_time``), the
best of ``audio_render_rounds`` after an untimed warm-up render. The same at 48 kHz
(960-sample blocks), informational.

**First-frame latency** (the shared ``yamabiko`` server): one connection (a blocking
socket of the bench process) that declared ``capabilities: {audio: {binary: true}}``
sends ``audio/synthesize {notes (4 bars, 8 s), format: pcm16, frameMs: 20, pace: fast}``
and reads the stream to ``audio/end``; the time runs from sending the request to
receiving the first binary frame. ``audio_latency_requests`` timed requests, one at a
time, after a warm-up.

**Realtime streams**: ``audio_streams`` (20) connections in a worker process
(:mod:`bench.listeners`) send ``audio/synthesize {pace: realtime, frameMs: 20}`` at
once, each for an ``audio_stream_s`` (10 s) melody, and read their frames. Each frame's
*lateness* is its arrival minus its place on the playback schedule (the stream's first
frame's arrival + (seq - 1) x 20 ms); jitter is its absolute value. A frame is *late*
when it came more than one frame (20 ms) behind schedule. The empty closing frame of a
pcm16 stream (the codec's tail, sent straight after the last audio) is left out. The
notes (and one more figure) also give the jitter against each stream's *steady grid*:
the same 20 ms grid anchored at the stream's median lateness, from frame 3 on, which
separates a late first frame from unsteady delivery. Every
stream must come complete: seqs 1..n in order, the last flag on the last frame only,
``audio/end`` with ``frames: n``, the duration asked for and the SHA-256 of the payloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from bench import wsclient
from bench.figures import NO_BASELINE, Figure
from bench.harness import Harness
from bench.listeners import BINARY, synthesize_frame
from bench.proc import end_process, read_line
from bench.servers import ROOT, YAMABIKO, ServerProcess, hello_frames

RTF_GOAL = 50.0
FIRST_FRAME_P99_GOAL_MS = 50.0
JITTER_P99_GOAL_MS = 20.0
"""Informational: the issue names it, but a browser client's buffer decides."""
TEMPO = 120.0
FRAME_MS = 20
SAMPLE_RATE = 24_000
"""Of the streams (the server's default)."""
STEADY_FROM = 2
"""The jitter against a stream's steady grid leaves out its first two frames."""
RENDER_BARS = 32
LATENCY_BARS = 4
LATENCY_WARMUP = 10
LYRIC_LINES = (
    "ka ze no u ta wo ki ki na ga ra",
    "sing the night a way to the morn ing light",
    "よ ぞ ら に ひ か る ほ し が き ら き ら と",
    "hold me close and don't let go",
)
LYRICS = tuple(word for line in LYRIC_LINES for word in line.split())
"""Sung one a note, in a loop: romaji, kana and English syllables."""
RHYTHMS = (
    (1.0, 1.0, 1.0, 1.0),
    (1.0, 0.5, 0.5, 2.0),
    (0.5, 0.5, 0.5, 0.5, 1.0, 1.0),
    (2.0, 1.0, 1.0),
    (1.5, 0.5, 1.0, 1.0),
    (0.5, 0.5, 1.0, 0.5, 0.5, 1.0),
)
"""One bar of 4/4 each, in beats."""
SCALE = (60, 62, 64, 65, 67, 69, 71, 72, 74, 76)
"""C major, C4 to E5: where the melody walks."""


def melody(beats: float, seed: int = 7) -> list[dict[str, Any]]:
    """A deterministic melody of ``beats`` beats (4/4), as ``audio/synthesize`` notes:
    bar rhythms from :data:`RHYTHMS`, a step-wise walk on :data:`SCALE` with an
    occasional leap, the last beat of every fourth bar a rest (a breath) unless the
    melody ends there, :data:`LYRICS` one syllable a note. It lasts exactly ``beats``."""
    rng = random.Random(seed)
    notes: list[dict[str, Any]] = []
    degree = 4
    start = 0.0
    bar = 0
    while start < beats:
        rhythm = RHYTHMS[rng.randrange(len(RHYTHMS))]
        breath = bar % 4 == 3 and start + 4.0 < beats
        at = start
        for index, length in enumerate(rhythm):
            if at >= beats:
                break
            length = min(length, beats - at)
            if breath and index == len(rhythm) - 1:
                at += length  # a rest: silence until the next bar
                continue
            step = rng.choice((-2, -1, -1, 1, 1, 2)) if rng.random() > 0.1 else rng.choice((-4, 4))
            degree = min(len(SCALE) - 1, max(0, degree + step))
            notes.append(
                {
                    "pitch": SCALE[degree],
                    "start": at,
                    "duration": length,
                    "velocity": rng.randrange(80, 111),
                    "lyric": LYRICS[len(notes) % len(LYRICS)],
                }
            )
            at += length
        start += 4.0
        bar += 1
    return notes


def _seconds(beats: float) -> float:
    return beats * 60.0 / TEMPO


def run(harness: Harness) -> list[Figure]:
    return (
        _render_speed(harness) + _piper_speed(harness) + _first_frame(harness) + _realtime(harness)
    )


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# Render speed


def _request(notes: list[dict[str, Any]], rate: int) -> Any:
    from yamabiko.engines.audio.base import AudioRequest, Note

    return AudioRequest(notes=tuple(Note(**n) for n in notes), tempo=TEMPO, sample_rate=rate)


@dataclass(frozen=True)
class Render:
    samples: int
    cpu_s: float
    thread_s: float
    wall_s: float
    first_block_s: float
    """Wall time to the first block (the plan and the first render chunk)."""


def _render(request: Any, block: int) -> Render:
    from yamabiko.engines.audio.singer import SingerEngine

    async def go() -> tuple[int, float]:
        blocks = SingerEngine().blocks(request, block)
        started = time.perf_counter()
        count = len(await anext(blocks))
        first = time.perf_counter() - started
        async for samples in blocks:
            count += len(samples)
        return count, first

    loop = asyncio.new_event_loop()
    try:
        cpu, thread, wall = time.process_time(), time.thread_time(), time.perf_counter()
        samples, first = loop.run_until_complete(go())
        return Render(
            samples,
            time.process_time() - cpu,
            time.thread_time() - thread,
            time.perf_counter() - wall,
            first,
        )
    finally:
        loop.close()


@contextlib.contextmanager
def _one_cpu() -> Any:
    """Pin every thread of this process to one CPU (the last one) for the block."""
    threads = [int(t) for t in os.listdir("/proc/self/task")]
    before = {t: os.sched_getaffinity(t) for t in threads}
    cpu = max(os.sched_getaffinity(0))
    for thread in threads:
        with contextlib.suppress(OSError):  # a thread that has ended
            os.sched_setaffinity(thread, {cpu})
    try:
        yield cpu, len(threads)
    finally:
        for thread, cpus in before.items():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(thread, cpus)


def _render_speed(harness: Harness) -> list[Figure]:
    from yamabiko.engines.audio.singer import plan

    notes = melody(RENDER_BARS * 4.0)
    warm = melody(4.0, seed=1)
    figures: list[Figure] = []
    with _one_cpu() as (cpu, threads):
        for rate, informational in ((24_000, False), (48_000, True)):
            block = rate * FRAME_MS // 1000
            request = _request(notes, rate)
            cold = _render(_request(warm, rate), block)
            renders = [_render(request, block) for _ in range(harness.options.audio_render_rounds)]
            audio_s = renders[0].samples / rate
            if abs(audio_s - _seconds(RENDER_BARS * 4.0)) > 1e-3:
                raise RuntimeError(f"the singer rendered {audio_s} s, not {RENDER_BARS * 2} s")
            best = min(renders, key=lambda r: r.cpu_s)
            started = time.perf_counter()
            plan(request)
            plan_s = time.perf_counter() - started
            factor = audio_s / best.cpu_s
            harness.note(
                f"singer at {rate // 1000} kHz (the process's {threads} threads on CPU {cpu} only, "
                f"{len(notes)} notes, "
                f"{audio_s:.0f} s of audio in {block}-sample blocks): rounds "
                + ", ".join(f"{audio_s / r.cpu_s:.0f}x" for r in renders)
                + f" real time; best {best.cpu_s * 1000:.0f} ms process CPU "
                f"({best.thread_s * 1000:.0f} ms this thread, {best.wall_s * 1000:.0f} ms "
                f"wall), {best.cpu_s / (audio_s * 1000 / FRAME_MS) * 1e6:.0f} us per "
                f"{FRAME_MS} ms frame; plan {plan_s * 1000:.1f} ms, first block after "
                f"{best.first_block_s * 1000:.1f} ms; the warm-up (4 bars) ran at "
                f"{cold.samples / rate / cold.cpu_s:.0f}x"
            )
            harness.progress(f"singer at {rate // 1000} kHz: {factor:.0f}x real time")
            name = f"singer real-time factor, {rate // 1000} kHz"
            if informational:
                figures.append(Figure(f"  {name}", "x", factor, NO_BASELINE, True,
                                      against="-", goal_on="value"))  # fmt: skip
            else:
                figures.append(Figure(name, "x", factor, NO_BASELINE, True, RTF_GOAL,
                                      against="-", goal_on="value"))  # fmt: skip
    return figures


PIPER_TEXT = (
    "Start with the drums. Bring in the bass on the second bar, a little behind the kick. "
    "Then the chords, soft and wide, under everything else. Let the vocal enter after "
    "eight bars, dry and close. Open the filter slowly over the last chorus. End on the "
    "tonic, and let the reverb ring out."
)
PIPER_RTF_GOAL = 1.0
"""Faster than real time on one core: a live stream never waits for its voice."""


def _piper_speed(harness: Harness) -> list[Figure]:
    """The ``piper`` voice on one CPU (ONNX Runtime on one thread): audio seconds per
    CPU second of the process, best of three after a warm-up; skipped without the
    optional extra ``yamabiko[voice]``."""
    import asyncio

    from yamabiko.engines.audio import piper
    from yamabiko.engines.audio.base import AudioRequest

    if not piper.installed():
        harness.note("piper: the optional extra yamabiko[voice] is not installed; skipped")
        return []
    engine = piper.PiperEngine()

    async def speak(text: str) -> tuple[int, float]:
        samples, first = 0, 0.0
        started = time.perf_counter()
        request = AudioRequest(text=text, sample_rate=SAMPLE_RATE)
        async for block in engine.blocks(request, SAMPLE_RATE * FRAME_MS // 1000):
            first = first or time.perf_counter() - started
            samples += block.size
        return samples, first

    with _one_cpu() as (cpu, _threads):
        asyncio.run(speak("Ready."))  # loads the voice
        rounds = []
        for _ in range(3):
            cpu_before, wall_before = time.process_time(), time.perf_counter()
            samples, first = asyncio.run(speak(PIPER_TEXT))
            audio_s = samples / SAMPLE_RATE
            rounds.append(
                (
                    audio_s / (time.process_time() - cpu_before),
                    audio_s / (time.perf_counter() - wall_before),
                    first,
                )
            )
    factor, wall, first = max(rounds)
    harness.note(
        f"piper at 24 kHz (CPU {cpu} only, {audio_s:.1f} s of speech, six sentences): rounds "
        + ", ".join(f"{r:.1f}x" for r, _, _ in rounds)
        + f" real time per CPU second; best {wall:.1f}x of wall time; the first sentence's"
        f" first block after {first * 1000:.0f} ms"
    )
    harness.progress(f"piper at 24 kHz: {factor:.1f}x real time")
    return [Figure("piper real-time factor, 24 kHz", "x", factor, NO_BASELINE, True,
                   PIPER_RTF_GOAL, decimals=1, against="-", goal_on="value")]  # fmt: skip


# First-frame latency


def _open(server: ServerProcess) -> wsclient.BlockingConnection:
    target = server.target
    assert target is not None
    conn = wsclient.BlockingConnection.open(
        target.host,
        target.port,
        target.path,
        target.headers,
        reader=wsclient.AudioFrameReader(digest=True),
    )
    conn.sock.sendall(hello_frames(BINARY))
    conn.wait_messages(target.hello_replies)
    reader = conn.reader
    assert isinstance(reader, wsclient.AudioFrameReader)
    reader.clear()
    return conn


@dataclass(frozen=True)
class Synthesis:
    first_frame_s: float
    response_s: float
    end_s: float
    frames: int


def _synthesize(
    conn: wsclient.BlockingConnection, request_id: int, params: dict[str, Any], timeout_s: float
) -> Synthesis:
    """One request, read to its ``audio/end``; checks the stream is whole."""
    reader = conn.reader
    assert isinstance(reader, wsclient.AudioFrameReader)
    reader.clear()
    ends = reader.ends
    data = synthesize_frame(params, request_id)
    deadline = time.monotonic() + timeout_s
    sent = time.monotonic()
    conn.sock.sendall(data)
    while reader.ends == ends:
        if time.monotonic() > deadline:
            raise TimeoutError(f"audio/synthesize {request_id}: no audio/end in {timeout_s} s")
        conn.receive()
    ended = time.monotonic()
    messages = [json.loads(p) for p in reader.payloads]
    response = next((m for m in messages if m.get("id") == request_id), None)
    if response is None or "result" not in response:
        raise RuntimeError(f"audio/synthesize {request_id} answered {response}")
    result = response["result"]
    end = next(m["params"] for m in messages if m.get("method") == "audio/end")
    stream = {
        "response": response,
        "end": end,
        "frames": [list(f) for f in reader.frames],
        "sha256": {str(n): d.hexdigest() for n, d in reader.digests.items()},
        "others": [],
        "closed": False,
    }
    _check(stream, result["estimatedDurationMs"])
    answered = next(i for i, m in enumerate(messages) if m is response)
    return Synthesis(
        first_frame_s=reader.frames[0][4] - sent,
        response_s=reader.times[answered] - sent,
        end_s=ended - sent,
        frames=len(reader.frames),
    )


def _first_frame(harness: Harness) -> list[Figure]:
    server = harness.server(YAMABIKO)
    notes = melody(LATENCY_BARS * 4.0)
    params = {
        "notes": notes,
        "format": "pcm16",
        "sampleRate": SAMPLE_RATE,
        "frameMs": FRAME_MS,
        "pace": "fast",
    }
    conn = _open(server)
    try:
        cold = _synthesize(conn, 10, params, 30.0)
        for i in range(LATENCY_WARMUP):
            _synthesize(conn, 11 + i, params, 30.0)
        cpu_before = server.cpu_seconds()
        started = time.monotonic()
        timed = [
            _synthesize(conn, 100 + i, params, 30.0)
            for i in range(harness.options.audio_latency_requests)
        ]
        window = time.monotonic() - started
        server_cpu = server.cpu_seconds() - cpu_before
        long_params = {**params, "notes": melody(RENDER_BARS * 4.0)}
        long = [_synthesize(conn, 1000 + i, long_params, 60.0) for i in range(5)]
    finally:
        conn.close()
    ms = 1000.0
    firsts = [t.first_frame_s * ms for t in timed]
    p50, p99 = _percentile(firsts, 0.5), _percentile(firsts, 0.99)
    harness.note(
        f"first frame ({LATENCY_BARS} bars, {len(notes)} notes, "
        f"{timed[0].frames} frames, pace fast, one request at a time): "
        f"{len(timed)} requests, p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {max(firsts):.2f} ms; "
        f"whole stream read in {statistics.median(t.end_s for t in timed) * ms:.1f} ms "
        f"(median); the server used {server_cpu / window:.0%} of a core, "
        f"{server_cpu / sum(t.frames for t in timed) * 1e6:.0f} us per frame; the first request "
        f"of the server (cold) got its first frame after {cold.first_frame_s * ms:.1f} ms; a "
        f"{RENDER_BARS}-bar melody's after "
        f"{statistics.median(t.first_frame_s for t in long) * ms:.2f} ms (median of {len(long)})"
    )
    harness.progress(f"first frame: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    return [
        Figure("audio first-frame latency p50", "ms", p50, NO_BASELINE, False,
               decimals=2, against="-", goal_on="value"),
        Figure("audio first-frame latency p99", "ms", p99, NO_BASELINE, False,
               FIRST_FRAME_P99_GOAL_MS, decimals=2, against="-", goal_on="value"),
    ]  # fmt: skip


# Stream checks


def _check(stream: dict[str, Any], duration_ms: int) -> None:
    """Raise unless ``stream`` (as the listeners record it) came whole."""
    response = stream["response"]
    if response is None or "result" not in response:
        raise RuntimeError(f"audio/synthesize answered {response}")
    number = response["result"]["streamNo"]
    frames = stream["frames"]
    seqs = [f[1] for f in frames]
    if seqs != list(range(1, len(frames) + 1)):
        raise RuntimeError(f"seqs not contiguous: {seqs[:5]}... ({len(seqs)} frames)")
    if any(f[0] != number for f in frames):
        raise RuntimeError(f"a frame of another streamNo than {number}")
    lasts = [bool(f[2] & 1) for f in frames]
    if not frames or lasts != [False] * (len(frames) - 1) + [True]:
        raise RuntimeError("the last flag is not on the last frame only")
    end = stream["end"]
    if end is None:
        raise RuntimeError(f"no audio/end after {len(frames)} frames (closed: {stream['closed']})")
    expected = (len(frames) + 1, len(frames), duration_ms, False)
    if (end["seq"], end["frames"], end["durationMs"], end.get("cancelled", False)) != expected:
        raise RuntimeError(f"audio/end {end} after {len(frames)} frames of {duration_ms} ms")
    digest = stream["sha256"].get(str(number), hashlib.sha256().hexdigest())
    if end["sha256"] != digest:
        raise RuntimeError("audio/end's sha256 is not that of the frames received")
    if stream["others"] or stream["closed"]:
        raise RuntimeError(f"other messages {stream['others'][:1]}, closed {stream['closed']}")


# Realtime streams


def _realtime(harness: Harness) -> list[Figure]:
    from yamabiko.engines.audio.singer import RENDER_CHUNK

    options = harness.options
    server = harness.server(YAMABIKO)
    target = server.target
    assert target is not None
    beats = options.audio_stream_s * TEMPO / 60.0
    notes = melody(beats, seed=3)
    duration_ms = round(_seconds(beats) * 1000)
    params = {
        "notes": notes,
        "format": "pcm16",
        "sampleRate": SAMPLE_RATE,
        "frameMs": FRAME_MS,
        "pace": "realtime",
    }
    out = harness.workdir / "listeners.json"
    config = {
        "target": target.to_json(),
        "streams": options.audio_streams,
        "params": params,
        "timeout_s": options.audio_stream_s + 30.0,
        "out": str(out),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.listeners", json.dumps(config)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        line = read_line(proc, timeout_s=60.0, what="the listeners")
        if line != "ready":
            raise RuntimeError(f"the listeners said {line!r} instead of 'ready'")
        cpu_before = server.cpu_seconds()
        started = time.monotonic()
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        line = read_line(proc, timeout_s=options.audio_stream_s + 60.0, what="the listeners")
        if line != "done":
            raise RuntimeError(f"the listeners said {line!r} instead of 'done'")
        window = time.monotonic() - started
        server_cpu = server.cpu_seconds() - cpu_before
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5.0)
        end_process(proc)
    result = json.loads(out.read_text())
    streams = result["streams"]
    frame_s = FRAME_MS / 1000
    lateness: list[float] = []
    steady: list[float] = []
    boundary: list[float] = []
    """Steady-schedule deviations of the frames whose block needed a new render chunk."""
    offsets: list[float] = []
    firsts: list[float] = []
    frames = 0
    block = SAMPLE_RATE * FRAME_MS // 1000
    for stream in streams:
        _check(stream, duration_ms)
        audio = [f for f in stream["frames"] if f[3] > 0]
        frames += len(stream["frames"])
        if len(audio) != duration_ms // FRAME_MS:
            raise RuntimeError(f"{len(audio)} frames with audio, not {duration_ms // FRAME_MS}")
        first = audio[0][4]
        firsts.append(first - stream["sent"])
        late_by = [at - (first + (seq - 1) * frame_s) for _, seq, _, _, at in audio]
        lateness += late_by
        # The stream's steady schedule: the same grid, anchored where most frames sit.
        anchor = statistics.median(late_by)
        offsets.append(anchor)
        for (_, seq, _, _, _), x in zip(audio, late_by, strict=True):
            if seq <= STEADY_FROM:
                continue  # the first frame and the one that came straight after it
            steady.append(x - anchor)
            if _new_chunk(seq, block, RENDER_CHUNK):
                boundary.append(x - anchor)
    ms = 1000.0
    jitter = [abs(x) * ms for x in lateness]
    p50, p99 = _percentile(jitter, 0.5), _percentile(jitter, 0.99)
    steady_p99 = _percentile([abs(x) * ms for x in steady], 0.99)
    late = sum(1 for x in lateness if x > frame_s)
    harness.note(
        f"realtime streams: {len(streams)} connections x {duration_ms / 1000:g} s "
        f"({len(notes)} notes, {FRAME_MS} ms pcm16 frames), all sent at once, all complete; "
        f"{len(lateness):,} frames with audio timed; lateness (+ late, - early) p50 "
        f"{_percentile(lateness, 0.5) * ms:+.2f} ms, p99 {_percentile(lateness, 0.99) * ms:+.2f} "
        f"ms, min {min(lateness) * ms:+.2f} ms, max {max(lateness) * ms:+.2f} ms; first frames "
        f"{min(firsts) * ms:.1f} to {max(firsts) * ms:.1f} ms after the requests; the server used "
        f"{server_cpu / window:.0%} of a core ({server_cpu / frames * 1e6:.0f} us per frame), "
        f"the listeners {result['cpu_s'] / window:.0%}"
    )
    harness.note(
        f"realtime streams, where the jitter comes from: each stream's frames sit on a steady "
        f"{FRAME_MS} ms grid that runs {-max(offsets) * ms:.1f} to {-min(offsets) * ms:.1f} ms "
        f"ahead of its first frame's (median lateness per stream; positive: the first frame "
        f"came late against the server's own pacing clock). Against that steady grid, "
        f"from frame {STEADY_FROM + 1} on, the jitter is p50 "
        f"{_percentile([abs(x) * ms for x in steady], 0.5):.2f} ms, p99 {steady_p99:.2f} ms, "
        f"max {max(steady) * ms:+.2f} ms; the {len(boundary):,} frames whose block needed a "
        f"new render chunk ({RENDER_CHUNK} samples, every {RENDER_CHUNK / block:.1f} frames, "
        f"the same frames in every stream) came {statistics.mean(boundary) * ms:+.2f} ms off it "
        f"on average (p99 {_percentile(boundary, 0.99) * ms:+.2f} ms), the others "
        f"{_mean_except(steady, boundary) * ms:+.2f} ms"
    )
    harness.progress(f"realtime streams: jitter p50 {p50:.2f} ms, p99 {p99:.2f} ms, {late} late")
    return [
        Figure(f"audio realtime x{len(streams)}: frame jitter p50", "ms", p50, NO_BASELINE,
               False, decimals=2, against="-", goal_on="value"),
        Figure(f"audio realtime x{len(streams)}: frame jitter p99", "ms", p99, NO_BASELINE,
               False, JITTER_P99_GOAL_MS, decimals=2, against="-", goal_on="value"),
        Figure("  frames more than a frame late", "count", late, NO_BASELINE, False,
               against="-", goal_on="value"),
        Figure("  jitter p99 on the steady grid, frames 3..n", "ms", steady_p99, NO_BASELINE, False,
               decimals=2, against="-", goal_on="value"),
    ]  # fmt: skip


def _new_chunk(seq: int, block: int, chunk: int) -> bool:
    """Whether frame ``seq``'s block made the singer render a new ``chunk``."""
    return (seq * block - 1) // chunk > ((seq - 1) * block - 1) // chunk


def _mean_except(values: list[float], some: list[float]) -> float:
    rest = len(values) - len(some)
    return (sum(values) - sum(some)) / rest if rest else float("nan")
