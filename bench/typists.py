"""The typists of the ghost scenario, in a worker process: ``python -m bench.typists
CONFIG_JSON``.

CONFIG: ``{"target": ..., "first": G, "documents": N, "total": T, "keystrokes": K,
"period_s": P, "drain_s": D, "out": PATH}``. The worker types documents ``G .. G+N-1``
of the ``T`` documents of the run, one connection (one session) per document. Each
connection says hello and sends ``ghost/open {docId, text: ""}``; once every open is
answered, one warm-up document per connection (a sentence of that document's language,
opened with its text, so that the engine's models and the user's personal model are
loaded) gets its suggestions and is closed. The worker prints ``ready`` and waits for
``go T0`` on stdin (``T0`` on ``time.monotonic()``, the same clock in every process).

Document ``g`` types keystroke ``k`` (version ``k + 1``) at ``T0 + k * P + g / T * P``:
every document at ``1 / P`` keystrokes per second, the documents evenly out of phase,
on a fixed schedule whatever the server does (a keystroke is never held back for an
answer). The keystrokes (:func:`keystrokes`) append one character of music-production
text each, with an occasional typo taken back with a backspace. The time of each send
and of each ``ghost/suggestions`` received (when the bytes reached the worker's loop)
is kept; after the last keystroke the worker waits, at most ``D`` seconds, for every
document's suggestions for its last version, writes what it saw to ``PATH`` as JSON
and prints ``done``.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import sys
import time
from functools import cache
from importlib import resources
from typing import Any

import uvloop

from bench import wsclient
from bench.loadgen import open_connections
from bench.proc import raise_nofile_limit
from bench.servers import Target

SUGGESTIONS_HEAD = b'{"jsonrpc":"2.0","method":"ghost/suggestions",'
RESYNC = b'"ghost/resync"'
JAPANESE_EVERY = 5
"""Every fifth document (``g % 5 == 4``) is typed in Japanese, the others in English."""
TYPO_RATE = 0.03
"""Chance that a letter is first mistyped (a neighbouring key), then taken back."""
WARM_UP = {
    "en": "Add some compression to the vo",
    "ja": "ミックスの最初は、フェーダーだけで",
}
_NEIGHBOURS = {
    row[i]: row[max(0, i - 1)] + row[i + 1 : i + 2]
    for row in ("qwertyuiop", "asdfghjkl", "zxcvbnm")
    for i in range(len(row))
}
_KANA = "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもらりるれろ"


def language(index: int) -> str:
    return "ja" if index % JAPANESE_EVERY == JAPANESE_EVERY - 1 else "en"


@cache
def _paragraphs(lang: str) -> tuple[str, ...]:
    """The corpus prose of ``lang``, one paragraph each (headings left out)."""
    if lang == "ja":
        source = resources.files("yamabiko.engines.ghost") / "corpus" / "ja_music.txt"
    else:
        source = resources.files("yamabiko.engines.llm") / "corpus" / "music_production.txt"
    text = source.read_text(encoding="utf-8")
    found = [re.sub(r"\s+", " ", p).strip() for p in text.split("\n\n")]
    return tuple(p for p in found if len(p) >= 60)


def keystrokes(index: int, count: int) -> list[tuple[int, int, str]]:
    """The ``count`` keystrokes of document ``index``, as changes ``(start, end, text)``
    to the text typed so far: a character appended at the end, or the last one removed
    (a backspace after a typo). Deterministic: the same for every run."""
    lang = language(index)
    paragraphs = _paragraphs(lang)
    rng = random.Random(index)
    start = index % len(paragraphs)
    source = (" " if lang == "en" else "").join(paragraphs[start:] + paragraphs[:start])
    typed = 0
    position = 0
    found: list[tuple[int, int, str]] = []
    while len(found) < count:
        char = source[position % len(source)]
        if rng.random() < TYPO_RATE and (char.isalpha() or lang == "ja") and len(found) + 2 < count:
            wrong = _typo(char, rng, lang)
            found.append((typed, typed, wrong))
            found.append((typed, typed + 1, ""))
        found.append((typed, typed, char))
        typed += 1
        position += 1
    return found[:count]


def _typo(char: str, rng: random.Random, lang: str) -> str:
    if lang == "ja":
        return rng.choice(_KANA.replace(char, ""))
    near = _NEIGHBOURS.get(char.lower(), "e")
    wrong = rng.choice(near)
    return wrong.upper() if char.isupper() else wrong


def doc_id(index: int) -> str:
    return f"doc-{index:04d}"


def _frame(message: dict[str, Any]) -> bytes:
    return wsclient.frame(json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode())


def change_frames(index: int, count: int) -> list[bytes]:
    """The ``ghost/change`` notification frames of document ``index``, versions 1.."""
    frames = []
    for version, (start, end, text) in enumerate(keystrokes(index, count), start=1):
        params = {
            "docId": doc_id(index),
            "version": version,
            "changes": [{"start": start, "end": end, "text": text}],
        }
        frames.append(_frame({"jsonrpc": "2.0", "method": "ghost/change", "params": params}))
    return frames


class GhostReader(wsclient.FrameReader):
    """Keeps, for the connection's documents, every ``ghost/suggestions`` received
    (``(docId, version, items, time.monotonic())``), the ``ghost/resync`` payloads and
    the responses (decoded)."""

    __slots__ = ("others", "responses", "resyncs", "suggestions")

    def __init__(self) -> None:
        super().__init__(keep=True)
        self.suggestions: list[tuple[str, int, int, float]] = []
        self.responses: list[dict[str, Any]] = []
        self.resyncs: list[bytes] = []
        self.others: list[bytes] = []

    def feed(self, data: bytes) -> int:
        count = super().feed(data)
        if self.payloads:
            now = time.monotonic()
            for payload in self.payloads:
                if payload.startswith(SUGGESTIONS_HEAD):
                    params = json.loads(payload)["params"]
                    self.suggestions.append(
                        (params["docId"], params["version"], len(params["items"]), now)
                    )
                elif RESYNC in payload:
                    self.resyncs.append(payload)
                elif payload.startswith(b'{"jsonrpc":"2.0","id"'):
                    self.responses.append(json.loads(payload))
                else:
                    self.others.append(payload)
            self.payloads.clear()
        return count


def _reader(conn: wsclient.StreamConnection) -> GhostReader:
    reader = conn.reader
    assert isinstance(reader, GhostReader)
    return reader


async def _until(conns: list[wsclient.StreamConnection], done: Any, timeout_s: float) -> bool:
    """Poll until ``done(reader)`` for every connection; False on timeout."""
    deadline = time.monotonic() + timeout_s
    while not all(done(_reader(c)) for c in conns):
        if time.monotonic() > deadline or any(c.reader.closed for c in conns):
            return False
        await asyncio.sleep(0.005)
    return True


def _answered(request_id: int) -> Any:
    return lambda r: any(a.get("id") == request_id for a in r.responses)


async def _setup(conns: list[wsclient.StreamConnection], indices: list[int]) -> None:
    for conn, index in zip(conns, indices, strict=True):
        assert conn.transport is not None
        params = {"docId": doc_id(index), "text": ""}
        conn.transport.write(
            _frame({"jsonrpc": "2.0", "id": 2, "method": "ghost/open", "params": params})
        )
        warm = {"docId": "warm-up", "text": WARM_UP[language(index)]}
        conn.transport.write(
            _frame({"jsonrpc": "2.0", "id": 3, "method": "ghost/open", "params": warm})
        )
    if not await _until(conns, lambda r: _answered(2)(r) and _answered(3)(r), 30.0):
        raise RuntimeError("ghost/open was not answered on every connection")
    failed = [a for c in conns for a in _reader(c).responses if "result" not in a]
    if failed:
        raise RuntimeError(f"ghost/open failed: {failed[0]}")
    if not await _until(conns, lambda r: any(s[0] == "warm-up" for s in r.suggestions), 30.0):
        raise RuntimeError("the warm-up documents got no suggestions")
    for conn in conns:
        assert conn.transport is not None
        params = {"docId": "warm-up"}
        conn.transport.write(
            _frame({"jsonrpc": "2.0", "id": 4, "method": "ghost/close", "params": params})
        )
    if not await _until(conns, _answered(4), 30.0):
        raise RuntimeError("ghost/close was not answered on every connection")
    for conn in conns:
        reader = _reader(conn)
        reader.suggestions.clear()
        reader.responses.clear()


async def _type(
    conns: list[wsclient.StreamConnection],
    frames: list[list[bytes]],
    indices: list[int],
    total: int,
    t0: float,
    period: float,
) -> tuple[list[list[float]], list[float]]:
    """Send every keystroke on schedule; the send times per document, and how late
    each send was against its schedule."""
    count = len(frames[0])
    sent: list[list[float]] = [[] for _ in conns]
    late: list[float] = []
    phases = [index / total * period for index in indices]
    for k in range(count):
        base = t0 + k * period
        for j, conn in enumerate(conns):
            due = base + phases[j]
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            now = time.monotonic()
            assert conn.transport is not None
            conn.transport.write(frames[j][k])
            sent[j].append(now)
            late.append(now - due)
    return sent, late


async def serve(config: dict[str, Any]) -> None:
    target = Target.from_json(config["target"])
    first = int(config["first"])
    indices = list(range(first, first + int(config["documents"])))
    count = int(config["keystrokes"])
    period = float(config["period_s"])
    frames = [change_frames(index, count) for index in indices]
    conns = await open_connections(target, len(indices), reader=GhostReader)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    try:
        await _setup(conns, indices)
        print("ready", flush=True)
        words = (await stdin.readline()).decode().split()
        if len(words) != 2 or words[0] != "go":
            raise RuntimeError(f"expected 'go T0', got {words!r}")
        cpu_before = time.process_time()
        sent, late = await _type(
            conns, frames, indices, int(config["total"]), float(words[1]), period
        )
        cpu = time.process_time() - cpu_before
        ended = time.monotonic()
        await _until(
            conns,
            lambda r: any(s[1] == count for s in r.suggestions),
            float(config["drain_s"]),
        )
        drained = time.monotonic() - ended
        documents = []
        for conn, index, times in zip(conns, indices, sent, strict=True):
            reader = _reader(conn)
            documents.append(
                {
                    "index": index,
                    "language": language(index),
                    "sent": times,
                    "suggestions": [
                        [version, items, at]
                        for d, version, items, at in reader.suggestions
                        if d == doc_id(index)
                    ],
                    "resyncs": [p.decode(errors="replace")[:300] for p in reader.resyncs],
                    "others": len(reader.others) + len(reader.responses),
                    "closed": reader.closed,
                }
            )
        result = {"documents": documents, "late": late, "cpu_s": cpu, "drain_s": drained}
        with open(config["out"], "w", encoding="utf-8") as out:
            json.dump(result, out)
        print("done", flush=True)
    finally:
        for conn in conns:
            conn.stop()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bench.typists CONFIG_JSON", file=sys.stderr)
        return 2
    raise_nofile_limit()
    uvloop.run(serve(json.loads(argv[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
