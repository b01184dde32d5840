"""Retries before the first event only, with bounded backoff; fallbacks in order."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest

from yamabiko.engines.llm import (
    AllModelsFailed,
    ChatMessage,
    EngineError,
    FallbackStream,
    Finish,
    LLMEvent,
    LLMRequest,
    ProviderError,
    RetryPolicy,
    TextDelta,
    UnknownModel,
    Usage,
    collect,
    with_retries,
)

REQUEST = LLMRequest(model="m", messages=[ChatMessage("user", "hi")])
DONE = Finish("stop", Usage(1, 1))


class FlakyEngine:
    """Fails ``failures`` times before its first event, then streams ``tokens``; with
    ``fail_mid`` it fails after the first token instead (as a Finish, per the contract)."""

    name = "flaky"

    def __init__(
        self, failures: int = 0, error: EngineError | None = None, *, fail_mid: bool = False
    ) -> None:
        self.failures = failures
        self.error = error or ProviderError("flaky", "HTTP 500", status=500)
        self.fail_mid = fail_mid
        self.calls = 0

    async def stream(self, request: LLMRequest) -> AsyncGenerator[LLMEvent, None]:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        yield TextDelta("a")
        if self.fail_mid:
            yield Finish("error", Usage(1, 1, estimated=True), self.error)
            return
        yield TextDelta("b")
        yield DONE

    async def aclose(self) -> None:
        return None


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def test_the_default_backoff_is_three_tries_at_0_2_then_0_4_seconds() -> None:
    policy = RetryPolicy()
    error = ProviderError("p", "HTTP 503", status=503)
    assert [policy.delay(n, error) for n in (1, 2, 3)] == [0.2, 0.4, None]


def test_the_backoff_is_capped_and_honours_retry_after() -> None:
    policy = RetryPolicy(attempts=10, base_delay=1.0, max_delay=3.0)
    error = ProviderError("p", "HTTP 503", status=503)
    assert [policy.delay(n, error) for n in (1, 2, 3, 4)] == [1.0, 2.0, 3.0, 3.0]
    assert policy.delay(1, ProviderError("p", "HTTP 429", status=429, retry_after=2.5)) == 2.5
    assert policy.delay(1, ProviderError("p", "HTTP 429", status=429, retry_after=9)) is None
    assert policy.delay(1, ProviderError("p", "HTTP 400", status=400)) is None


async def test_errors_before_the_first_event_are_retried_with_backoff() -> None:
    engine, sleeps = FlakyEngine(failures=2), Sleeps()
    text, finish = await collect(with_retries(engine, sleep=sleeps).stream(REQUEST))
    assert (text, finish) == ("ab", DONE)
    assert engine.calls == 3
    assert sleeps.delays == [0.2, 0.4]


async def test_the_last_error_is_raised_when_tries_run_out() -> None:
    engine, sleeps = FlakyEngine(failures=5), Sleeps()
    with pytest.raises(ProviderError, match="HTTP 500"):
        await collect(with_retries(engine, RetryPolicy(attempts=4), sleep=sleeps).stream(REQUEST))
    assert engine.calls == 4
    assert len(sleeps.delays) == 3


async def test_errors_that_are_not_retryable_are_raised_at_once() -> None:
    engine = FlakyEngine(failures=1, error=UnknownModel("no such model"))
    with pytest.raises(UnknownModel):
        await collect(with_retries(engine, sleep=Sleeps()).stream(REQUEST))
    assert engine.calls == 1


async def test_nothing_is_retried_after_the_first_event() -> None:
    engine = FlakyEngine(fail_mid=True)
    text, finish = await collect(with_retries(engine, sleep=Sleeps()).stream(REQUEST))
    assert text == "a"
    assert finish.reason == "error"
    assert engine.calls == 1


def opener(engines: dict[str, FlakyEngine]):  # type: ignore[no-untyped-def]
    def open(name: str) -> AsyncGenerator[LLMEvent, None]:
        if name not in engines:
            raise UnknownModel(f"unknown {name}")
        return engines[name].stream(REQUEST)

    return open


async def test_a_fallback_stream_uses_the_first_model_that_starts() -> None:
    engines = {"a/1": FlakyEngine(failures=9), "b/2": FlakyEngine()}
    stream = FallbackStream(["a/1", "nope/0", "b/2"], opener(engines))
    text, finish = await collect(stream)
    assert (text, finish) == ("ab", DONE)
    assert stream.model == "b/2"
    assert [name for name, _ in stream.errors] == ["a/1", "nope/0"]


async def test_a_fallback_stream_does_not_fall_back_after_the_first_event() -> None:
    engines = {"a/1": FlakyEngine(fail_mid=True), "b/2": FlakyEngine()}
    stream = FallbackStream(["a/1", "b/2"], opener(engines))
    text, finish = await collect(stream)
    assert text == "a"
    assert finish.reason == "error"
    assert stream.model == "a/1"
    assert engines["b/2"].calls == 0


async def test_when_every_model_fails_all_errors_are_reported() -> None:
    engines = {"a/1": FlakyEngine(failures=9), "b/2": FlakyEngine(failures=9)}
    stream = FallbackStream(["a/1", "b/2"], opener(engines))
    with pytest.raises(AllModelsFailed) as caught:
        await collect(stream)
    assert [name for name, _ in caught.value.errors] == ["a/1", "b/2"]
    assert caught.value.retryable
    assert "a/1: flaky: HTTP 500" in caught.value.message


async def test_a_single_model_fails_with_its_own_error() -> None:
    stream = FallbackStream(["a/1"], opener({"a/1": FlakyEngine(failures=9)}))
    with pytest.raises(ProviderError):
        await collect(stream)


def test_a_fallback_list_cannot_be_empty() -> None:
    with pytest.raises(ValueError, match="at least one"):
        FallbackStream([], opener({}))
