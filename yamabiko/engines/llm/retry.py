"""Retries and fallbacks, for every engine: both act only before the first event.

:func:`with_retries` wraps an engine so that a retryable :class:`EngineError` raised
before the stream's first event is retried after a bounded exponential backoff (by
default 3 tries, waiting 0.2 s then 0.4 s; a provider's ``retry-after`` is honoured up to
``max_delay``, and beyond it the error is raised at once). Once an event has been
yielded nothing is retried: text has gone out, and a second attempt would repeat it.

:class:`FallbackStream` tries a list of models in order: the next is tried when one
fails before its first event (after its own retries), for any :class:`EngineError` (a
missing key or a refused request may well succeed at another provider). It tells which
model answered (:attr:`FallbackStream.model`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Self

from yamabiko.engines.llm.base import LLMEngine, LLMEvent, LLMRequest
from yamabiko.engines.llm.errors import AllModelsFailed, EngineError, ProviderError


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` in all (1: no retry); the n-th retry waits
    ``min(base_delay * multiplier ** (n - 1), max_delay)``."""

    attempts: int = 3
    base_delay: float = 0.2
    multiplier: float = 2.0
    max_delay: float = 2.0

    def delay(self, retry: int, error: EngineError) -> float | None:
        """Seconds to wait before retry number ``retry`` (1-based) after ``error``, or
        None if it should not be retried."""
        if not error.retryable or retry >= self.attempts:
            return None
        delay = min(self.base_delay * self.multiplier ** (retry - 1), self.max_delay)
        retry_after = error.retry_after if isinstance(error, ProviderError) else None
        if retry_after is not None:
            if retry_after > self.max_delay:
                return None
            delay = max(delay, retry_after)
        return delay


NO_RETRY = RetryPolicy(attempts=1)


class RetryingEngine:
    """An engine whose streams are retried before their first event. See the module."""

    def __init__(
        self,
        engine: LLMEngine,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.engine = engine
        self.name = engine.name
        self.policy = policy
        self._sleep = sleep

    async def stream(self, request: LLMRequest) -> AsyncGenerator[LLMEvent, None]:
        retry = 0
        while True:
            events = self.engine.stream(request)
            async with aclosing(events):
                try:
                    first = await anext(events)
                except StopAsyncIteration:
                    return
                except EngineError as error:
                    retry += 1
                    delay = self.policy.delay(retry, error)
                    if delay is None:
                        raise
                else:
                    yield first
                    async for event in events:
                        yield event
                    return
            await self._sleep(delay)

    async def aclose(self) -> None:
        await self.engine.aclose()


def with_retries(
    engine: LLMEngine,
    policy: RetryPolicy | None = None,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> RetryingEngine:
    """``engine`` with its streams retried before their first event (see the module)."""
    return RetryingEngine(engine, policy or RetryPolicy(), sleep=sleep)


class FallbackStream:
    """The stream of the first model in ``models`` that gets to its first event.

    ``open(name)`` starts the named model's stream (and may raise :class:`EngineError`,
    for an unknown model, say). Iterate it like an engine's stream and close it with
    ``aclose()``; :attr:`model` is the name of the model streaming (set before its first
    event is returned), :attr:`errors` the failures of the models tried before it. When
    every model fails, :class:`AllModelsFailed` is raised, listing them.
    """

    def __init__(
        self,
        models: Sequence[str],
        open: Callable[[str], AsyncGenerator[LLMEvent, None]],
    ) -> None:
        if not models:
            raise ValueError("a fallback list needs at least one model")
        self.models = list(models)
        self.model: str | None = None
        self.errors: list[tuple[str, EngineError]] = []
        self._open = open
        self._events = self._run()

    async def _run(self) -> AsyncGenerator[LLMEvent, None]:
        for name in self.models:
            try:
                events = self._open(name)
            except EngineError as error:
                self.errors.append((name, error))
                continue
            async with aclosing(events):
                try:
                    first = await anext(events)
                except StopAsyncIteration:
                    self.model = name
                    return
                except EngineError as error:
                    self.errors.append((name, error))
                    continue
                self.model = name
                yield first
                async for event in events:
                    yield event
                return
        if len(self.errors) == 1:
            raise self.errors[0][1]
        raise AllModelsFailed(self.errors)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> LLMEvent:
        return await anext(self._events)

    async def aclose(self) -> None:
        await self._events.aclose()
