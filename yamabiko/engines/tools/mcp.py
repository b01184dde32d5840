"""Other MCP servers' tools, for agents: a bounded pool of live MCP client sessions.

Theory of operation. Each live session is owned by one runner task of the pool: it
enters the SDK's transport (``stdio_client`` starts the server process;
``streamable_http_client`` talks to a URL) and a ``ClientSession``, runs the
``initialize`` handshake, then waits until it is told to close. The SDK's task groups
and cancel scopes are entered and left in that one task, as anyio requires; callers
(handler tasks, agent runs) only send requests on the session. A session dies when its
transport ends (the server process exits, the stream closes); the pool notices through
the read stream it hands the SDK, and the next use opens a new one.

Guarantees:

- Every wait is bounded (:class:`McpTimeouts`): connect (spawn + ``initialize``), list,
  call, close. A server that never answers costs at most the timeout and its session.
- At most ``max_sessions`` live sessions (LRU): opening one more closes the least
  recently used, an idle one first. Sessions are keyed by the server's id and a digest
  of its spec (so two agents whose headers resolve to different secrets get two).
- stdio commands must be on the pool's allowlist: exact command names (``npx``) or
  absolute paths (``/usr/local/bin/mcp-x``), compared as strings, no PATH search, no
  normalisation. Arguments are not restricted: allowlisting an interpreter lets whoever
  may add servers (scope ``admin``) run any code with it. The child process gets the
  SDK's minimal environment (``HOME``, ``PATH``, ...) plus the spec's ``env``, never the
  server's own variables (provider keys), and its stderr goes to ``errlog`` (default:
  discarded).
- http URLs go through the egress policy (:mod:`yamabiko.engines.tools.egress`): a
  destination it refuses is :class:`McpEgressRefused`, decided before connecting, and
  every request connects to the address the policy judged. Any other failure to reach
  an http server before its session is ready (refused, unreachable, reset, timed out,
  not an MCP server, refused our headers) is the one message :data:`CANNOT_CONNECT`, so
  that the error cannot be used to scan ports; the cause is logged at DEBUG.
- Failures are data or one exception family, never a crash: a tool's own error and an
  MCP error answer to ``tools/call`` are a :class:`ToolResult` with ``is_error``; not
  allowed, cannot connect, timed out, connection lost, and an MCP error answer to
  ``tools/list`` are :class:`McpClientError` subclasses whose message names the server
  id and never a header value or an environment value. A tool call is never retried
  (it may not be idempotent); a listing is retried once on a fresh session when the
  old one turned out to be dead.
- ``aclose()`` closes every session and waits (bounded) for their runners.

Header values may reference an agent's secrets as ``${secret:NAME}``:
:func:`spec_from_server` substitutes them from a mapping the caller fetched (the store
gives the values per agent), and refuses a reference it has no value for.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import logging
import os
import re
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Literal, NamedTuple, Self, TextIO, TypeVar

import anyio
import httpx2
import mcp_types as types
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

from yamabiko.engines.tools.egress import EgressPolicy, EgressRefused, EgressTransport
from yamabiko.schema.objects import McpServer

__all__ = [
    "CANNOT_CONNECT",
    "DEFAULT_MAX_SESSIONS",
    "SECRET_REF",
    "McpClientError",
    "McpClients",
    "McpConfigError",
    "McpConnectError",
    "McpConnectionLost",
    "McpEgressRefused",
    "McpNotAllowed",
    "McpProbe",
    "McpProtocolError",
    "McpServerSpec",
    "McpTimeout",
    "McpTimeouts",
    "ToolInfo",
    "ToolResult",
    "secret_names",
    "spec_from_server",
]

_log = logging.getLogger(__name__)

T = TypeVar("T")
Transport = Literal["stdio", "http"]

DEFAULT_MAX_SESSIONS: Final = 16
MAX_TOOL_PAGES: Final = 20
"""``tools/list`` pages followed at most (a server that pages forever is cut off)."""
MAX_RESULT_CHARS: Final = 100_000
"""A tool result's text is cut to this many characters (a marker says so)."""
SECRET_REF: Final = re.compile(r"\$\{secret:([A-Za-z_][A-Za-z0-9_]{0,63})\}")
"""``${secret:NAME}`` in a header value: the agent's secret ``NAME``."""
CANNOT_CONNECT: Final = "could not connect to the MCP server"
"""Every failure to reach an http server before its session is ready, whatever it was."""


# errors


class McpClientError(Exception):
    """Base of the pool's errors. The message is safe to show to the caller: it names
    the server id, never a header or environment value."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class McpNotAllowed(McpClientError):
    """A stdio command that is not on the allowlist."""


class McpEgressRefused(McpNotAllowed):
    """An http URL whose destination the egress policy refuses (before any connection)."""


class McpConfigError(McpClientError):
    """A spec that cannot be used: no command, no URL, a secret reference with no value."""


class McpConnectError(McpClientError):
    """The server could not be started, reached or initialized."""


class McpTimeout(McpClientError):
    """A wait ran out: ``stage`` is ``connect``, ``list`` or ``call``."""

    def __init__(self, message: str, stage: str) -> None:
        super().__init__(message)
        self.stage = stage


class McpConnectionLost(McpClientError):
    """The session died during a request (the server exited, the stream closed)."""


class McpProtocolError(McpClientError):
    """The server answered a request with an MCP error (``code``, ``remote_message``)."""

    def __init__(self, message: str, code: int, remote_message: str) -> None:
        super().__init__(message)
        self.code = code
        self.remote_message = remote_message


# values


@dataclass(frozen=True, eq=True)
class McpServerSpec:
    """How to reach one MCP server: ``command``/``args``/``env`` for stdio, ``url``/
    ``headers`` for http (values already resolved: no ``${secret:...}`` left). The repr
    shows header and environment names only."""

    id: str
    transport: Transport
    command: str | None = None
    args: tuple[str, ...] = ()
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] | None = None

    def __repr__(self) -> str:
        where = self.url if self.transport == "http" else self.command
        return (
            f"McpServerSpec(id={self.id!r}, transport={self.transport!r}, at={where!r}, "
            f"headers={sorted(self.headers)!r}, env={sorted(self.env or {})!r})"
        )

    __str__ = __repr__

    def digest(self) -> str:
        """A digest of everything that makes a connection: equal specs share a session."""
        blob = json.dumps(
            [
                self.transport, self.command, list(self.args), self.url,
                sorted(self.headers.items()), sorted((self.env or {}).items()),
            ],
            separators=(",", ":"),
        )  # fmt: skip
        return hashlib.sha256(blob.encode()).hexdigest()[:32]


def secret_names(headers: Mapping[str, str]) -> set[str]:
    """The secret names the header values reference (``${secret:NAME}``)."""
    return {m.group(1) for value in headers.values() for m in SECRET_REF.finditer(value)}


def spec_from_server(
    server: McpServer,
    *,
    secrets: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> McpServerSpec:
    """The spec of a stored server, with each ``${secret:NAME}`` in a header value
    replaced by ``secrets[NAME]``. Raises McpConfigError naming the header and the
    secret (never a value) when a referenced secret is not in ``secrets``."""
    headers: dict[str, str] = {}
    given = secrets or {}
    for name, value in server.headers.items():

        def substitute(match: re.Match[str], header: str = name) -> str:
            secret = match.group(1)
            if secret not in given:
                raise McpConfigError(
                    f"MCP server {server.id}: header {header!r} needs the agent secret "
                    f"{secret!r}, which is not set"
                )
            return given[secret]

        headers[name] = SECRET_REF.sub(substitute, value)
    return McpServerSpec(
        id=server.id,
        transport=server.transport,
        command=server.command,
        args=tuple(server.args),
        url=server.url,
        headers=headers,
        env=env,
    )


@dataclass(frozen=True)
class McpTimeouts:
    """Seconds. ``connect``: start or reach the server and finish ``initialize``;
    ``list``: all pages of ``tools/list``; ``call``: one ``tools/call``; ``close``: wait
    for a session's runner to shut the transport down (the SDK bounds its own steps:
    stdin close, SIGTERM, SIGKILL, about 6 s at worst)."""

    connect: float = 10.0
    list: float = 10.0
    call: float = 30.0
    close: float = 10.0


@dataclass(frozen=True)
class ToolInfo:
    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ToolResult:
    """A tool's answer as text (the text blocks joined by newlines; other blocks as a
    short placeholder), ``is_error`` when the tool or the server reported an error, and
    the structured result if the server gave one."""

    content_text: str
    is_error: bool
    structured: Any = None


class McpProbe(NamedTuple):
    """What :meth:`McpClients.test` found: ``latency_ms`` covers connect, initialize and
    listing the tools on a fresh session; ``error`` says why ``ok`` is false."""

    ok: bool
    tools: list[ToolInfo]
    latency_ms: float
    error: str | None = None


# the pool


class _WatchedStream:
    """The read stream handed to the SDK, noting when it ends: that is how the pool
    learns that a session died between requests. It is the SDK's documented read-stream
    shape (``receive``, ``aclose``, async iteration, async context) and nothing more;
    the one optional attribute that shape names, ``last_context`` (the sender's context,
    read with ``getattr(stream, "last_context", None)``), is passed through by name,
    not by forwarding every attribute to the stream we wrap."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.ended = False

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> SessionMessage | Exception:
        try:
            item: SessionMessage | Exception = await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self.ended = True
            raise
        return item

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        self.ended = True
        await self._inner.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class _Live:
    """One session and the runner task that owns it."""

    def __init__(self, spec: McpServerSpec) -> None:
        self.spec = spec
        self.ready: asyncio.Future[ClientSession] = asyncio.get_running_loop().create_future()
        self.closing = asyncio.Event()
        self.stream: _WatchedStream | None = None
        self.task: asyncio.Task[None] | None = None
        self.users = 0
        self.dead = False

    def alive(self) -> bool:
        return (
            not self.dead
            and self.task is not None
            and not self.task.done()
            and self.ready.done()
            and not self.ready.cancelled()
            and self.ready.exception() is None
            and not (self.stream is not None and self.stream.ended)
        )


class McpClients:
    """A bounded pool of MCP client sessions, one per server spec; see the module
    docstring for what it guarantees. Use one per node and ``aclose()`` it at shutdown.

    ``allowlist``: the stdio commands that may be started (exact names or absolute
    paths; anything else raises ValueError here). ``errlog``: where stdio servers'
    stderr goes (None: discarded). ``egress``: where http servers may be (None: the
    default policy, public addresses only).
    """

    def __init__(
        self,
        allowlist: Iterable[str] = (),
        *,
        timeouts: McpTimeouts | None = None,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        errlog: TextIO | None = None,
        client_name: str = "yamabiko",
        egress: EgressPolicy | None = None,
    ) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        entries = [entry.strip() for entry in allowlist if entry.strip()]
        for entry in entries:
            if "/" in entry and not os.path.isabs(entry):
                raise ValueError(
                    f"MCP stdio allowlist entry {entry!r}: give a command name or an absolute path"
                )
        self.allowlist: frozenset[str] = frozenset(entries)
        self.timeouts = timeouts or McpTimeouts()
        self.egress = egress or EgressPolicy()
        self._ssl: asyncio.Future[ssl.SSLContext] | None = None
        self.max_sessions = max_sessions
        self._errlog = errlog
        self._devnull: TextIO | None = None
        self._client_info = types.Implementation(name=client_name, version="1")
        self._live: OrderedDict[tuple[str, str], _Live] = OrderedDict()
        self._opening: dict[tuple[str, str], asyncio.Lock] = {}
        self._runners: set[asyncio.Task[None]] = set()
        self._closed = False
        self.sessions_opened = 0
        """Sessions opened so far (a reused session does not count)."""

    # public

    def allows(self, command: str) -> bool:
        """Whether ``command`` may be started over stdio."""
        return command in self.allowlist

    def check(self, spec: McpServerSpec) -> None:
        """Raises McpConfigError or McpNotAllowed if ``spec`` cannot be connected to."""
        if spec.transport == "stdio":
            if not spec.command:
                raise McpConfigError(f"MCP server {spec.id}: stdio needs a command")
            if not self.allows(spec.command):
                raise McpNotAllowed(
                    f"MCP server {spec.id}: command {spec.command!r} is not on the stdio "
                    "allowlist (YAMABIKO_MCP_STDIO_ALLOWLIST)"
                )
        elif spec.transport == "http":
            if not spec.url or not spec.url.startswith(("http://", "https://")):
                raise McpConfigError(f"MCP server {spec.id}: http needs an http(s) URL")
            try:
                self.egress.check_url(spec.url)
            except EgressRefused as exc:
                raise McpEgressRefused(f"MCP server {spec.id}: {exc.message}") from None
        else:
            raise McpConfigError(f"MCP server {spec.id}: unknown transport {spec.transport!r}")

    async def tools(self, server: McpServerSpec) -> list[ToolInfo]:
        """The server's tools (every page). Raises McpClientError."""
        try:
            return await self._use(server, self._list_tools, stage="list", retry=True)
        except MCPError as exc:
            raise _protocol_error(server, "tools/list", exc) from None

    async def call(
        self, server: McpServerSpec, tool: str, arguments: Mapping[str, Any] | None = None
    ) -> ToolResult:
        """Calls ``tool``. The tool's own failure, and an MCP error answer, come back as
        ``is_error``; not allowed, unreachable, timed out or lost raise McpClientError."""

        async def call_tool(session: ClientSession) -> ToolResult:
            result = await session.call_tool(
                tool, dict(arguments or {}), read_timeout_seconds=self.timeouts.call
            )
            return ToolResult(
                _text(result.content), is_error=result.is_error,
                structured=result.structured_content,
            )  # fmt: skip

        try:
            return await self._use(server, call_tool, stage="call", retry=False)
        except MCPError as exc:
            return ToolResult(f"MCP error {exc.code}: {_cut(exc.message)}", is_error=True)
        except RuntimeError as exc:  # the SDK's "input required" refusal
            return ToolResult(f"unsupported tool result: {_cut(str(exc))}", is_error=True)

    async def test(self, server: McpServerSpec) -> McpProbe:
        """Connects afresh (closing a pooled session of this spec), initializes and lists
        the tools; never raises for the server's failures (``ok`` false, ``error``).
        The new session stays in the pool."""
        await self._discard(server)
        start = time.perf_counter()
        try:
            tools = await self.tools(server)
        except McpClientError as exc:
            return McpProbe(False, [], _ms(start), exc.message)
        return McpProbe(True, tools, _ms(start))

    def live(self, server: McpServerSpec) -> bool:
        """Whether a live session for ``server`` is pooled now."""
        entry = self._live.get(self._key(server))
        return entry is not None and entry.alive()

    @property
    def size(self) -> int:
        """Sessions held now (live or closing)."""
        return len(self._live)

    async def forget(self, server_id: str) -> None:
        """Closes every session of the server ``server_id`` (after it was removed)."""
        keys = [key for key in self._live if key[0] == server_id]
        await asyncio.gather(*(self._close(self._live.pop(key)) for key in keys))

    async def aclose(self) -> None:
        """Closes every session; later use raises McpClientError. Idempotent."""
        self._closed = True
        entries = list(self._live.values())
        self._live.clear()
        await asyncio.gather(*(self._close(entry) for entry in entries))
        stragglers = [task for task in self._runners if not task.done()]
        if stragglers:  # sessions dropped earlier, still shutting down
            _, pending = await asyncio.wait(stragglers, timeout=self.timeouts.close)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        if self._devnull is not None:
            self._devnull.close()
            self._devnull = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # requests

    async def _list_tools(self, session: ClientSession) -> list[ToolInfo]:
        tools: list[ToolInfo] = []
        cursor: str | None = None
        for _ in range(MAX_TOOL_PAGES):
            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await session.list_tools(params=params)
            tools.extend(
                ToolInfo(t.name, t.description or "", dict(t.input_schema)) for t in page.tools
            )
            cursor = page.next_cursor
            if not cursor:
                break
        return tools

    async def _use(
        self,
        server: McpServerSpec,
        request: Callable[[ClientSession], Awaitable[T]],
        *,
        stage: Literal["list", "call"],
        retry: bool,
    ) -> T:
        """Runs ``request`` on a live session within the stage's timeout. MCP error
        answers propagate as MCPError; everything else becomes McpClientError."""
        limit = self.timeouts.list if stage == "list" else self.timeouts.call
        for attempt in (1, 2):
            entry = await self._acquire(server)
            try:
                with anyio.fail_after(limit):
                    return await request(await entry.ready)
            except TimeoutError:
                await self._drop(entry)  # it may be stuck: the next use starts afresh
                raise McpTimeout(
                    f"MCP server {server.id}: {_what(stage)} timed out after {limit:g}s",
                    stage,
                ) from None
            except MCPError as exc:
                if exc.code == REQUEST_TIMEOUT:
                    await self._drop(entry)
                    raise McpTimeout(
                        f"MCP server {server.id}: {_what(stage)} timed out after {limit:g}s",
                        stage,
                    ) from None
                if exc.code != CONNECTION_CLOSED:
                    raise  # the server's answer
                await self._drop(entry)
                if retry and attempt == 1:
                    continue
                raise McpConnectionLost(
                    f"MCP server {server.id}: the connection closed during {_what(stage)}"
                ) from None
            except ValueError:  # pydantic's ValidationError: an answer off the protocol
                await self._drop(entry)
                raise McpClientError(
                    f"MCP server {server.id}: invalid answer to {_what(stage)}"
                ) from None
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError) as exc:
                await self._drop(entry)
                if retry and attempt == 1:
                    continue
                raise McpConnectionLost(
                    f"MCP server {server.id}: the connection failed during {_what(stage)}: "
                    f"{type(exc).__name__}"
                ) from None
            finally:
                entry.users -= 1
        raise AssertionError("unreachable")  # pragma: no cover

    # sessions

    def _key(self, spec: McpServerSpec) -> tuple[str, str]:
        return (spec.id, spec.digest())

    async def _acquire(self, spec: McpServerSpec) -> _Live:
        """A live, initialized session for ``spec`` (opened if needed), counted as in
        use: the caller decrements ``users``."""
        if self._closed:
            raise McpClientError("the MCP client pool is closed")
        self.check(spec)
        key = self._key(spec)
        lock = self._opening.setdefault(key, asyncio.Lock())
        async with lock:
            entry = self._live.get(key)
            if entry is not None and not entry.alive():
                self._live.pop(key, None)
                await self._close(entry)
                entry = None
            if entry is None:
                entry = await self._open(spec)
                self._live[key] = entry
            self._live.move_to_end(key)
            entry.users += 1
        return entry

    async def _open(self, spec: McpServerSpec) -> _Live:
        while len(self._live) >= self.max_sessions:
            await self._evict()
        entry = _Live(spec)
        # A fresh context: the runner outlives the request that opened it.
        task = asyncio.get_running_loop().create_task(
            self._run(entry), name=f"mcp-session-{spec.id}", context=contextvars.Context()
        )
        entry.task = task
        self._runners.add(task)
        task.add_done_callback(self._runners.discard)
        try:
            await asyncio.wait_for(asyncio.shield(entry.ready), self.timeouts.connect)
        except TimeoutError:
            await self._close(entry)
            if spec.transport == "http":
                _log.debug("MCP server %s: no session within the connect timeout", spec.id)
                raise McpConnectError(f"MCP server {spec.id}: {CANNOT_CONNECT}") from None
            raise McpTimeout(
                f"MCP server {spec.id}: no answer to initialize within {self.timeouts.connect:g}s",
                "connect",
            ) from None
        except BaseException:  # McpClientError from the runner, or our cancellation
            await self._close(entry)
            raise
        self.sessions_opened += 1
        return entry

    async def _evict(self) -> None:
        """Closes the least recently used session, an idle one if there is one."""
        victim = next((k for k, e in self._live.items() if e.users == 0), None)
        if victim is None:
            victim = next(iter(self._live))
        await self._close(self._live.pop(victim))

    async def _discard(self, spec: McpServerSpec) -> None:
        entry = self._live.pop(self._key(spec), None)
        if entry is not None:
            await self._close(entry, wait=False)

    async def _drop(self, entry: _Live) -> None:
        """Takes a failed session out of the pool and closes it in the background (the
        caller need not wait for a stuck server to be stopped)."""
        entry.dead = True
        key = self._key(entry.spec)
        if self._live.get(key) is entry:
            del self._live[key]
        await self._close(entry, wait=False)

    async def _close(self, entry: _Live, *, wait: bool = True) -> None:
        """Tells the runner to close and waits for it (``wait``), bounded by the close
        timeout; a runner still going after that is cancelled."""
        entry.dead = True
        entry.closing.set()
        key = self._key(entry.spec)
        lock = self._opening.get(key)
        if key not in self._live and lock is not None and not lock.locked():
            del self._opening[key]  # no session and no opener: forget the lock
        task = entry.task
        if task is None or task.done():
            return
        if not wait:
            timer = asyncio.get_running_loop().call_later(
                self.timeouts.close, _cancel_late, task, entry.spec.id
            )
            task.add_done_callback(lambda _: timer.cancel())
            return
        done, _ = await asyncio.wait({task}, timeout=self.timeouts.close)
        if not done:
            _cancel_late(task, entry.spec.id)

    async def _run(self, entry: _Live) -> None:
        """The runner: owns the transport and the session from open to close."""
        spec = entry.spec
        try:
            async with AsyncExitStack() as stack:
                read, write = await self._transport(stack, spec)
                entry.stream = _WatchedStream(read)
                session = await stack.enter_async_context(
                    ClientSession(entry.stream, write, client_info=self._client_info)
                )
                with anyio.fail_after(self.timeouts.connect):
                    await session.initialize()
                entry.ready.set_result(session)
                await entry.closing.wait()
        except BaseException as exc:  # reported to the opener; the runner ends quietly
            if not entry.ready.done():
                entry.ready.set_exception(_connect_error(spec, exc, self.timeouts.connect))
            elif not isinstance(exc, asyncio.CancelledError | Exception):
                raise
            else:
                _log.debug("MCP server %s: session ended: %s", spec.id, type(exc).__name__)
        finally:
            entry.dead = True
            if entry.ready.done() and not entry.ready.cancelled():
                entry.ready.exception()  # retrieved: no "never retrieved" warning

    async def _transport(self, stack: AsyncExitStack, spec: McpServerSpec) -> Any:
        if spec.transport == "stdio":
            assert spec.command is not None  # check() ran
            params = StdioServerParameters(
                command=spec.command, args=list(spec.args), env=dict(spec.env or {})
            )
            return await stack.enter_async_context(stdio_client(params, errlog=self._stderr()))
        assert spec.url is not None
        # Judged here first so that a refusal is reported as such (inside the SDK it
        # would become a failed request); the transport judges every request again.
        await self.egress.resolve(httpx2.URL(spec.url))
        http = await stack.enter_async_context(
            httpx2.AsyncClient(
                headers=dict(spec.headers),
                timeout=httpx2.Timeout(self.timeouts.connect, read=300.0),
                transport=EgressTransport(self.egress, await self._ssl_context()),
                trust_env=False,
            )
        )
        return await stack.enter_async_context(streamable_http_client(spec.url, http_client=http))

    async def _ssl_context(self) -> ssl.SSLContext:
        """One TLS context for every http session, built once off the loop (loading the
        CA bundle blocks for 100-300 ms; per session it stalled every other client)."""
        if self._ssl is None:
            self._ssl = asyncio.ensure_future(asyncio.to_thread(httpx2.create_ssl_context))
        return await asyncio.shield(self._ssl)

    def _stderr(self) -> TextIO:
        if self._errlog is not None:
            return self._errlog
        if self._devnull is None:
            self._devnull = open(os.devnull, "w")  # noqa: SIM115 (closed by aclose)
        return self._devnull


# helpers


def _cancel_late(task: asyncio.Task[None], server_id: str) -> None:
    if not task.done():
        _log.warning("MCP server %s: session did not close in time; cancelled", server_id)
        task.cancel()


def _what(stage: str) -> str:
    return {"list": "tools/list", "call": "tools/call"}.get(stage, stage)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)


def _cut(text: str, limit: int = MAX_RESULT_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit} more characters cut]"


def _text(content: Sequence[types.ContentBlock]) -> str:
    parts: list[str] = []
    for block in content:
        if isinstance(block, types.TextContent):
            parts.append(block.text)
        elif isinstance(block, types.ImageContent | types.AudioContent):
            parts.append(f"[{block.type}: {block.mime_type}]")
        elif isinstance(block, types.ResourceLink):
            parts.append(f"[resource: {block.uri}]")
        elif isinstance(block, types.EmbeddedResource):
            resource = block.resource
            text = getattr(resource, "text", None)
            parts.append(text if isinstance(text, str) else f"[resource: {resource.uri}]")
    return _cut("\n".join(parts))


def _protocol_error(spec: McpServerSpec, method: str, exc: MCPError) -> McpProtocolError:
    return McpProtocolError(
        f"MCP server {spec.id}: {method} failed: MCP error {exc.code}: {_cut(exc.message, 500)}",
        exc.code,
        exc.message,
    )


def _leaves(exc: BaseException) -> Iterable[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _connect_error(spec: McpServerSpec, exc: BaseException, limit: float) -> McpClientError:
    """What the opener is told when the runner failed before the session was ready."""
    leaves = list(_leaves(exc))
    for leaf in leaves:
        if isinstance(leaf, McpClientError):
            return leaf
        if isinstance(leaf, EgressRefused):
            return McpEgressRefused(f"MCP server {spec.id}: {leaf.message}")
    if spec.transport == "http":
        # One message whatever happened: refused, unreachable, reset, timed out, not
        # MCP. The kind goes to the log only (never a message: it may quote a header).
        kinds = ", ".join(sorted({type(leaf).__name__ for leaf in leaves})) or type(exc).__name__
        _log.debug("MCP server %s: could not connect: %s", spec.id, kinds)
        return McpConnectError(f"MCP server {spec.id}: {CANNOT_CONNECT}")
    for leaf in leaves:
        if isinstance(leaf, TimeoutError):
            return McpTimeout(
                f"MCP server {spec.id}: no answer to initialize within {limit:g}s", "connect"
            )
    first = leaves[0] if leaves else exc
    if isinstance(first, MCPError):
        reason = f"MCP error {first.code}: {_cut(first.message, 300)}"
    elif isinstance(first, OSError):
        reason = f"{type(first).__name__}: {first.strerror or first}"
    elif isinstance(first, httpx2.HTTPError):
        reason = type(first).__name__
    elif isinstance(first, asyncio.CancelledError):
        reason = "cancelled"
    else:
        reason = type(first).__name__
    return McpConnectError(f"MCP server {spec.id}: could not connect: {reason}")
