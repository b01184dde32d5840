"""Generations: one LLM reply, from an engine's event stream into a broker stream.

Theory of operation. ``chat/send`` (:mod:`yamabiko.handlers.chat`) checks what can
be refused, then asks the provider at once (:meth:`Generations.ask`: a :class:`Reader`
starts the engine's stream and queues its events) and, while the request travels,
stores the turn and creates the stream. Only then does it prepare a :class:`Job` (the
stored messages, the conversation lock it took, the reader) for
:meth:`Generations.start`, which runs it as a task of the node, not of the session: a
generation goes on when its sender disconnects, so that a client that reconnects, to
this node or another, can resume it with ``stream/subscribe``. If the turn cannot be
stored, the reader is closed (:meth:`Reader.aclose`: the provider's HTTP stream closes)
and nothing it read is published, stored or billed.

- The engine's events are read by the *reader* task into a queue, and the producer
  loop publishes them from the first: nothing is lost while the turn is stored, and
  nothing is published before. ``stream/cancel`` cancels the reader only: the engine
  closes its HTTP stream at once (the :class:`~yamabiko.engines.llm.base.LLMEngine`
  contract), and the producer, never interrupted in the middle of a publish, ends the
  stream with ``cancelled``. So the seq the producer counts is always the broker's.
- Each delta is one stream item whose payload is the ``stream/delta`` notification
  itself, encoded once here and sent as it is to every subscriber.
- At the end the assistant message (text, status, model, usage, cost) is stored and the
  usage recorded with the budget *before* ``stream/end`` is published: a client that
  sees the end finds the message stored. This holds for cancelled and failed
  generations too (the partial text is kept).
- The conversation's lock is kept alive while the job runs and released at its end.

A ``stream/cancel`` that reaches a node which does not run the generation is passed to
every node as a signal (:mod:`yamabiko.store.signals`); the node running it acts on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from yamabiko.engines.llm import (
    EngineError,
    Finish,
    LLMEvent,
    LLMRequest,
    TextDelta,
    Usage,
    estimate_usage,
)
from yamabiko.engines.llm.base import EventStream
from yamabiko.engines.llm.cost import cost_usd
from yamabiko.protocol import errors
from yamabiko.protocol.messages import encode_notification
from yamabiko.schema import stream as schema
from yamabiko.schema.objects import MessageId, MessageStatus, TenantId
from yamabiko.services.items import KIND_DELTA, KIND_END, KIND_ERROR, end_notification
from yamabiko.services.jobs import StreamJobs
from yamabiko.sessions.stats import Stats
from yamabiko.store import Store
from yamabiko.store.broker import Broker
from yamabiko.store.budget import Budget
from yamabiko.store.locks import Locks, LockToken, keep_alive
from yamabiko.store.signals import Signals

log = logging.getLogger("yamabiko.generation")

_EACH: Final = 4
_BATCH: Final = 16
"""The reader lets the producer run after each of the first ``_EACH`` events (the
first tokens go out at once), then every ``_BATCH`` (a burst goes out in batches)."""
LOCK_TTL_S: Final = 30.0
"""A conversation lock's lease; the running job refreshes it every third of this."""
_STATUS: Final[dict[schema.FinishReason, MessageStatus]] = {
    "stop": "complete",
    "length": "complete",
    "cancelled": "cancelled",
    "error": "error",
}


@dataclass(frozen=True)
class Price:
    """USD per million tokens, from the catalogue (0 for a model it does not list)."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0


@dataclass
class Job:
    """One generation, ready to run: the turn is stored, the conversation locked and
    the stream created."""

    stream_id: str
    tenant_id: str
    user_id: str
    conversation_id: str
    message_id: str
    """The assistant message, stored as ``streaming``: finished when the job ends."""
    lock: LockToken
    request: LLMRequest
    """The request as sent to the first model (for usage estimates)."""
    reader: Reader
    """The engine's events, read since :meth:`Generations.ask`."""
    model: Callable[[], str | None]
    """The model answering, once known (a fallback's, maybe)."""
    prices: dict[str, Price]
    first_model: str
    cancel_requested: bool = False

    @property
    def started_at(self) -> float:
        return self.reader.started_at

    def cancel(self) -> None:
        """Stop the engine (its HTTP stream closes); the job then ends as cancelled."""
        self.cancel_requested = True
        self.reader.task.cancel()


class _ReaderDone:
    """Queued when the reader task ends, however it ended."""


_READER_DONE: Final = _ReaderDone()
QueueItem = LLMEvent | EngineError | _ReaderDone


class Reader:
    """An engine's stream, read into :attr:`queue` by a task of its own from the moment
    it is made (the provider is asked at once), and ended by :data:`_READER_DONE`
    however the task ends. Cancelling the task closes the provider's HTTP stream."""

    __slots__ = ("queue", "started_at", "task")

    def __init__(self, events: EventStream) -> None:
        self.started_at = time.monotonic()
        self.queue: asyncio.Queue[QueueItem] = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(_read(events, self.queue))
        self.task.add_done_callback(self._done)

    def _done(self, _: asyncio.Task[None]) -> None:
        self.queue.put_nowait(_READER_DONE)

    async def aclose(self) -> None:
        """Stop reading and close the provider's stream (the turn was not stored); the
        events read are dropped, never published."""
        self.task.cancel()
        await asyncio.wait({self.task})


async def _read(events: EventStream, queue: asyncio.Queue[QueueItem]) -> None:
    try:
        count = 0
        async for event in events:
            queue.put_nowait(event)
            # An SDK parses a burst it has buffered without ever waiting. Let the
            # producer publish the first tokens at once, and then every few, so a
            # burst goes out in batches (one wake-up of each subscriber a batch)
            # without waiting for its end.
            if count < _EACH or count % _BATCH == 0:
                await asyncio.sleep(0)
            count += 1
    except EngineError as error:
        queue.put_nowait(error)
    finally:
        # Closes the provider's HTTP stream, also when this task is cancelled.
        await events.aclose()


class Generations(StreamJobs[Job]):
    """The generations running on this node, by stream id."""

    def __init__(
        self,
        *,
        store: Store,
        budget: Budget,
        broker: Broker,
        locks: Locks,
        signals: Signals,
        stats: Stats | None = None,
        lock_ttl_s: float = LOCK_TTL_S,
        on_message: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(broker=broker, signals=signals, kind="generation")
        self._store = store
        self._budget = budget
        self._locks = locks
        self._stats = stats or Stats()
        self.lock_ttl_s = lock_ttl_s
        self._on_message = on_message

    # The job

    @staticmethod
    def ask(events: EventStream) -> Reader:
        """Ask the provider now: its events queue up for the job that will publish
        them (:meth:`start`), or are dropped by :meth:`Reader.aclose`."""
        return Reader(events)

    async def work(self, job: Job) -> None:
        refresher = asyncio.get_running_loop().create_task(self._hold_lock(job))
        self._stats.generations_running += 1
        try:
            await self._produce(job)
        except Exception:
            self._stats.generation_ended("failed")
            log.exception("generation failed", extra={"stream": job.stream_id})
        finally:
            self._stats.generations_running -= 1
            refresher.cancel()
            with contextlib.suppress(Exception):
                await self._locks.release(job.lock)

    async def _hold_lock(self, job: Job) -> None:
        try:
            await keep_alive(self._locks, job.lock, ttl_s=self.lock_ttl_s)
        except Exception:
            log.warning(
                "could not refresh a conversation lock; it lapses in %s s",
                self.lock_ttl_s,
                extra={"stream": job.stream_id},
                exc_info=True,
            )
            return
        log.warning(
            "a conversation lock lapsed during its generation", extra={"stream": job.stream_id}
        )

    async def _produce(self, job: Job) -> None:
        queue = job.reader.queue
        reader = job.reader.task
        broker = self._broker
        stream_id = job.stream_id
        message_id = job.message_id
        parts: list[str] = []
        try:
            finish, failure = await self._publish_deltas(job, queue, parts)
        except BaseException:
            # The broker failed (or this task was cancelled hard): stop the engine and
            # keep what was said; the subscribers learn of it from their own broker.
            reader.cancel()
            await asyncio.wait({reader})
            text = "".join(parts)
            model = job.model() or job.first_model
            usage = estimate_usage(job.request, text)
            await self._store_result(job, message_id, text, "error", model, usage)
            raise
        seq = len(parts)
        text = "".join(parts)
        model = job.model() or job.first_model
        reason: schema.FinishReason
        if finish is not None and not (job.cancel_requested and finish.reason == "error"):
            reason = finish.reason
            usage = finish.usage
            if finish.error is not None:
                failure = finish.error
        elif job.cancel_requested:
            reason = "cancelled"
            usage = estimate_usage(job.request, text)
        else:
            reason = "error"
            usage = estimate_usage(job.request, text) if parts else Usage(0, 0, estimated=True)
            if failure is None:
                failure = EngineError("the engine stopped without finishing its reply")
        if reason == "error" and failure is not None:
            seq += 1
            await broker.publish(
                stream_id,
                KIND_ERROR,
                encode_notification(
                    schema.STREAM_ERROR,
                    schema.ErrorParams(
                        stream_id=stream_id,
                        seq=seq,
                        code=errors.ENGINE_UNAVAILABLE,
                        message=failure.message,
                    ),
                ),
            )
        cost = await self._store_result(job, message_id, text, reason, model, usage)
        if self._on_message is not None:
            await self._on_message(job.conversation_id)
        await broker.end(
            stream_id,
            KIND_END,
            end_notification(
                stream_id,
                seq + 1,
                reason,
                message_id,
                usage,
                cost,
                model if (parts or finish is not None) else None,
            ),
        )
        self._stats.generation_ended(reason)
        log.debug(
            "generation ended",
            extra={"stream": stream_id, "reason": reason, "items": seq + 1, "model": model},
        )

    async def _publish_deltas(
        self, job: Job, queue: asyncio.Queue[QueueItem], parts: list[str]
    ) -> tuple[Finish | None, EngineError | None]:
        """Publish each delta the reader queues, appending its text to ``parts``, until
        the reader is done; return the engine's last event (if it gave one) and its
        error before the first token (if it failed then)."""
        broker = self._broker
        stream_id = job.stream_id
        finish: Finish | None = None
        failure: EngineError | None = None
        while True:
            item = await queue.get()
            if type(item) is TextDelta:
                seq = len(parts) + 1
                payload = encode_notification(
                    schema.STREAM_DELTA,
                    schema.DeltaParams(stream_id=stream_id, seq=seq, text=item.text),
                )
                if await broker.publish(stream_id, KIND_DELTA, payload) != seq:
                    raise RuntimeError(f"stream {stream_id} has another producer")
                parts.append(item.text)
                if seq == 1:
                    ttft = time.monotonic() - job.started_at
                    self._stats.first_token_after((job.model() or "?").partition("/")[0], ttft)
                    log.debug(
                        "first token",
                        extra={"stream": stream_id, "ttftMs": round(ttft * 1000, 3)},
                    )
            elif isinstance(item, Finish):
                finish = item
            elif isinstance(item, EngineError):
                failure = item
            elif item is _READER_DONE:
                return finish, failure

    async def _store_result(
        self,
        job: Job,
        message_id: str,
        text: str,
        reason: schema.FinishReason,
        model: str,
        usage: Usage,
    ) -> float:
        """Store the message and the usage; return the cost. A store failure is logged
        (the stream still ends: its subscribers must not wait for ever)."""
        price = job.prices.get(model, Price())
        cost = cost_usd(
            usage.input_tokens, usage.output_tokens, price.input_per_mtok, price.output_per_mtok
        )
        try:
            await self._store.messages.update(
                TenantId(job.tenant_id),
                MessageId(message_id),
                content=text,
                status=_STATUS[reason],
                model=model,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cost_usd=cost,
            )
            if usage.input_tokens or usage.output_tokens:
                await self._budget.record(
                    job.tenant_id,
                    job.user_id,
                    model,
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    cost_usd=cost,
                )
        except Exception:
            log.exception("could not store a generation's result", extra={"stream": job.stream_id})
        return cost
