"""``yamabiko serve --workers N``: N worker processes on one port, and their supervisor.

Theory of operation. The supervisor serves nothing itself. It reserves the port (a
probe bind without ``SO_REUSEPORT`` proves that nobody else holds it; then a bound,
never listening socket with ``SO_REUSEPORT`` keeps it for the supervisor's life), makes
the data dir and runs the migrations once, then starts each worker as a ``yamabiko
serve`` process of its own that listens on that port with ``SO_REUSEPORT``: the kernel
spreads new connections over the listening workers (Linux hashes each connection's
addresses and ports), and a connection stays with the worker that accepted it. Worker 0
alone serves the MCP HTTP face, whose sessions live in one process's memory
(docs/deployment.md, Workers).

A worker reports readiness on its stdout (``listening on``, then ``mcp on``); once every
worker is ready the supervisor prints the same lines once for the whole. A worker that
exits while the supervisor is not stopping is started again (after a pause that grows
while it keeps dying young); the other workers and their sockets are untouched. On
SIGTERM or SIGINT every worker is sent SIGTERM and drains as a single node does
(running work finishes within ``YAMABIKO_SHUTDOWN_TIMEOUT_S``, then sockets close with
1001); the supervisor exits 0 when all of them did. A worker whose supervisor dies
(even by SIGKILL) sees its stdin end and drains too: no orphan keeps the port.

What workers share goes through what nodes share (Redis, and PostgreSQL or one SQLite
file in WAL mode), so more than one worker needs ``YAMABIKO_REDIS_URL``
(:func:`refusal`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from yamabiko.server.settings import Settings

log = logging.getLogger("yamabiko.server")

EXIT_ERROR: Final = 1
START_TIMEOUT_S: Final = 120.0
"""A worker that is not listening this long after it was started is killed."""
RESTART_DELAY_S: Final = (0.1, 10.0)
"""The pause before restarting a worker: the first, and the most it doubles to."""
STEADY_S: Final = 30.0
"""A worker that ran this long before it died is restarted after the first pause again."""
KILL_GRACE_S: Final = 10.0
"""Beyond the shutdown timeout, how long a draining worker may take before SIGKILL."""

WorkerCommand = Callable[[int, int, int | None], list[str]]
"""``(index, port, mcp_port)`` -> the command line of a worker (``mcp_port`` None:
the worker does not serve the MCP HTTP face)."""


def refusal(settings: Settings) -> str | None:
    """Why ``settings`` cannot run as several workers, in one line; None if they can."""
    count = settings.worker_count
    if count <= 1:
        return None
    if not settings.redis_url:
        return (
            f"{count} workers need YAMABIKO_REDIS_URL: workers share streams, locks, rate "
            "limits and revocations through Redis as nodes do (docs/deployment.md, "
            "Workers); set it, or serve with --workers 1"
        )
    if sys.platform != "linux" or not hasattr(socket, "SO_REUSEPORT"):
        return (
            f"{count} workers need SO_REUSEPORT with load balancing (Linux): run one "
            "worker per node here (--workers 1)"
        )
    return None


class WorkerTag(logging.Filter):
    """Adds ``worker`` (its index) and ``pid`` to every log line of a worker process, so
    that the workers' lines, which share the supervisor's stderr, can be told apart."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index
        self.pid = os.getpid()

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.index
        record.pid = self.pid
        return True


def tag_worker_logs(index: int) -> None:
    """Tag every line the ``yamabiko`` logger's handlers write (call after configuring
    them) with the worker's index and pid."""
    for handler in logging.getLogger("yamabiko").handlers:
        handler.addFilter(WorkerTag(index))


class _ParentPipe(asyncio.Protocol):
    def __init__(self, gone: Callable[[], None]) -> None:
        self._gone = gone

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone()


async def watch_parent(gone: Callable[[], None]) -> None:
    """Call ``gone`` when stdin (the supervisor's pipe) ends: the supervisor died."""
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: _ParentPipe(gone), sys.stdin)


def reserve_port(host: str, port: int) -> tuple[int, list[socket.socket]]:
    """Reserve ``port`` (0: a free one) on every address of ``host`` for workers that
    bind it with ``SO_REUSEPORT``; returns the port and the sockets that hold it (close
    them at exit). Raises ``OSError`` if anything else holds the port.

    The probe binds without ``SO_REUSEPORT``, so it fails if the port is held by any
    socket, including another supervisor's (whose workers would otherwise silently
    share the port with ours).
    """
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    held: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            probe = socket.socket(family, kind, proto)
            with probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind((address[0], port, *address[2:]))
                port = probe.getsockname()[1]
            holder = socket.socket(family, kind, proto)
            held.append(holder)
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                holder.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            holder.bind((address[0], port, *address[2:]))
    except BaseException:
        for holder in held:
            holder.close()
        raise
    return port, held


class WorkerFailed(Exception):
    """A worker exited (or stalled) before it was listening; ``code`` is its status."""

    def __init__(self, index: int, code: int) -> None:
        super().__init__(f"worker {index} exited with status {code} before listening")
        self.index = index
        self.code = code


@dataclass
class _Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    started: float = 0.0
    restarts: int = 0
    delay_s: float = RESTART_DELAY_S[0]
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)


class Supervisor:
    """Runs ``count`` workers on ``port`` of ``host`` until SIGTERM or SIGINT.

    ``command`` builds each worker's command line; ``mcp_port`` is the MCP HTTP face's
    port for worker 0 (None: no MCP HTTP face); once worker 0 has reported its URL, a
    restarted worker 0 binds the same port.
    """

    def __init__(
        self,
        command: WorkerCommand,
        *,
        count: int,
        host: str,
        port: int,
        mcp_port: int | None,
        shutdown_timeout_s: float,
    ) -> None:
        self._command = command
        self._host = host
        self._port = port
        self._mcp_port = mcp_port
        self._shutdown_timeout_s = shutdown_timeout_s
        self._workers = [_Worker(i) for i in range(count)]
        self._stopping = asyncio.Event()

    async def run(self) -> int:
        """Start, supervise and drain the workers; the exit status of ``yamabiko serve``."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        self._port, held = reserve_port(self._host, self._port)
        try:
            return await self._run()
        finally:
            for holder in held:
                holder.close()

    async def _run(self) -> int:
        starting = [asyncio.ensure_future(self._start(w)) for w in self._workers]
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            # Every worker listening, the first one failing, or a signal: whichever first.
            started: asyncio.Future[list[str | None]] = asyncio.gather(*starting)
            either: set[asyncio.Future[Any]] = {started, stopping}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if not started.done():
                started.cancel()
            elif not started.cancelled():
                started.exception()  # retrieved here; the tasks below say which failed
            failed = [
                t.exception() for t in starting if t.done() and not t.cancelled() and t.exception()
            ]
            if failed or self._stopping.is_set():
                for task in starting:
                    task.cancel()
                await asyncio.gather(*starting, return_exceptions=True)
                await self._drain()
                first = failed[0] if failed else None
                if isinstance(first, WorkerFailed):
                    log.error("%s; stopping", first, extra={"worker": first.index})
                    return first.code if first.code > 0 else EXIT_ERROR
                if first is not None:
                    raise first
                return 0
            mcp_url = starting[0].result()
            url = f"ws://{self._host}:{self._port}/ws"
            # stdout carries the readiness lines only, as for one process.
            print(f"listening on {url}", flush=True)
            if mcp_url is not None:
                print(f"mcp on {mcp_url}", flush=True)
            log.info(
                "workers listening",
                extra={"url": url, "workers": [self._pid(w) for w in self._workers]},
            )
            for worker in self._workers:
                worker.watcher = asyncio.create_task(self._watch(worker))
            await stopping
            log.info("shutting down workers")
            return await self._drain()
        finally:
            stopping.cancel()

    @staticmethod
    def _pid(worker: _Worker) -> int | None:
        return worker.process.pid if worker.process is not None else None

    async def _start(self, worker: _Worker) -> str | None:
        """Start ``worker`` and wait until it listens; its MCP URL (worker 0), if any."""
        mcp_port = self._mcp_port if worker.index == 0 else None
        argv = self._command(worker.index, self._port, mcp_port)
        # stdin is the worker's lifeline (it drains when the pipe ends); its stderr is
        # ours, so that every worker's log lines reach the same place.
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        worker.process = process
        worker.started = time.monotonic()
        assert process.stdout is not None
        mcp_url: str | None = None
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                line = (await process.stdout.readline()).decode()
                if not line.startswith("listening on "):
                    raise WorkerFailed(worker.index, await process.wait())
                if mcp_port is not None:
                    line = (await process.stdout.readline()).decode()
                    if not line.startswith("mcp on "):
                        raise WorkerFailed(worker.index, await process.wait())
                    mcp_url = line.split()[-1]
                    # A restarted worker 0 takes the same port: clients keep their URL.
                    self._mcp_port = urlsplit(mcp_url).port or mcp_port
        except TimeoutError:
            process.kill()
            await process.wait()
            raise WorkerFailed(worker.index, EXIT_ERROR) from None
        except BaseException:
            if process.returncode is None:
                process.kill()
                await process.wait()
            raise
        log.info("worker listening", extra={"worker": worker.index, "pid": process.pid})
        return mcp_url

    async def _watch(self, worker: _Worker) -> None:
        """Wait for ``worker`` to exit, and start it again unless we are stopping."""
        while not self._stopping.is_set():
            process = worker.process
            if process is not None:
                assert process.stdout is not None
                await process.stdout.read()  # nothing more is printed: this is EOF
                code = await process.wait()
                if self._stopping.is_set():
                    return
                ran = time.monotonic() - worker.started
                if ran >= STEADY_S:
                    worker.delay_s = RESTART_DELAY_S[0]
                log.warning(
                    "worker exited; starting it again",
                    extra={
                        "worker": worker.index,
                        "pid": process.pid,
                        "status": code,
                        "ranS": round(ran, 1),
                        "delayS": worker.delay_s,
                    },
                )
                worker.process = None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(worker.delay_s):
                    await self._stopping.wait()
            if self._stopping.is_set():
                return
            worker.delay_s = min(RESTART_DELAY_S[1], worker.delay_s * 2)
            try:
                await self._start(worker)
            except WorkerFailed as exc:
                log.error("%s; trying again", exc, extra={"worker": worker.index})
                worker.process = None
                continue
            worker.restarts += 1
            log.info(
                "worker restarted",
                extra={
                    "worker": worker.index,
                    "pid": self._pid(worker),
                    "restarts": worker.restarts,
                },
            )

    async def _drain(self) -> int:
        """SIGTERM every worker, wait for them (bounded), SIGKILL the late ones; 0 when
        every worker exited 0."""
        for worker in self._workers:
            if worker.watcher is not None:
                worker.watcher.cancel()
        await asyncio.gather(
            *(w.watcher for w in self._workers if w.watcher is not None), return_exceptions=True
        )
        processes = [w.process for w in self._workers if w.process is not None]
        for process in processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
        codes = await asyncio.gather(*(self._reap(p) for p in processes))
        failed = [code for code in codes if code != 0]
        if failed:
            log.error("workers stopped with errors", extra={"statuses": codes})
            return EXIT_ERROR
        log.info("workers stopped")
        return 0

    async def _reap(self, process: asyncio.subprocess.Process) -> int:
        try:
            async with asyncio.timeout(self._shutdown_timeout_s + KILL_GRACE_S):
                if process.stdout is not None:
                    await process.stdout.read()
                return await process.wait()
        except TimeoutError:
            log.error("worker did not stop in time: killed", extra={"pid": process.pid})
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            return await process.wait() or EXIT_ERROR


def worker_command(
    base: Sequence[str],
) -> WorkerCommand:
    """The command line of each worker: ``base`` (``yamabiko serve`` and the flags the
    supervisor was given) with the port, its index and its MCP HTTP face settled."""

    def command(index: int, port: int, mcp_port: int | None) -> list[str]:
        argv = [*base, "--workers", "1", "--worker-index", str(index), "--port", str(port)]
        if mcp_port is None:
            return [*argv, "--no-mcp-http"]
        return [*argv, "--mcp-port", str(mcp_port)]

    return command
