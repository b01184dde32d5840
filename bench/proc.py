"""Process helpers (Linux): the open-files limit, resident memory and CPU time by pid,
and the line protocol with the bench's worker processes."""

from __future__ import annotations

import contextlib
import os
import resource
import select
import subprocess
import time


def raise_nofile_limit() -> None:
    """Lift the soft open-files limit to the hard one (thousands of sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_kib(pid: int | str = "self") -> int:
    """Resident set size of ``pid``, in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU seconds used by ``pid`` so far (clock-tick resolution)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    # fields[0] is field 3 (state) of proc(5): utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_line(
    proc: subprocess.Popen[bytes], *, timeout_s: float, what: str = "the load generator"
) -> str:
    """One line from a worker's stdout, waiting at most ``timeout_s``."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout_s
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError(f"{what} said nothing within {timeout_s:.0f} s")
        byte = os.read(fd, 1)
        if not byte:
            raise RuntimeError(f"{what} exited (code {proc.wait()})")
        line += byte
    return line.decode().strip()


def end_process(proc: subprocess.Popen[bytes]) -> None:
    """Kill a worker if it still runs, reap it and close its pipes."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(5.0)
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):  # a pipe whose reader died
                pipe.close()
