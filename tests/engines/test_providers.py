"""Every provider engine, through its real SDK, against its fake server: streaming,
usage, headers, keys, retries before the first token only, and cancellation that closes
the upstream HTTP stream within 100 ms."""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing

import pytest

from tests.engines.conftest import FAST_RETRY, Provider, ask, request_for, serve
from tests.fakes import Script
from yamabiko.engines.llm import (
    EngineError,
    EngineRegistry,
    Finish,
    LLMEvent,
    MissingApiKey,
    ProviderError,
    RetryPolicy,
    TextDelta,
    Usage,
    collect,
)

CANCEL_DEADLINE = 0.1


async def test_streams_the_tokens_and_the_usage(provider: Provider) -> None:
    script = Script(tokens=["Keep", " the", " kick", " at", " -6", " dB", "."], input_tokens=21)
    async with serve(provider, script) as (fake, registry):
        model = registry.resolve(provider.name)
        events: list[LLMEvent] = []
        async with aclosing(model.engine.stream(model.request(ask()))) as stream:
            events = [event async for event in stream]
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert deltas == script.tokens
    assert events[-1] == Finish("stop", Usage(21, 7))
    assert all(isinstance(e, TextDelta) for e in events[:-1])
    assert len(fake.requests) == 1


async def test_a_cut_off_reply_finishes_with_length(provider: Provider) -> None:
    async with serve(provider, Script(finish="length")) as (_, registry):
        model = registry.resolve(provider.name)
        text, finish = await collect(model.engine.stream(model.request(ask())))
    assert text == "Hello, world!"
    assert finish.reason == "length"


async def test_the_traceparent_header_reaches_the_provider(provider: Provider) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    async with serve(provider) as (fake, registry):
        model = registry.resolve(provider.name)
        await collect(model.engine.stream(model.request(ask(), traceparent=traceparent)))
    assert fake.last.headers["traceparent"] == traceparent


async def test_the_agents_key_comes_before_the_environments(provider: Provider) -> None:
    async with serve(provider, key="env-key") as (fake, registry):
        model = registry.resolve(provider.name, api_key="agent-key")
        await collect(model.engine.stream(model.request(ask())))
        assert fake.api_key(fake.last) == "agent-key"
        plain = registry.resolve(provider.name)
        await collect(plain.engine.stream(plain.request(ask())))
        assert fake.api_key(fake.last) == "env-key"


async def test_a_request_with_no_key_anywhere_is_refused(provider: Provider) -> None:
    registry = EngineRegistry({}, retry=FAST_RETRY)
    try:
        with pytest.raises(MissingApiKey, match=provider.key_variable):
            registry.resolve(provider.name)
        engine = registry.engine(provider.engine)
        with pytest.raises(MissingApiKey):
            await collect(engine.stream(request_for(provider)))
    finally:
        await registry.aclose()


async def test_a_refused_key_is_not_retried_and_not_quoted(provider: Provider) -> None:
    async with serve(provider, Script(expect_key="right-key"), key="wrong-key") as (
        fake,
        registry,
    ):
        model = registry.resolve(provider.name)
        with pytest.raises(ProviderError) as caught:
            await collect(model.engine.stream(model.request(ask())))
    assert caught.value.status == 401
    assert not caught.value.retryable
    assert "invalid api key" not in caught.value.message
    assert len(fake.requests) == 1


@pytest.mark.parametrize("status", [500, 503, 529, 429])
async def test_failures_before_the_first_token_are_retried(provider: Provider, status: int) -> None:
    script = Script(tokens=["one", " stream"], fail_status=status, fail_times=2)
    async with serve(provider, script) as (fake, registry):
        model = registry.resolve(provider.name)
        text, finish = await collect(model.engine.stream(model.request(ask())))
    assert text == "one stream"
    assert finish.reason == "stop"
    assert len(fake.requests) == 3
    assert [r.status for r in fake.requests] == [status, status, 200]


async def test_retries_are_bounded(provider: Provider) -> None:
    async with serve(provider, Script(fail_status=500, fail_times=10)) as (fake, registry):
        model = registry.resolve(provider.name)
        with pytest.raises(ProviderError) as caught:
            await collect(model.engine.stream(model.request(ask())))
    assert caught.value.status == 500
    assert caught.value.retryable
    assert len(fake.requests) == 3


async def test_a_bad_request_is_not_retried(provider: Provider) -> None:
    async with serve(provider, Script(fail_status=400, fail_times=1)) as (fake, registry):
        model = registry.resolve(provider.name)
        with pytest.raises(ProviderError) as caught:
            await collect(model.engine.stream(model.request(ask())))
    assert caught.value.status == 400
    assert "HTTP 400" in caught.value.message
    assert len(fake.requests) == 1


@pytest.mark.parametrize("mode", ["drop", "error"])
async def test_a_failure_after_the_first_token_ends_the_stream_without_retry(
    provider: Provider, mode: str
) -> None:
    script = Script.count(6, fail_after=2, fail_mode=mode)  # type: ignore[arg-type]
    async with serve(provider, script) as (fake, registry):
        model = registry.resolve(provider.name)
        text, finish = await collect(model.engine.stream(model.request(ask())))
    assert text == "t0 t1"
    assert finish.reason == "error"
    assert isinstance(finish.error, ProviderError)
    assert finish.error.retryable
    assert finish.usage.estimated
    assert finish.usage.output_tokens >= 1
    assert len(fake.requests) == 1


async def test_a_failure_before_any_token_but_inside_the_stream_is_retried(
    provider: Provider,
) -> None:
    async with serve(provider, Script.count(3, fail_after=0, fail_mode="drop")) as (
        fake,
        registry,
    ):
        model = registry.resolve(provider.name)
        with pytest.raises(ProviderError):
            await collect(model.engine.stream(model.request(ask())))
    assert len(fake.requests) == 3


async def test_closing_the_stream_closes_the_upstream_at_once(provider: Provider) -> None:
    async with serve(provider, Script.count(100, delay=0.02)) as (fake, registry):
        model = registry.resolve(provider.name)
        stream = model.engine.stream(model.request(ask()))
        received = [await anext(stream), await anext(stream)]
        closed_at = time.monotonic()
        await stream.aclose()
        disconnected_at = await fake.wait_disconnect(timeout=1.0)
    assert [e.text for e in received if isinstance(e, TextDelta)] == ["t0", " t1"]
    assert disconnected_at - closed_at < CANCEL_DEADLINE
    assert fake.last.tokens_sent < 100
    assert fake.last.completed_at is None


async def test_cancelling_the_consumer_closes_the_upstream_at_once(provider: Provider) -> None:
    async with serve(provider, Script.count(100, delay=0.02)) as (fake, registry):
        model = registry.resolve(provider.name)
        two = asyncio.Event()
        received: list[str] = []

        async def consume() -> None:
            async with aclosing(model.engine.stream(model.request(ask()))) as stream:
                async for event in stream:
                    if isinstance(event, TextDelta):
                        received.append(event.text)
                        if len(received) == 2:
                            two.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(two.wait(), 5)
        cancelled_at = time.monotonic()
        task.cancel()
        await asyncio.wait([task], timeout=5)
        disconnected_at = await fake.wait_disconnect(timeout=1.0)
    assert task.cancelled()
    assert disconnected_at - cancelled_at < CANCEL_DEADLINE
    assert fake.last.tokens_sent < 100


async def test_a_stream_is_reused_after_a_cancel(provider: Provider) -> None:
    async with serve(provider, Script.count(50, delay=0.01)) as (fake, registry):
        model = registry.resolve(provider.name)
        stream = model.engine.stream(model.request(ask()))
        await anext(stream)
        await stream.aclose()
        fake.script = Script(tokens=["again"])
        text, _ = await collect(model.engine.stream(model.request(ask())))
    assert text == "again"


async def test_a_retry_after_longer_than_the_policy_allows_is_not_waited_for(
    provider: Provider,
) -> None:
    script = Script(fail_status=429, fail_times=1, retry_after=30)
    policy = RetryPolicy(attempts=3, base_delay=0.0, max_delay=1.0)
    async with serve(provider, script, retry=policy) as (fake, registry):
        model = registry.resolve(provider.name)
        with pytest.raises(ProviderError) as caught:
            await collect(model.engine.stream(model.request(ask())))
    assert caught.value.status == 429
    assert caught.value.retry_after == 30
    assert len(fake.requests) == 1


async def test_an_unreachable_provider_is_a_retryable_error(provider: Provider) -> None:
    async with serve(provider) as (fake, _):
        url = fake.url
    registry = EngineRegistry(
        {provider.key_variable: "k", provider.url_variable: url}, retry=FAST_RETRY
    )
    try:
        model = registry.resolve(provider.name)
        with pytest.raises(EngineError) as caught:
            await collect(model.engine.stream(model.request(ask())))
    finally:
        await registry.aclose()
    assert caught.value.retryable
