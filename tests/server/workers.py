"""``yamabiko serve --workers N`` as a test drives it: the supervisor process, its log
lines as they come (read by a thread, waited for with a bound), and which worker
process holds the server side of a client's socket (Linux ``/proc``)."""

from __future__ import annotations

import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yamabiko.server.auth import mint_token

LogLine = dict[str, Any]


@dataclass
class Supervised:
    """A running ``yamabiko serve --workers N``."""

    proc: subprocess.Popen[str]
    url: str
    secret: str
    log_path: Path
    lines: queue.Queue[LogLine] = field(default_factory=queue.Queue)
    seen: list[LogLine] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/")[0])

    def token(self, sub: str, tenant: str) -> str:
        return mint_token(self.secret, sub=sub, tenant=tenant)

    def wait_log(self, match: Callable[[LogLine], bool], timeout: float = 30.0) -> LogLine:
        """The first log line (already seen or to come within ``timeout``) that matches."""
        for line in self.seen:
            if match(line):
                return line
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no such log line within {timeout} s")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(line)
            if match(line):
                return line

    def worker_pids(self) -> dict[int, int]:
        """Worker index -> pid, as the supervisor last reported them."""
        self.wait_log(lambda line: line.get("msg") == "workers listening")
        while True:  # take in what has arrived, without waiting
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                break
        pids: dict[int, int] = {}
        for line in self.seen:
            if line.get("msg") in ("worker listening", "worker restarted") and "worker" in line:
                pids[int(line["worker"])] = int(line["pid"])
        return pids


def _pump(stream: Any, out: Path, lines: queue.Queue[LogLine]) -> None:
    with out.open("a") as log:
        for text in stream:
            log.write(text)
            log.flush()
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = {"msg": text.strip()}
            if isinstance(parsed, dict):
                lines.put(parsed)


def clean_env(env: Mapping[str, str]) -> dict[str, str]:
    """The machine's environment without Yamabiko's settings and provider keys, plus ``env``."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("YAMABIKO_") and not k.endswith(("_API_KEY", "_BASE_URL"))
    }
    return {**base, **env}


def serve_command(tmp: Path, workers: str) -> list[str]:
    return [
        sys.executable, "-m", "yamabiko.server.cli", "serve", "--workers", workers,
        "--port", "0", "--mcp-port", "0", "--data-dir", str(tmp / "data"),
    ]  # fmt: skip


@contextmanager
def supervised(tmp: Path, env: Mapping[str, str], workers: str = "2") -> Iterator[Supervised]:
    """``yamabiko serve --workers N`` on free ports with a fresh data dir; SIGTERM (then
    SIGKILL) on exit unless the test ended it. Its log: ``tmp/server.log``."""
    secret = secrets.token_urlsafe(48)
    log_path = tmp / "server.log"
    with subprocess.Popen(
        serve_command(tmp, workers),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env({"YAMABIKO_JWT_SECRET": secret, **env}),
    ) as proc:
        lines: queue.Queue[LogLine] = queue.Queue()
        pump = threading.Thread(target=_pump, args=(proc.stderr, log_path, lines), daemon=True)
        pump.start()
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # bounded by the test's timeout
            assert line.startswith("listening on ws://"), log_path.read_text()
            yield Supervised(proc, line.split()[-1], secret, log_path, lines)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            pump.join(10)


def _hex_port(address: str) -> int:
    return int(address.rsplit(":", 1)[1], 16)


def socket_owner(server_port: int, client_port: int, pids: list[int]) -> int | None:
    """The pid among ``pids`` whose socket is the server side of the TCP connection
    from ``client_port`` to ``server_port`` (``/proc/net/tcp*``, then each pid's fds)."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            next(rows)
            for row in rows:
                cols = row.split()
                if _hex_port(cols[1]) == server_port and _hex_port(cols[2]) == client_port:
                    inode = cols[9]
    if inode is None:
        return None
    wanted = f"socket:[{inode}]"
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except FileNotFoundError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == wanted:
                    return pid
            except OSError:
                continue
    return None
