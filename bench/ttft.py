"""Time to first token: what Yamabiko adds to a provider's, at p50 and p99.

Both paths reach the same fake OpenAI server (:class:`tests.fakes.FakeOpenAI`, in a
process of its own), streaming the same short reply with no delay:

- **yamabiko**: one connection (a blocking socket of the bench process) sends
  ``chat/send {message, model: "openai/gpt-bench"}`` with no conversation id, so each
  send starts a new conversation; the time runs from sending the request to receiving
  the first ``stream/delta``. The next send waits for ``stream/end`` (one generation
  per conversation at a time). In between, Yamabiko checks and stores (the
  conversation, the user message, the assistant message), creates the stream, calls
  the provider through the official ``openai`` SDK and relays the first delta.
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
TOKENS = 8
"""Tokens the fake streams per reply (after the first, they only delay the next send)."""
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


def run(harness: Harness) -> list[Figure]:
    yamabiko, fake = harness.yamabiko_with_openai()
    fake.command("script", {"tokens": TOKENS})
    samples = uvloop.run(_measure(harness, yamabiko, fake))
    y, d = samples["yamabiko"], samples["direct"]
    answer = fake.command("script", {"tokens": TOKENS})
    if answer.get("errors"):
        harness.note(f"ttft: the fake provider reported errors: {answer['errors']}")
    p50 = {k: _percentile(v.ttft, 0.50) * 1000 for k, v in samples.items()}
    p99 = {k: _percentile(v.ttft, 0.99) * 1000 for k, v in samples.items()}
    for kind, found in samples.items():
        rounds = ", ".join(f"{r * 1000:.2f}" for r in found.rounds)
        harness.note(f"ttft, {kind}: p50 per round {rounds} ms ({len(found.ttft)} samples)")
    harness.note(
        f"ttft, yamabiko: the chat/send response came {_percentile(y.answered, 0.5) * 1000:.2f}"
        f" ms after the request at p50 ({_percentile(y.answered, 0.99) * 1000:.2f} ms at p99)"
    )
    harness.progress(
        f"ttft: yamabiko p50 {p50['yamabiko']:.2f} ms, direct p50 {p50['direct']:.2f} ms "
        f"({len(y.ttft)} + {len(d.ttft)} samples)"
    )
    return [
        Figure("time to first token p50", "ms", p50["yamabiko"], p50["direct"], False,
               ADDED_P50_GOAL_MS, decimals=2, against=DIRECT, goal_on="added"),
        Figure("time to first token p99", "ms", p99["yamabiko"], p99["direct"], False,
               decimals=2, against=DIRECT, goal_on="added"),
    ]  # fmt: skip


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _measure(
    harness: Harness, yamabiko: ServerProcess, fake: ServerProcess
) -> dict[str, Samples]:
    import openai

    options = harness.options
    assert yamabiko.target is not None
    assert fake.target is not None
    target = yamabiko.target
    rounds = max(1, options.ttft_rounds)
    per_round = max(1, options.ttft_samples // rounds)
    results = {"yamabiko": Samples([], [], []), "direct": Samples([], [], [])}
    conn = wsclient.BlockingConnection.open(
        target.host, target.port, target.path, target.headers, reader=wsclient.StreamItemReader()
    )
    client = openai.AsyncOpenAI(base_url=fake.target.url, api_key=FAKE_OPENAI_KEY, max_retries=0)
    try:
        conn.sock.sendall(hello_frames())
        conn.wait_messages(target.hello_replies)
        ids = iter(range(2, 1 << 62))
        for _ in range(options.ttft_warmup):
            _yamabiko_once(conn, next(ids))
            await _direct_once(client)
        for number in range(rounds):
            order = ("yamabiko", "direct") if number % 2 == 0 else ("direct", "yamabiko")
            for kind in order:
                found: list[float] = []
                for _ in range(per_round):
                    if kind == "yamabiko":
                        ttft, answered = _yamabiko_once(conn, next(ids))
                        results[kind].answered.append(answered)
                    else:
                        ttft = await _direct_once(client)
                    found.append(ttft)
                results[kind].ttft.extend(found)
                results[kind].rounds.append(_percentile(found, 0.5))
            harness.progress(
                f"ttft round {number + 1}: yamabiko p50 {results['yamabiko'].rounds[-1] * 1000:.2f}"
                f" ms, direct p50 {results['direct'].rounds[-1] * 1000:.2f} ms"
            )
    finally:
        conn.close()
        await client.close()
    return results


def _yamabiko_once(conn: wsclient.BlockingConnection, request_id: int) -> tuple[float, float]:
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
    if reader.first_at is None or answered is None or reader.items != TOKENS:
        raise RuntimeError(
            f"chat/send streamed {reader.items} items of {TOKENS} ({reader.end_payload[:300]!r})"
        )
    if b'"finishReason":"stop"' not in reader.end_payload:
        raise RuntimeError(f"the stream did not end well: {reader.end_payload[:300]!r}")
    return reader.first_at - sent, answered - sent


async def _direct_once(client: object) -> float:
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
    if first is None or parts != TOKENS:
        raise RuntimeError(f"the direct stream carried {parts} tokens of {TOKENS}")
    return first - started
