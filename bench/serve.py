"""The server side of the bench, run as ``python -m bench.serve KIND``, one process each.

KIND is ``yamabiko`` (the real server, built as ``yamabiko serve`` builds it, settings
from ``YAMABIKO_*``) or ``echo`` (a bare ``websockets`` echo server: same library, new
asyncio API, uvloop, no compression). Both listen on a free port of 127.0.0.1.

The process talks to its parent in lines: it prints ``ready PORT`` once listening, then
answers each command read on stdin with one JSON line:

- ``stats``: ``{"rss_kib": ..., "cpu_s": ...}`` after a full ``gc.collect()``;
- ``quit`` (or end of input): stops the server and exits.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import json
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import uvloop

from bench.proc import raise_nofile_limit, rss_kib


async def _control(stop: Callable[[], Awaitable[None]]) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).strip()
        if line == b"stats":
            gc.collect()
            times = os.times()
            answer = {"rss_kib": rss_kib(), "cpu_s": times.user + times.system}
            print(json.dumps(answer), flush=True)
        elif line in (b"quit", b""):
            break
    try:
        async with asyncio.timeout(3.0):
            await stop()
    except TimeoutError:
        pass


async def _yamabiko() -> None:
    from yamabiko.server.logs import configure_logging
    from yamabiko.server.settings import load_settings
    from yamabiko.server.wiring import build_app

    settings = load_settings(env=os.environ, overrides={"host": "127.0.0.1", "port": 0})
    configure_logging(settings.log_level)
    built = build_app(settings)
    # build_app opens the store, so it became a coroutine; accept either form.
    app = await built if inspect.isawaitable(built) else built
    await app.start()
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


KINDS: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {"yamabiko": _yamabiko, "echo": _echo}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in KINDS:
        print(f"usage: python -m bench.serve {{{','.join(KINDS)}}}", file=sys.stderr)
        return 2
    raise_nofile_limit()
    uvloop.run(KINDS[argv[0]]())
    # Leave at once: a worker thread left behind (a store's) must not keep the process up.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
