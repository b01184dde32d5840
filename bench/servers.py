"""Starting the servers under test, each in its own process, and how to talk to them.

A :class:`ServerProcess` runs ``python -m bench.serve KIND`` (see :mod:`bench.serve`),
waits (bounded) for its ``ready PORT`` line and hands back a :class:`Target`: where to
connect and what to say. It is a context manager; leaving it always ends the process
(``quit``, then SIGTERM, then SIGKILL).

Kinds: ``yamabiko`` (the server under test), ``echo`` (a bare websockets echo server),
``broadcast`` (a bare websockets fan-out server, the baseline of :mod:`bench.fanout`)
and ``openai`` (a fake OpenAI provider, :class:`tests.fakes.FakeOpenAI`, that a Yamabiko
server reaches through ``OPENAI_BASE_URL``; its :attr:`Target.url` is the SDK's
``base_url``).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import proc, wsclient

ROOT = Path(__file__).resolve().parent.parent

YAMABIKO = "yamabiko"
ECHO = "echo"
BROADCAST = "broadcast"
FAKE_OPENAI = "openai"
PICOWS_ECHO = "picows"
KINDS = (YAMABIKO, ECHO, BROADCAST, FAKE_OPENAI, PICOWS_ECHO)

REQUEST_BYTES = 150
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

# The bench server's settings: limits that would otherwise refuse the load (one user
# opens thousands of sockets and sends as fast as the server answers). Any YAMABIKO_*
# variable of the caller's environment is dropped so that the run is reproducible.
YAMABIKO_ENV = {
    "YAMABIKO_MAX_CONNECTIONS_PER_USER": "100000",
    "YAMABIKO_HANDSHAKES_PER_SECOND": "0",
    "YAMABIKO_REQUESTS_PER_SECOND": "1e9",
    "YAMABIKO_REQUEST_BURST": "1000000000",
    "YAMABIKO_TENANT_REQUESTS_PER_SECOND": "1e9",
    "YAMABIKO_TENANT_REQUEST_BURST": "1000000000",
    "YAMABIKO_LOG_LEVEL": "INFO",
}


def request_payload(
    request_id: int, method: str = "ping", params: dict[str, Any] | None = None
) -> bytes:
    """A ``ping`` request (or ``method`` with ``params``) of at least
    :data:`REQUEST_BYTES` bytes, as a traced client sends it: a W3C ``traceparent`` and a
    progress token (padding) in ``_meta``.

    Ids of the same number of digits give payloads of the same size.
    """
    head = {"jsonrpc": "2.0", "id": request_id, "method": method}
    meta: dict[str, Any] = {"traceparent": TRACEPARENT, "progressToken": ""}
    message = {**head, "params": {**(params or {}), "_meta": meta}}
    size = len(_dumps(message))
    meta["progressToken"] = "p" * max(0, REQUEST_BYTES - size)
    return _dumps(message)


def hello_frames(capabilities: dict[str, Any] | None = None) -> bytes:
    """What every connection sends after the upgrade: ``initialize`` (declaring
    ``capabilities``, none by default) and ``initialized``."""
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "yamabiko/1",
            "capabilities": capabilities or {},
            "clientInfo": {"name": "yamabiko-bench", "version": "1"},
        },
    }
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    return wsclient.frame(_dumps(initialize)) + wsclient.frame(_dumps(initialized))


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Target:
    """A running server as the load generators see it."""

    kind: str
    host: str
    port: int
    pid: int
    path: str = "/ws"
    headers: dict[str, str] = field(default_factory=dict)
    hello_replies: int = 1
    """Replies the hello gets: the initialize result (Yamabiko), both messages (echo)."""

    @property
    def url(self) -> str:
        """``http://host:port/path``: for the fake provider, the SDK's ``base_url``."""
        return f"http://{self.host}:{self.port}{self.path}"

    def is_good_reply(self, request_id: int, request: bytes, reply: bytes) -> bool:
        if self.kind in (ECHO, PICOWS_ECHO):
            return reply == request
        try:
            answer = json.loads(reply)
        except ValueError:
            return False
        return bool(answer == {"jsonrpc": "2.0", "id": request_id, "result": {}})

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "host": self.host,
            "port": self.port,
            "pid": self.pid,
            "path": self.path,
            "headers": self.headers,
            "hello_replies": self.hello_replies,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Target:
        return cls(**data)


class ServerError(RuntimeError):
    """A server process did not start or answer in time; the message has its log tail."""


class ServerProcess:
    """One server under test in its own process.

    ``env`` is added to the process's environment (a Yamabiko server reads its provider
    variables, ``OPENAI_BASE_URL``..., from there); ``name`` (default: the kind) names its
    log and data dir, so that two servers of one kind keep apart.
    """

    def __init__(
        self,
        kind: str,
        workdir: Path,
        *,
        env: dict[str, str] | None = None,
        name: str | None = None,
        start_timeout_s: float = 30.0,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown server kind {kind!r}")
        self.kind = kind
        self.name = name or kind
        self.env = dict(env or {})
        self.workdir = workdir
        self.start_timeout_s = start_timeout_s
        self.log_path = workdir / f"{self.name}-{os.getpid()}-{time.monotonic_ns()}.log"
        self.data_dir = workdir / f"{self.name}-data"
        self._proc: subprocess.Popen[bytes] | None = None
        self._pending = b""
        self.target: Target | None = None

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Target:
        env = {k: v for k, v in os.environ.items() if not _dropped_variable(k)}
        if self.kind == YAMABIKO:
            env.update(YAMABIKO_ENV)
            env["YAMABIKO_DATA_DIR"] = str(self.data_dir)
        env.update(self.env)
        env["BENCH_SERVER_NAME"] = self.name
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "bench.serve", self.kind],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        try:
            line = self._readline(self.start_timeout_s)
            if not line.startswith("ready "):
                raise ServerError(f"{self.name} printed {line!r} instead of 'ready PORT'")
            port = int(line.split()[1])
            self.target = self._target(port)
        except BaseException:
            self.stop()
            raise
        return self.target

    def _target(self, port: int) -> Target:
        assert self._proc is not None
        if self.kind in (ECHO, BROADCAST, PICOWS_ECHO):
            return Target(self.kind, "127.0.0.1", port, self._proc.pid, hello_replies=2)
        if self.kind == FAKE_OPENAI:
            return Target(FAKE_OPENAI, "127.0.0.1", port, self._proc.pid, path="/v1")
        from yamabiko.server.auth import mint_token
        from yamabiko.server.datadir import read_data_dir

        secret = read_data_dir(self.data_dir).jwt_secret
        token = mint_token(secret, sub="bench", tenant="bench", ttl_s=3600)
        return Target(
            YAMABIKO,
            "127.0.0.1",
            port,
            self._proc.pid,
            headers={"Authorization": f"Bearer {token}"},
            hello_replies=1,
        )

    def stats(self, timeout_s: float = 30.0) -> dict[str, float]:
        """RSS (KiB) and CPU seconds of the server, measured by itself after a full GC."""
        self._command("stats")
        return dict(json.loads(self._readline(timeout_s)))

    def command(self, name: str, argument: Any = None, timeout_s: float = 30.0) -> Any:
        """Send a control command (``name`` and a JSON argument, see :mod:`bench.serve`)
        and return its JSON answer; an ``{"error": ...}`` answer raises ServerError."""
        line = name if argument is None else f"{name} {json.dumps(argument)}"
        self._command(line)
        answer = json.loads(self._readline(timeout_s))
        if isinstance(answer, dict) and "error" in answer:
            raise ServerError(f"{self.name} refused {name!r}: {answer['error']}")
        return answer

    def cpu_seconds(self) -> float:
        """User + system CPU seconds so far, read from /proc without disturbing the server."""
        assert self._proc is not None
        return proc.cpu_seconds(self._proc.pid)

    def stop(self) -> None:
        process = self._proc
        if process is None:
            return
        self._proc = None
        try:
            if process.poll() is None:
                try:
                    assert process.stdin is not None
                    process.stdin.write(b"quit\n")
                    process.stdin.flush()
                except OSError:
                    pass
                try:
                    process.wait(5.0)
                except subprocess.TimeoutExpired:
                    process.send_signal(signal.SIGTERM)
                    try:
                        process.wait(3.0)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait(3.0)
        finally:
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    pipe.close()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # Internals

    def _command(self, command: str) -> None:
        process = self._proc
        if process is None or process.poll() is not None:
            raise ServerError(f"{self.name} server is not running\n{self.log_tail()}")
        assert process.stdin is not None
        process.stdin.write(command.encode() + b"\n")
        process.stdin.flush()

    def _readline(self, timeout_s: float) -> str:
        process = self._proc
        assert process is not None
        assert process.stdout is not None
        fd = process.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServerError(
                    f"{self.name} server said nothing within {timeout_s:.0f} s\n{self.log_tail()}"
                )
            readable, _, _ = select.select([fd], [], [], left)
            if readable:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise ServerError(
                        f"{self.name} server exited (code {process.wait()})\n{self.log_tail()}"
                    )
                self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode().strip()


def _dropped_variable(name: str) -> bool:
    """Variables of the caller's environment a bench server never sees: Yamabiko's
    settings and the provider keys and URLs (a run must not depend on them)."""
    return name.startswith(("YAMABIKO_", "BENCH_")) or name.endswith(("_API_KEY", "_BASE_URL"))
