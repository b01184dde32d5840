"""Helpers for end-to-end tests: a real server on 127.0.0.1, tokens, test-only methods.

The test-only methods (``test/*``) are registered on a router the tests hand to
``build_app``, the same way namespaces are: they give the session machinery something
slow to cancel, a way to make the server call the client, and a flood of notifications
for flow control, without a production method existing only for tests.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from yamabiko.client import Client
from yamabiko.engines.ghost.base import GhostEngine
from yamabiko.schema.base import MethodSchema, Params, Result
from yamabiko.schema.methods import build_table
from yamabiko.server.app import App
from yamabiko.server.auth import mint_token
from yamabiko.server.settings import load_settings
from yamabiko.server.wiring import build_app
from yamabiko.sessions.methods import Router
from yamabiko.sessions.session import Context
from yamabiko.store.revocations import RevokedTokens


class SleepParams(Params):
    seconds: float


class SleepResult(Result):
    slept: float


class AskParams(Params):
    method: str
    params: dict[str, Any] = {}


class AskResult(Result):
    answer: Any


class FloodParams(Params):
    count: int
    size: int = 100
    key: str | None = None
    """When set, notifications replace each other in the queue (the ghost policy)."""


class CountResult(Result):
    count: int


class ProgressParams(Params):
    steps: int


TEST_SCHEMAS = build_table(
    [
        MethodSchema("test/sleep", SleepParams, SleepResult, "Sleep, cancellably."),
        MethodSchema("test/ask", AskParams, AskResult, "Ask the client something."),
        MethodSchema("test/flood", FloodParams, CountResult, "Queue notifications."),
        MethodSchema("test/fail", Params, Result, "Raise an unexpected exception."),
        MethodSchema("test/steps", ProgressParams, CountResult, "Report progress per step."),
        MethodSchema("test/admin", Params, Result, "Needs admin.", scope="admin"),
    ]
)


def test_router() -> Router:
    router = Router(TEST_SCHEMAS)

    @router.method("test/sleep")
    async def sleep(ctx: Context, params: SleepParams) -> SleepResult:
        await asyncio.sleep(params.seconds)
        return SleepResult(slept=params.seconds)

    @router.method("test/ask")
    async def ask(ctx: Context, params: AskParams) -> AskResult:
        answer = await ctx.session.request(params.method, params.params, Any, timeout=5)  # type: ignore[arg-type]
        return AskResult(answer=answer)

    @router.method("test/flood")
    async def flood(ctx: Context, params: FloodParams) -> CountResult:
        pad = "x" * params.size
        for i in range(params.count):
            body = {"i": i, "pad": pad}
            if params.key is None:
                ctx.session.notify("test/item", body)
            else:
                ctx.session.notify_latest(params.key, "test/item", body)
        return CountResult(count=params.count)

    @router.method("test/fail")
    async def fail(ctx: Context, params: Params) -> Result:
        raise RuntimeError("secret internal detail")

    @router.method("test/steps")
    async def steps(ctx: Context, params: ProgressParams) -> CountResult:
        for i in range(params.steps):
            ctx.progress(i + 1, params.steps, f"step {i + 1}")
            await asyncio.sleep(0)
        return CountResult(count=params.steps)

    @router.method("test/admin")
    async def admin(ctx: Context, params: Params) -> Result:
        return Result()

    return router


@dataclass
class Running:
    app: App
    secret: str
    data_dir: Path

    @property
    def url(self) -> str:
        return self.app.url

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.app.port}"

    def token(self, sub: str = "alice", tenant: str = "acme", **kw: Any) -> str:
        return mint_token(self.secret, sub=sub, tenant=tenant, **kw)

    async def client(
        self,
        sub: str = "alice",
        tenant: str = "acme",
        *,
        scopes: Sequence[str] | None = None,
        **kw: Any,
    ) -> Client:
        """A connected, initialized client; ``scopes``: the token's (default: all but
        admin)."""
        claims: dict[str, Any] = {} if scopes is None else {"scopes": scopes}
        return await Client.connect(self.url, token=self.token(sub, tenant, **claims), **kw)


@asynccontextmanager
async def running_server(
    tmp: Path,
    *,
    env: dict[str, str] | None = None,
    revoked: RevokedTokens | None = None,
    secret: str | None = None,
    ghost: Mapping[str, GhostEngine] | None = None,
    **overrides: Any,
) -> AsyncIterator[Running]:
    """A node on a free port with a fresh data dir. ``secret``: the HS256 secret (give
    several nodes the same one to let a token work on each); ``overrides``: settings."""
    secret = secret or secrets.token_urlsafe(48)
    values = {"YAMABIKO_JWT_SECRET": secret, **(env or {})}
    settings = load_settings(
        env=values, overrides={"port": 0, "data_dir": str(tmp / "data"), **overrides}
    )
    # Provider keys and URLs come from ``env`` only, never the machine's environment.
    app = await build_app(
        settings, routers=[test_router()], revoked=revoked, provider_env=env or {}, ghost=ghost
    )
    await app.start()
    try:
        yield Running(app, secret, tmp / "data")
    finally:
        await app.stop()


def with_search_path(url: str, schema: str) -> str:
    """``url`` with its connections' search_path set to ``schema`` (asyncpg passes extra
    query parameters on as server settings)."""
    separator = "&" if urlsplit(url).query else "?"
    return f"{url}{separator}search_path={schema}"


@asynccontextmanager
async def postgres_schema(base_url: str) -> AsyncIterator[str]:
    """A database URL whose connections use a fresh, empty schema, dropped afterwards:
    tests sharing the server never see each other's rows."""
    schema = f"t_{uuid.uuid4().hex}"
    conn = await asyncpg.connect(base_url)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        yield with_search_path(base_url, schema)
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


STREAM_METHODS = ("stream/delta", "stream/error", "stream/end")


@dataclass
class StreamRead:
    """What one client received of one stream, in order."""

    stream_id: str
    items: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """(method, params) of every notification of the stream."""

    @property
    def deltas(self) -> list[dict[str, Any]]:
        return [p for m, p in self.items if m == "stream/delta"]

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [p for m, p in self.items if m == "stream/error"]

    @property
    def end(self) -> dict[str, Any] | None:
        ends = [p for m, p in self.items if m == "stream/end"]
        assert len(ends) <= 1, "more than one stream/end"
        return ends[0] if ends else None

    @property
    def text(self) -> str:
        return "".join(d["text"] for d in self.deltas)

    @property
    def seqs(self) -> list[int]:
        """Every seq received, merged deltas expanded (``fromSeq``..``seq``)."""
        out: list[int] = []
        for method, params in self.items:
            if method == "stream/error" and params["seq"] in out:
                continue  # a subscription's own failure names the last seq delivered
            first = params.get("fromSeq", params["seq"])
            out.extend(range(first, params["seq"] + 1))
        return out

    @property
    def merged(self) -> int:
        """How many deltas were merged ones."""
        return sum(1 for d in self.deltas if "fromSeq" in d)


async def read_stream(
    client: Client,
    sub: Any,
    stream_id: str,
    *,
    into: StreamRead | None = None,
    deltas: int | None = None,
    timeout: float = 10.0,
) -> StreamRead:
    """Read ``stream_id``'s notifications from ``sub`` (``client.subscribe(*STREAM_METHODS)``,
    opened before the request that starts them) until ``stream/end``, or until
    ``deltas`` deltas have been received in all. Each wait is bounded by ``timeout``."""
    read = into or StreamRead(stream_id)
    while read.end is None and (deltas is None or len(read.deltas) < deltas):
        note = await client.next(sub, timeout)
        if note.params.get("streamId") == stream_id:
            read.items.append((note.method, note.params))
    return read


@dataclass
class Process:
    """A ``yamabiko serve`` subprocess (see :func:`serve_process`)."""

    ws_url: str
    mcp_url: str
    secret: str
    data_dir: Path
    pid: int

    @property
    def http(self) -> str:
        return self.ws_url.removeprefix("ws://").removesuffix("/ws")

    def token(self, sub: str = "alice", tenant: str = "acme", **kw: Any) -> str:
        return mint_token(self.secret, sub=sub, tenant=tenant, **kw)

    def rss_bytes(self) -> int:
        """The process's resident memory now (Linux)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_process(tmp: Path, env: Mapping[str, str] | None = None) -> Iterator[Process]:
    """``yamabiko serve`` on free ports (socket and MCP HTTP) with a fresh data dir, a
    known JWT secret and ``env`` (settings); ended on exit. Its log: ``tmp/server.log``."""
    secret = secrets.token_urlsafe(48)
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("YAMABIKO_") and not k.endswith(("_API_KEY", "_BASE_URL"))
    }
    cmd = [sys.executable, "-m", "yamabiko.server.cli", "serve", "--port", "0"]
    cmd += ["--mcp-port", str(free_port()), "--data-dir", str(tmp / "data")]
    with (
        (tmp / "server.log").open("w") as log,
        subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**clean, "YAMABIKO_JWT_SECRET": secret, **(env or {})},
        ) as proc,
    ):
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # bounded by the test timeout
            assert line.startswith("listening on ws://"), (tmp / "server.log").read_text()
            mcp_line = proc.stdout.readline()
            assert mcp_line.startswith("mcp on http://"), (tmp / "server.log").read_text()
            yield Process(line.split()[-1], mcp_line.split()[-1], secret, tmp / "data", proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def ping_while(url: str, token: str, attack: Awaitable[Any]) -> list[float]:
    """Seconds each ``ping`` took on a socket of ``token`` while ``attack`` ran (one
    after the other, for as long as it runs); the attack's exception propagates."""
    latencies: list[float] = []
    async with await Client.connect(url, token=token) as client:
        task = asyncio.ensure_future(attack)
        while not task.done():
            started = time.perf_counter()
            await client.call("ping", timeout=10)
            latencies.append(time.perf_counter() - started)
        await task
    return latencies


def p99(latencies: Sequence[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
