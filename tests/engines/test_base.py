"""The stream contract every engine gets from ``guarded``: failures before the first
delta raise, after it they end the stream; one Finish; nothing leaks into reprs."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest

from yamabiko.engines.llm import (
    ChatMessage,
    EngineError,
    Finish,
    LLMEvent,
    LLMRequest,
    ProviderError,
    TextDelta,
    Usage,
    collect,
    estimate_tokens,
    estimate_usage,
)
from yamabiko.engines.llm.base import guarded

REQUEST = LLMRequest(model="m", messages=[ChatMessage("user", "12345678")], system="abcd")


def translate(exc: Exception) -> EngineError:
    return ProviderError("fake", f"translated {type(exc).__name__}", retryable=True)


async def source(*items: LLMEvent | Exception) -> AsyncGenerator[LLMEvent, None]:
    for item in items:
        if isinstance(item, Exception):
            raise item
        yield item


async def test_deltas_then_the_finish_pass_through_and_empty_deltas_do_not() -> None:
    finish = Finish("stop", Usage(1, 2))
    events = guarded(
        source(TextDelta("a"), TextDelta(""), TextDelta("b"), finish), REQUEST, translate
    )
    assert [e async for e in events] == [TextDelta("a"), TextDelta("b"), finish]


async def test_a_failure_before_the_first_delta_is_raised_translated() -> None:
    with pytest.raises(ProviderError, match="translated KeyError"):
        await collect(guarded(source(KeyError("x")), REQUEST, translate))


async def test_an_engine_error_is_raised_as_it_is() -> None:
    error = EngineError("plain")
    with pytest.raises(EngineError) as caught:
        await collect(guarded(source(TextDelta(""), error), REQUEST, translate))
    assert caught.value is error


async def test_a_failure_after_the_first_delta_ends_the_stream_with_an_error() -> None:
    events = [
        e async for e in guarded(source(TextDelta("abcdefgh"), OSError()), REQUEST, translate)
    ]
    assert events[0] == TextDelta("abcdefgh")
    finish = events[1]
    assert isinstance(finish, Finish)
    assert finish.reason == "error"
    assert isinstance(finish.error, ProviderError)
    # Input: "abcd" (1) + "12345678" (2) + 4 for the message; output: 8 chars = 2.
    assert finish.usage == Usage(7, 2, estimated=True)


async def test_a_source_without_a_finish_gets_one() -> None:
    events = [e async for e in guarded(source(TextDelta("abcd")), REQUEST, translate)]
    assert events[-1] == Finish("stop", Usage(7, 1, estimated=True))


async def test_events_after_the_finish_are_dropped() -> None:
    finish = Finish("stop", Usage(0, 0))
    events = [e async for e in guarded(source(finish, TextDelta("late")), REQUEST, translate)]
    assert events == [finish]


async def test_closing_closes_the_source() -> None:
    closed = False

    async def endless() -> AsyncGenerator[LLMEvent, None]:
        nonlocal closed
        try:
            while True:
                yield TextDelta("x")
        finally:
            closed = True

    events = guarded(endless(), REQUEST, translate)
    await anext(events)
    await events.aclose()
    assert closed


def test_a_requests_repr_shows_neither_the_key_nor_the_prompt() -> None:
    request = LLMRequest(model="m", messages=[ChatMessage("user", "secret plan")], api_key="sk-1")
    text = repr(request)
    assert "sk-1" not in text
    assert "secret plan" not in text
    assert "***" in text


def test_estimates() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abc") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_usage(REQUEST, "abcdefghi") == Usage(7, 3, estimated=True)


async def test_collect_refuses_a_stream_without_a_finish() -> None:
    with pytest.raises(EngineError, match="without a Finish"):
        await collect(source(TextDelta("a")))
