"""Time to first token: what Yamabiko adds to a provider's, at p50 and p99.

Both paths reach the same fake OpenAI server (:class:`tests.fakes.FakeOpenAI`, in a
process of its own), streaming the same short reply, in two variants (:data:`VARIANTS`):
every token at once (``burst``), or one every 5 ms (``paced``).

- **yamabiko**: one connection (a blocking socket of the bench process) sends
  ``chat/send {message, model: "openai/gpt-bench"}`` with no conversation id, so each
  send starts a new conversation; the time runs from sending the request to receiving
  the first ``stream/delta``. The next send waits for ``stream/end`` (one generation
  per conversation at a time). In between, Yamabiko checks what can be refused, calls
  the provider through the official ``openai`` SDK and, while that request travels,
  stores the conversation and the turn and creates the stream, then relays the first
  delta (docs/decisions/0075-request-path.md).
- **direct**: the official SDK in the bench process (``AsyncOpenAI`` on uvloop,
  ``chat.completions.create(stream=True)``, the same message, ``include_usage`` and
  ``max_tokens`` as Yamabiko sends), from the call to the first chunk with content; the
  rest of the stream is read before the next call.

After a warm-up of each, the two alternate in rounds (which one goes first swaps every
round) so that a disturbance of the machine hits both. The figures are the p50 and p99
of each path over all rounds, compared as Yamabiko minus direct: the goal is at most
1 ms added at p50.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import uvloop

from bench import wsclient
from bench.figures import Figure
from bench.harness import FAKE_OPENAI_KEY, Harness
from bench.servers import ServerProcess, hello_frames

ADDED_P50_GOAL_MS = 1.0
MODEL = "gpt-bench"
MESSAGE = "Say something short."
MAX_TOKENS = 1024
"""What Yamabiko sends as ``max_tokens`` by default (``chat.DEFAULT_MAX_TOKENS``)."""
DIRECT = "openai SDK"


@dataclass
class Samples:
    """Times to first token (s) of one path, and per round its p50."""

    ttft: list[float]
    rounds: list[float]
    answered: list[float]
    """Yamabiko only: from sending chat/send to its response."""
    to_provider: list[float]
    """From the request to the fake provider reading its HTTP request (the same
    monotonic clock in both processes): the rest of each ttft is the way back."""


@dataclass(frozen=True)
class Variant:
    """What the fake provider streams for one pair of figures."""

    name: str
    tokens: int
    delay_s: float
    """Before each token, the first included."""
    share: float
    """Of ``ttft_samples`` (paced generations take longer)."""


VARIANTS = (
    Variant("burst", 8, 0.0, 1.0),
    Variant("paced", 4, 0.005, 0.5),
)
"""``burst``: every token at once (a fast provider, or one whose first packet holds
several chunks): whatever Yamabiko does before relaying the first token is on the
critical path. ``paced``: a token every 5 ms, as providers stream (the first one too)."""


def run(harness: Harness) -> list[Figure]:
    yamabiko, fake = harness.yamabiko_with_openai()
    figures: list[Figure] = []
    for variant in VARIANTS:
        figures += _variant(harness, yamabiko, fake, variant)
    return figures


def _variant(
    harness: Harness, yamabiko: ServerProcess, fake: ServerProcess, variant: Variant
) -> list[Figure]:
    script = {"tokens": variant.tokens, "delay": variant.delay_s}
    fake.command("script", script)
    samples = uvloop.run(_measure(harness, yamabiko, fake, variant))
    y, d = samples["yamabiko"], samples["direct"]
    answer = fake.command("script", script)
    if answer.get("errors"):
        harness.note(f"ttft: the fake provider reported errors: {answer['errors']}")
    p50 = {k: _percentile(v.ttft, 0.50) * 1000 for k, v in samples.items()}
    p99 = {k: _percentile(v.ttft, 0.99) * 1000 for k, v in samples.items()}
    label = f"ttft {variant.name}"
    for kind, found in samples.items():
        rounds = ", ".join(f"{r * 1000:.2f}" for r in found.rounds)
        harness.note(f"{label}, {kind}: p50 per round {rounds} ms ({len(found.ttft)} samples)")
    to = {k: _percentile(v.to_provider, 0.5) * 1000 for k, v in samples.items()}
    back = {
        k: _percentile([t - p for t, p in zip(v.ttft, v.to_provider, strict=True)], 0.5) * 1000
        for k, v in samples.items()
    }
    harness.note(
        f"{label} at p50: from the request to the provider reading its own "
        f"{to['yamabiko']:.2f} ms through yamabiko, {to['direct']:.2f} ms direct; from there to "
        f"the first token {back['yamabiko']:.2f} ms through yamabiko, {back['direct']:.2f} ms "
        f"direct; the chat/send response came after {_percentile(y.answered, 0.5) * 1000:.2f} ms"
    )
    harness.progress(
        f"{label}: yamabiko p50 {p50['yamabiko']:.2f} ms, direct p50 {p50['direct']:.2f} ms "
        f"({len(y.ttft)} + {len(d.ttft)} samples)"
    )
    name = f"time to first token, {variant.name}"
    return [
        Figure(f"{name} p50", "ms", p50["yamabiko"], p50["direct"], False, ADDED_P50_GOAL_MS,
               decimals=2, against=DIRECT, goal_on="added"),
        Figure(f"{name} p99", "ms", p99["yamabiko"], p99["direct"], False, decimals=2,
               against=DIRECT, goal_on="added"),
    ]  # fmt: skip


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _measure(
    harness: Harness, yamabiko: ServerProcess, fake: ServerProcess, variant: Variant
) -> dict[str, Samples]:
    import openai

    options = harness.options
    assert yamabiko.target is not None
    assert fake.target is not None
    target = yamabiko.target
    rounds = max(1, options.ttft_rounds)
    per_round = max(1, round(options.ttft_samples * variant.share) // rounds)
    results = {"yamabiko": Samples([], [], [], []), "direct": Samples([], [], [], [])}
    conn = wsclient.BlockingConnection.open(
        target.host, target.port, target.path, target.headers, reader=wsclient.StreamItemReader()
    )
    client = openai.AsyncOpenAI(base_url=fake.target.url, api_key=FAKE_OPENAI_KEY, max_retries=0)
    try:
        conn.sock.sendall(hello_frames())
        conn.wait_messages(target.hello_replies)
        ids = iter(range(2, 1 << 62))
        for _ in range(options.ttft_warmup):
            _yamabiko_once(conn, next(ids), variant.tokens)
            await _direct_once(client, variant.tokens)
        for number in range(rounds):
            order = ("yamabiko", "direct") if number % 2 == 0 else ("direct", "yamabiko")
            for kind in order:
                found: list[float] = []
                for _ in range(per_round):
                    started = time.monotonic()
                    if kind == "yamabiko":
                        ttft, answered = _yamabiko_once(conn, next(ids), variant.tokens)
                        results[kind].answered.append(answered)
                    else:
                        ttft = await _direct_once(client, variant.tokens)
                    found.append(ttft)
                    # Approximate: ``started`` is a few microseconds before the request.
                    received = float(fake.command("last")["request_at"])
                    results[kind].to_provider.append(received - started)
                results[kind].ttft.extend(found)
                results[kind].rounds.append(_percentile(found, 0.5))
            harness.progress(
                f"ttft {variant.name} round {number + 1}: yamabiko p50 "
                f"{results['yamabiko'].rounds[-1] * 1000:.2f} ms, direct p50 "
                f"{results['direct'].rounds[-1] * 1000:.2f} ms"
            )
    finally:
        conn.close()
        await client.close()
    return results


def _yamabiko_once(
    conn: wsclient.BlockingConnection, request_id: int, tokens: int
) -> tuple[float, float]:
    """One chat/send to its stream/end: (time to first delta, time to the response), s."""
    reader = conn.reader
    assert isinstance(reader, wsclient.StreamItemReader)
    reader.reset()
    params = {"message": MESSAGE, "model": f"openai/{MODEL}"}
    request = {"jsonrpc": "2.0", "id": request_id, "method": "chat/send", "params": params}
    data = wsclient.frame(json.dumps(request, separators=(",", ":")).encode())
    answered: float | None = None
    sent = time.monotonic()
    conn.sock.sendall(data)
    while reader.end_at is None:
        conn.receive()
        if answered is None and reader.payloads:
            answered = time.monotonic()
            reply = json.loads(reader.payloads[0])
            if "result" not in reply:
                raise RuntimeError(f"chat/send failed: {reply}")
    if reader.first_at is None or answered is None or reader.items != tokens:
        raise RuntimeError(
            f"chat/send streamed {reader.items} items of {tokens} ({reader.end_payload[:300]!r})"
        )
    if b'"finishReason":"stop"' not in reader.end_payload:
        raise RuntimeError(f"the stream did not end well: {reader.end_payload[:300]!r}")
    return reader.first_at - sent, answered - sent


async def _direct_once(client: object, tokens: int) -> float:
    """One streamed completion straight from the SDK: time to the first content, s."""
    import openai

    assert isinstance(client, openai.AsyncOpenAI)
    first: float | None = None
    parts = 0
    started = time.monotonic()
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": MESSAGE}],
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"max_tokens": MAX_TOKENS},
    )
    async with stream:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                if first is None:
                    first = time.monotonic()
                parts += 1
    if first is None or parts != tokens:
        raise RuntimeError(f"the direct stream carried {parts} tokens of {tokens}")
    return first - started
