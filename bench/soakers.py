"""The soak's load generator, run as ``python -m bench.soakers CONFIG_JSON`` (see
:mod:`bench.soak`).

``users`` connections, each one user's session doing what a musician at work does, on
a fixed schedule with the users evenly out of phase: a ``ghost/change`` keystroke
``keys_per_s`` times a second into an open document (a fresh document every
:data:`DOC_KEYS` keystrokes, so that no document grows without end), a ``chat/send``
every ``chat_every_s``, each a new conversation (the server's default engine: the
offline ``local`` one when no provider key is set; a conversation that grew would make
each prompt, and the CPU per minute, grow with it), a four-note song
(``audio/synthesize``, binary frames) every ``song_every_s`` and a ``ping`` every
``ping_every_s``, whose round trip is timed.

Protocol with the parent: prints ``ready`` once every connection has said hello and
opened its document, reads ``go T0`` (a ``time.monotonic()`` instant), runs for
``duration_s`` from T0, writes its record to ``out`` and prints ``done``.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import sys
import time
from typing import Any

from bench import wsclient
from bench.loadgen import open_connections
from bench.servers import Target, hello_frames

DOC_KEYS = 600
"""Keystrokes into one document before the user opens the next."""
TEXT = (
    "Side-chain the bass to the kick so the low end breathes, then shape the snare "
    "with a short plate and keep the vocal bright but not harsh. "
)
QUESTIONS = (
    "How do I make the kick punchier?",
    "What does a compressor's attack do?",
    "How loud should I master for streaming?",
    "How do I write a chord progression that feels sad?",
)
SONG = [
    {"pitch": pitch, "start": float(i), "duration": 1.0, "lyric": syllable}
    for i, (pitch, syllable) in enumerate(((60, "ka"), (64, "ze"), (67, "no"), (72, "u")))
]
"""Four quarter notes at the server's default tempo (120 bpm): two seconds."""
PING, CHAT, SONG_ID, OPEN = 1, 2, 3, 4
"""Request kinds, the id's lowest digit: the reader tells answers apart by it."""
BINARY = {"audio": {"binary": True}}
RESPONSE_HEAD = b'{"jsonrpc":"2.0","id":'
AUDIO_END = b'"method":"audio/end"'
STREAM_END = b'"method":"stream/end"'


def _frame(message: dict[str, Any]) -> bytes:
    return wsclient.frame(json.dumps(message, separators=(",", ":")).encode())


class SoakReader(wsclient.FrameReader):
    """Counts what one user's session receives; times its pings."""

    __slots__ = (
        "audio_ends",
        "binary",
        "errors",
        "ping_sent",
        "pings",
        "stream_ends",
    )

    def __init__(self) -> None:
        super().__init__(keep=True)
        self.pings: list[tuple[float, float]] = []
        """(sent at, round trip s)."""
        self.ping_sent: dict[int, float] = {}
        self.errors: list[str] = []
        self.stream_ends = 0
        self.audio_ends = 0
        self.binary = 0

    def feed(self, data: bytes) -> int:
        count = super().feed(data)
        if not self.payloads:
            return count
        now = time.monotonic()
        for payload in self.payloads:
            if payload[:2] == b"YA":
                self.binary += 1
            elif payload.startswith(RESPONSE_HEAD):
                self._response(payload, now)
            elif STREAM_END in payload[:60]:
                self.stream_ends += 1
            elif AUDIO_END in payload[:60]:
                self.audio_ends += 1
            elif b'"method":"stream/error"' in payload[:60]:
                self.errors.append(payload[:300].decode(errors="replace"))
        self.payloads.clear()
        return count

    def _response(self, payload: bytes, now: float) -> None:
        if b'"error"' in payload:
            self.errors.append(payload[:300].decode(errors="replace"))
            return
        request_id = int(json.loads(payload)["id"])
        if request_id % 10 == PING:
            sent = self.ping_sent.pop(request_id, None)
            if sent is not None:
                self.pings.append((sent, now - sent))


class User:
    """One user's schedule and what it sends."""

    def __init__(self, index: int, conn: wsclient.StreamConnection) -> None:
        self.index = index
        self.conn = conn
        reader = conn.reader
        assert isinstance(reader, SoakReader)
        self.reader = reader
        self.keys = 0
        self.doc = 0
        self.requests = 0

    def _id(self, kind: int) -> int:
        self.requests += 1
        return self.requests * 10 + kind

    def send(self, data: bytes) -> None:
        transport = self.conn.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def open_document(self) -> None:
        self.doc += 1
        self.keys = 0
        params = {"docId": f"u{self.index}-{self.doc}", "text": ""}
        self.send(
            _frame(
                {"jsonrpc": "2.0", "id": self._id(OPEN), "method": "ghost/open", "params": params}
            )
        )

    def keystroke(self) -> None:
        if self.keys >= DOC_KEYS:
            close = {"docId": f"u{self.index}-{self.doc}"}
            self.send(
                _frame(
                    {
                        "jsonrpc": "2.0",
                        "id": self._id(OPEN),
                        "method": "ghost/close",
                        "params": close,
                    }
                )
            )
            self.open_document()
        char = TEXT[(self.index * 7 + self.keys) % len(TEXT)]
        params = {
            "docId": f"u{self.index}-{self.doc}",
            "version": self.keys + 1,
            "changes": [{"start": self.keys, "end": self.keys, "text": char}],
        }
        self.keys += 1
        self.send(_frame({"jsonrpc": "2.0", "method": "ghost/change", "params": params}))

    def chat(self) -> None:
        params = {"message": QUESTIONS[self.requests % len(QUESTIONS)]}
        self.send(
            _frame(
                {"jsonrpc": "2.0", "id": self._id(CHAT), "method": "chat/send", "params": params}
            )
        )

    def song(self) -> None:
        params = {"notes": SONG}
        self.send(
            _frame(
                {
                    "jsonrpc": "2.0",
                    "id": self._id(SONG_ID),
                    "method": "audio/synthesize",
                    "params": params,
                }
            )
        )

    def ping(self) -> None:
        request_id = self._id(PING)
        self.reader.ping_sent[request_id] = time.monotonic()
        self.send(_frame({"jsonrpc": "2.0", "id": request_id, "method": "ping"}))


async def run(config: dict[str, Any]) -> None:
    target = Target.from_json(config["target"])
    count = int(config["users"])
    conns = await open_connections(target, count, reader=SoakReader, hello=hello_frames(BINARY))
    users = [User(i, conn) for i, conn in enumerate(conns)]
    for user in users:
        user.open_document()
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    print("ready", flush=True)
    words = (await stdin.readline()).decode().split()
    if len(words) != 2 or words[0] != "go":
        raise RuntimeError(f"expected 'go T0', got {words!r}")
    t0 = float(words[1])
    end = t0 + float(config["duration_s"])
    periods = {
        User.keystroke: 1.0 / float(config["keys_per_s"]),
        User.chat: float(config["chat_every_s"]),
        User.song: float(config["song_every_s"]),
        User.ping: float(config["ping_every_s"]),
    }
    # One heap of (due, tie, user, action): each event due is sent, then rescheduled.
    due: list[tuple[float, int, int, Any]] = []
    tie = 0
    for user in users:
        for action, period in periods.items():
            tie += 1
            due.append((t0 + period * user.index / count, tie, user.index, action))
    heapq.heapify(due)
    cpu_before = time.process_time()
    late: list[float] = []
    while due and due[0][0] < end:
        at, _, index, action = due[0]
        wait = at - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        now = time.monotonic()
        while due and due[0][0] <= now:
            at, _, index, action = heapq.heappop(due)
            action(users[index])
            late.append(now - at)
            tie += 1
            heapq.heappush(due, (at + periods[action], tie, index, action))
    cpu = time.process_time() - cpu_before
    # Let the last requests be answered (bounded).
    drain_until = time.monotonic() + 5.0
    while time.monotonic() < drain_until and any(u.reader.ping_sent for u in users):
        await asyncio.sleep(0.05)
    late.sort()
    record = {
        "t0": t0,
        "pings": [p for u in users for p in u.reader.pings],
        "unanswered_pings": sum(len(u.reader.ping_sent) for u in users),
        "errors": [e for u in users for e in u.reader.errors][:20],
        "error_count": sum(len(u.reader.errors) for u in users),
        "closed": sum(1 for u in users if u.reader.closed or u.conn.transport is None),
        "stream_ends": sum(u.reader.stream_ends for u in users),
        "audio_ends": sum(u.reader.audio_ends for u in users),
        "audio_frames": sum(u.reader.binary for u in users),
        "late_p99_s": late[int(len(late) * 0.99)] if late else 0.0,
        "cpu_s": cpu,
    }
    with open(config["out"], "w", encoding="utf-8") as out:
        json.dump(record, out)
    print("done", flush=True)
    for conn in conns:
        conn.stop()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bench.soakers CONFIG_JSON", file=sys.stderr)
        return 2
    import uvloop

    uvloop.run(run(json.loads(argv[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
