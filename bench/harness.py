"""What every scenario gets: the options of the run, the servers, a place for notes.

A scenario is a function ``run(harness) -> list[Figure]``. It asks the harness for a
server with :meth:`Harness.server` (started once, shared by the scenarios, ended when the
run ends) or :meth:`Harness.fresh_server` (its own process, ended when the ``with`` block
ends), measures, and returns figures; remarks worth printing under the table (CPU use,
counts) go to :meth:`Harness.note`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from bench.servers import FAKE_OPENAI, YAMABIKO, ServerProcess

SOAK_LONG_S = 900.0
"""The long soak (``python -m bench --soak``): 15 minutes."""
FAKE_OPENAI_KEY = "sk-bench"
"""The key the bench's Yamabiko sends to the fake OpenAI server (which checks none)."""


@dataclass(frozen=True)
class Options:
    """Sizes and durations of one run; :meth:`quick` is the short variant."""

    rounds: int = 3
    """Pipelined runs alternate between the servers this many times."""
    sequential_rounds: int = 5
    """Sequential runs alternate this many times (they are short, and the noisiest)."""
    sequential_count: int = 20_000
    """Timed round trips per server, split evenly over its rounds."""
    sequential_warmup: int = 1_000
    """Untimed round trips at the start of each round."""
    sequential_max_s: float = 10.0
    """A round stops early after this long (a very slow server)."""
    connections: int = 50
    window: int = 32
    workers: int = 1
    warmup_s: float = 1.0
    duration_s: float = 5.0
    """Measured seconds of each pipelined round, after ``warmup_s``."""
    idle_connections: int = 2_000
    settle_s: float = 1.0
    ttft_samples: int = 400
    """Timed generations per path (Yamabiko, direct SDK), split evenly over the rounds."""
    ttft_rounds: int = 8
    ttft_warmup: int = 20
    """Untimed generations per path before the first round."""
    fanout_subscribers: tuple[int, ...] = (100, 1_000)
    fanout_deliveries: int = 400_000
    """Deltas per stream summed over subscribers: tokens = this / subscribers (at most
    ``fanout_max_tokens``), so that every stream takes about as long."""
    fanout_max_tokens: int = 2_000
    fanout_rounds: int = 3
    ghost_documents: int = 50
    """Documents typed at once in the ghost scenario, one connection each."""
    ghost_typing_s: float = 20.0
    """How long each document is typed, at ``ghost_keystrokes_per_s``."""
    ghost_keystrokes_per_s: float = 10.0
    audio_render_rounds: int = 3
    """Timed renders of the singer's melody per sample rate (the best one counts)."""
    audio_latency_requests: int = 100
    """Timed ``audio/synthesize`` requests for the first-frame latency, one at a time."""
    audio_streams: int = 20
    """Realtime-paced streams at once, one connection each."""
    audio_stream_s: float = 10.0
    """How long each realtime stream's melody lasts."""
    soak_users: int = 200
    """Users of the soak (:mod:`bench.soak`), one connection each."""
    soak_s: float = 120.0
    """How long the soak runs; ``--soak``: :data:`SOAK_LONG_S`."""
    profile_dir: str | None = None
    """When set, every server process runs under cProfile and writes NAME-PID.prof here."""

    def quick(self) -> Options:
        return replace(
            self,
            rounds=1,
            sequential_rounds=2,
            sequential_count=5_000,
            sequential_warmup=500,
            warmup_s=0.5,
            duration_s=2.0,
            idle_connections=1_000,
            settle_s=0.5,
            ttft_samples=100,
            ttft_rounds=2,
            ttft_warmup=10,
            fanout_deliveries=100_000,
            fanout_rounds=1,
            ghost_documents=10,
            ghost_typing_s=4.0,
            audio_render_rounds=1,
            audio_latency_requests=30,
            audio_stream_s=3.0,
            soak_users=50,
            soak_s=30.0,
        )


class Harness:
    """The servers and options of one bench run."""

    def __init__(self, options: Options, workdir: Path) -> None:
        self.options = options
        self.workdir = workdir
        self.notes: list[str] = []
        self._servers: dict[str, ServerProcess] = {}
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def server(
        self, kind: str, *, name: str | None = None, env: dict[str, str] | None = None
    ) -> ServerProcess:
        """The shared server called ``name`` (default: ``kind``), started on first use
        with ``env`` added to its environment."""
        key = name or kind
        server = self._servers.get(key)
        if server is None:
            server = self._stack.enter_context(self._process(kind, name, env))
            self._servers[key] = server
        elif server.kind != kind or server.env != self._env(env):
            raise ValueError(f"server {key!r} was started as another kind or environment")
        return server

    def yamabiko_with_openai(self) -> tuple[ServerProcess, ServerProcess]:
        """(Yamabiko, the fake OpenAI server it reaches), both shared: model
        ``openai/<anything>`` goes through the official SDK to the fake, which runs in a
        process of its own. Set what the fake streams with its ``script`` command."""
        fake = self.server(FAKE_OPENAI)
        assert fake.target is not None
        env = {"OPENAI_BASE_URL": fake.target.url, "OPENAI_API_KEY": FAKE_OPENAI_KEY}
        return self.server(YAMABIKO, name="yamabiko-openai", env=env), fake

    @contextlib.contextmanager
    def fresh_server(
        self, kind: str, *, name: str | None = None, env: dict[str, str] | None = None
    ) -> Iterator[ServerProcess]:
        """A new server of ``kind`` for this block only (for figures that need a clean
        process, such as memory)."""
        with self._process(kind, name, env) as server:
            yield server

    def _process(self, kind: str, name: str | None, env: dict[str, str] | None) -> ServerProcess:
        return ServerProcess(kind, self.workdir, name=name, env=self._env(env))

    def _env(self, env: dict[str, str] | None) -> dict[str, str]:
        extra = dict(env or {})
        if self.options.profile_dir is not None:
            extra["BENCH_PROFILE_DIR"] = str(Path(self.options.profile_dir).absolute())
        return extra

    def note(self, text: str) -> None:
        self.notes.append(text)

    def progress(self, text: str) -> None:
        print(f"  {text}", file=sys.stderr, flush=True)
