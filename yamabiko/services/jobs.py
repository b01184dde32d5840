"""Jobs that produce a stream on this node (generations, syntheses), by stream id.

A job runs as a task of the node, not of the session that asked for it, so that a
client that disconnects can resume its stream elsewhere. :meth:`StreamJobs.cancel`
stops one wherever it runs: here directly, else through a signal every node hears
(:mod:`yamabiko.store.signals`), acted on by the node that runs it. At shutdown,
running jobs get a grace period, then are cancelled (they end their streams).
"""

from __future__ import annotations

import asyncio
from typing import Generic, Protocol, TypeVar

from yamabiko.store.broker import Broker
from yamabiko.store.signals import Signals


class StreamJob(Protocol):
    @property
    def stream_id(self) -> str: ...

    def cancel(self) -> None:
        """Stop soon; the job still ends its stream (as cancelled)."""
        ...


J = TypeVar("J", bound=StreamJob)


class StreamJobs(Generic[J]):
    """Subclasses implement :meth:`work`, the job itself."""

    def __init__(self, *, broker: Broker, signals: Signals, kind: str) -> None:
        self._broker = broker
        self._signals = signals
        self._kind = kind
        self._prefix = f"cancel-{kind}:"
        self._jobs: dict[str, J] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        signals.listen(self._on_signal)

    def running(self, stream_id: str) -> bool:
        return stream_id in self._jobs

    @property
    def count(self) -> int:
        return len(self._jobs)

    def start(self, job: J) -> None:
        """Run ``job`` on this node."""
        self._jobs[job.stream_id] = job
        task = asyncio.get_running_loop().create_task(
            self._run(job), name=f"{self._kind}-{job.stream_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel(self, stream_id: str) -> bool:
        """Stop the job of a live stream, wherever it runs; False if the stream is not
        live (ended, or unknown)."""
        job = self._jobs.get(stream_id)
        if job is not None:
            job.cancel()
            return True
        info = await self._broker.info(stream_id)
        if info is None or info.status != "live":
            return False
        await self._signals.send(self._prefix + stream_id)
        return True

    def _on_signal(self, message: str) -> None:
        if message.startswith(self._prefix):
            job = self._jobs.get(message[len(self._prefix) :])
            if job is not None:
                job.cancel()

    async def aclose(self, grace_s: float = 10.0) -> None:
        """Let running jobs finish for ``grace_s``, then cancel the rest (they end their
        streams), and as a last resort their tasks."""
        tasks = set(self._tasks)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        if not pending:
            return
        for job in list(self._jobs.values()):
            job.cancel()
        _, stuck = await asyncio.wait(pending, timeout=5.0)
        for task in stuck:
            task.cancel()
        if stuck:
            await asyncio.wait(stuck)

    async def _run(self, job: J) -> None:
        try:
            await self.work(job)
        finally:
            self._jobs.pop(job.stream_id, None)

    async def work(self, job: J) -> None:
        raise NotImplementedError
