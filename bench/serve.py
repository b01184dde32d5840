"""The server side of the bench, run as ``python -m bench.serve KIND``, one process each.

KIND is

- ``yamabiko``: the real server, built as ``yamabiko serve`` builds it (settings from
  ``YAMABIKO_*``, provider keys and URLs from ``OPENAI_BASE_URL``... of the environment);
- ``echo``: a bare ``websockets`` echo server (same library, new asyncio API, uvloop, no
  compression);
- ``picows``: a bare ``picows`` echo server (Cython frame parser, a listener called per
  frame, no task per connection): the fastest Python server we know, the ceiling;
- ``broadcast``: a bare ``websockets`` fan-out server, the baseline of
  :mod:`bench.fanout`: it echoes what it gets, except three requests. ``stream/subscribe``
  adds the connection to the readers of the next stream; ``chat/send`` answers like
  Yamabiko and, ``first_delay`` later, sends every reader ``tokens`` ``stream/delta``
  notifications and a ``stream/end``, built like Yamabiko's (same fields, same sizes),
  each encoded once and sent with one ``await ws.send(data, text=True)`` per reader, in
  order (item by item, reader by reader); ``stream/unsubscribe`` is answered;
- ``openai``: a fake OpenAI Chat Completions server (:class:`tests.fakes.FakeOpenAI`) on
  its own event loop in its own process, so that it competes with neither the server
  nor the client for a loop.

Every kind listens on a free port of 127.0.0.1. The process talks to its parent in lines:
it prints ``ready PORT`` once listening, then answers each command read on stdin with
one JSON line:

- ``stats``: ``{"rss_kib": ..., "cpu_s": ...}`` after a full ``gc.collect()``;
- ``gc``: the cyclic garbage collector's work so far, per generation: collections and
  seconds (timed by a ``gc.callbacks`` hook), and the objects it tracks now;
- ``script {"tokens": N, "delay": S, "first_delay": S}`` (``openai``, ``broadcast``): what
  the next streams carry (the fake's :meth:`tests.fakes.Script.count`), ``{"ok": true}``;
- ``last`` (``openai``, ``broadcast``): when the last stream's first token left
  (``first_token_at``, ``time.monotonic()``: the same clock in every process; for the
  fake, when its request came plus ``first_delay``) and when the stream was complete;
- ``quit`` (or end of input): stops the server and exits.

With ``BENCH_PROFILE_DIR`` set the process runs under cProfile and writes
``NAME-PID.prof`` there on exit (NAME is ``BENCH_SERVER_NAME``, else the kind).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import json
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import uvloop

from bench.proc import raise_nofile_limit, rss_kib

Command = Callable[[Any], dict[str, Any]]


class _GcTimer:
    """Times every collection of the cyclic GC, by generation (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            generation = info["generation"]
            self.seconds[generation] += time.perf_counter() - self._started
            self.collections[generation] += 1

    def report(self, _argument: Any) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "collections": self.collections,
            "tracked": len(gc.get_objects()),
        }


_gc_timer = _GcTimer()


async def _control(
    stop: Callable[[], Awaitable[None]], commands: dict[str, Command] | None = None
) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    commands = {"gc": _gc_timer.report, **(commands or {})}
    while True:
        line = (await reader.readline()).strip()
        if line == b"stats":
            gc.collect()
            times = os.times()
            answer = {"rss_kib": rss_kib(), "cpu_s": times.user + times.system}
            print(json.dumps(answer), flush=True)
        elif line in (b"quit", b""):
            break
        else:
            name, _, argument = line.decode().partition(" ")
            command = commands.get(name)
            if command is None:
                print(json.dumps({"error": f"unknown command {name!r}"}), flush=True)
                continue
            try:
                answer = command(json.loads(argument) if argument else None)
            except Exception as exc:  # tell the parent rather than die
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(answer), flush=True)
    try:
        async with asyncio.timeout(3.0):
            await stop()
    except TimeoutError:
        pass


async def _yamabiko() -> None:
    from yamabiko.server.app import tune_gc
    from yamabiko.server.logs import configure_logging
    from yamabiko.server.settings import load_settings
    from yamabiko.server.wiring import build_app

    settings = load_settings(env=os.environ, overrides={"host": "127.0.0.1", "port": 0})
    configure_logging(settings.log_level)
    built = build_app(settings)
    # build_app opens the store, so it became a coroutine; accept either form.
    app = await built if inspect.isawaitable(built) else built
    await app.start()
    tune_gc()
    print(f"ready {app.port}", flush=True)
    await _control(app.stop)


async def _echo() -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    server = await serve(echo, "127.0.0.1", 0, compression=None)
    port = next(iter(server.sockets)).getsockname()[1]
    print(f"ready {port}", flush=True)

    async def stop() -> None:
        server.close()
        await server.wait_closed()

    await _control(stop)


async def _picows_echo() -> None:
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

    class Echo(WSListener):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()
            elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
                transport.send(frame.msg_type, frame.get_payload_as_bytes())

    server = await ws_create_server(lambda _request: Echo(), "127.0.0.1", 0)
    port = next(iter(server.sockets)).getsockname()[1]
    print(f"ready {port}", flush=True)

    async def stop() -> None:
        server.close()
        await server.wait_closed()

    await _control(stop)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _result(request_id: Any, result: dict[str, Any]) -> bytes:
    return _dumps({"jsonrpc": "2.0", "id": request_id, "result": result})


def _token(index: int) -> str:
    """Token ``index`` of :meth:`tests.fakes.Script.count`: ``t0``, `` t1``..."""
    return ("" if index == 0 else " ") + f"t{index}"


async def _broadcast() -> None:
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    script: dict[str, Any] = {"tokens": 4, "first_delay": 0.0}
    last: dict[str, Any] = {"error": "no stream yet"}
    readers: list[ServerConnection] = []
    producers: set[asyncio.Task[None]] = set()

    async def send(ws: ServerConnection, data: bytes) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(data, text=True)

    async def produce(stream_id: str, message_id: str, tokens: int, first_delay: float) -> None:
        await asyncio.sleep(first_delay)
        targets = list(readers)
        readers.clear()
        last.clear()
        last["first_token_at"] = time.monotonic()
        for seq in range(1, tokens + 1):
            params = {"streamId": stream_id, "seq": seq, "text": _token(seq - 1)}
            data = _dumps({"jsonrpc": "2.0", "method": "stream/delta", "params": params})
            for ws in targets:
                await send(ws, data)
        end = {
            "streamId": stream_id,
            "seq": tokens + 1,
            "finishReason": "stop",
            "messageId": message_id,
            "usage": {"inputTokens": 12, "outputTokens": tokens, "costUsd": 0.0},
            "model": "openai/gpt-bench",
        }
        data = _dumps({"jsonrpc": "2.0", "method": "stream/end", "params": end})
        for ws in targets:
            await send(ws, data)
        last["completed_at"] = time.monotonic()

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            if isinstance(message, str) and '"stream/subscribe"' in message:
                request = json.loads(message)
                readers.append(ws)
                stream_id = request["params"]["streamId"]
                answer = {"streamId": stream_id, "status": "live", "lastSeq": 0}
                await ws.send(_result(request["id"], answer), text=True)
            elif isinstance(message, str) and '"chat/send"' in message:
                request = json.loads(message)
                ids = [str(uuid.uuid4()) for _ in range(3)]  # as long as Yamabiko's ids
                answer = {
                    "conversationId": ids[0],
                    "messageId": ids[1],
                    "streamId": ids[2],
                    "model": "openai/gpt-bench",
                }
                await ws.send(_result(request["id"], answer), text=True)
                task = asyncio.get_running_loop().create_task(
                    produce(ids[2], ids[1], int(script["tokens"]), float(script["first_delay"]))
                )
                producers.add(task)
                task.add_done_callback(producers.discard)
            elif isinstance(message, str) and '"stream/unsubscribe"' in message:
                request = json.loads(message)
                await ws.send(_result(request["id"], {"unsubscribed": True}), text=True)
            else:
                await ws.send(message)

    def set_script(argument: Any) -> dict[str, Any]:
        script["tokens"] = int(argument["tokens"])
        script["first_delay"] = float(argument.get("first_delay", 0.0))
        return {"ok": True}

    server = await serve(handler, "127.0.0.1", 0, compression=None)
    port = next(iter(server.sockets)).getsockname()[1]
    print(f"ready {port}", flush=True)

    async def stop() -> None:
        for task in producers:
            task.cancel()
        server.close()
        await server.wait_closed()

    await _control(stop, {"script": set_script, "last": lambda _: dict(last)})


async def _openai() -> None:
    from tests.fakes import FakeOpenAI, Script

    fake = FakeOpenAI(Script.count(4))
    await fake.__aenter__()
    port = int(fake.url.rsplit(":", 1)[1].split("/", 1)[0])
    print(f"ready {port}", flush=True)

    def set_script(argument: Any) -> dict[str, Any]:
        served = len(fake.requests)
        fake.reset(
            Script.count(
                int(argument["tokens"]),
                delay=float(argument.get("delay", 0.0)),
                first_delay=float(argument.get("first_delay", 0.0)),
            )
        )
        return {"ok": True, "served": served, "errors": [repr(e) for e in fake.errors]}

    def last(_argument: Any) -> dict[str, Any]:
        if not fake.requests:
            return {"error": "no request yet"}
        request = fake.requests[-1]
        return {
            "request_at": request.received_at,
            "first_token_at": request.received_at + fake.script.first_delay,
            "completed_at": request.completed_at,
            "tokens_sent": request.tokens_sent,
        }

    async def stop() -> None:
        await fake.__aexit__(None, None, None)

    await _control(stop, {"script": set_script, "last": last})


KINDS: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
    "yamabiko": _yamabiko,
    "echo": _echo,
    "broadcast": _broadcast,
    "openai": _openai,
    "picows": _picows_echo,
}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in KINDS:
        print(f"usage: python -m bench.serve {{{','.join(KINDS)}}}", file=sys.stderr)
        return 2
    raise_nofile_limit()
    gc.callbacks.append(_gc_timer)
    profile_dir = os.environ.get("BENCH_PROFILE_DIR")
    if profile_dir:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        try:
            uvloop.run(KINDS[argv[0]]())
        finally:
            profiler.disable()
            name = os.environ.get("BENCH_SERVER_NAME", argv[0])
            profiler.dump_stats(os.path.join(profile_dir, f"{name}-{os.getpid()}.prof"))
    else:
        uvloop.run(KINDS[argv[0]]())
    # Leave at once: a worker thread left behind (a store's) must not keep the process up.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
