"""The fake providers themselves: connection reuse, the thread mode, records."""

from __future__ import annotations

import contextlib
import time

import openai
import pytest

from tests.fakes import FakeAnthropic, FakeGemini, FakeOpenAI, FakeProvider, Script


def client_of(fake: FakeProvider) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="k", base_url=fake.url, max_retries=0)


async def stream_once(client: openai.AsyncOpenAI) -> str:
    response = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    parts: list[str] = []
    async with response:
        async for chunk in response:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
    return "".join(parts)


async def test_connections_are_kept_alive_between_requests() -> None:
    async with FakeOpenAI(Script(tokens=["a", "b"])) as fake, client_of(fake) as client:
        assert await stream_once(client) == "ab"
        assert await stream_once(client) == "ab"
    first, second = fake.requests
    assert first.peer == second.peer
    assert first.completed_at is not None
    assert first.disconnected_at is None
    assert second.disconnected_at is None


async def test_the_fake_can_run_on_its_own_thread() -> None:
    async with FakeOpenAI(Script.count(40, delay=0.01), threaded=True) as fake:
        async with openai.AsyncOpenAI(api_key="k", base_url=fake.url, max_retries=0) as client:
            response = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            async with response:
                async for chunk in response:
                    if chunk.choices and chunk.choices[0].delta.content:
                        break
            closed_at = time.monotonic()
        disconnected_at = await fake.wait_disconnect()
    assert disconnected_at - closed_at < 0.1


async def test_unknown_paths_get_404_and_failures_are_counted() -> None:
    async with FakeOpenAI(Script(fail_status=503, fail_times=1)) as fake, client_of(fake) as client:
        with pytest.raises(openai.InternalServerError):
            await stream_once(client)
        assert await stream_once(client) == "Hello, world!"
        with pytest.raises(openai.NotFoundError):
            await client.models.list()
    assert [r.status for r in fake.requests] == [503, 200, 404]
    fake.reset(Script(tokens=["x"]))
    assert fake.requests == []


@pytest.mark.parametrize("fake_class", [FakeAnthropic, FakeOpenAI, FakeGemini])
async def test_wait_disconnect_is_bounded(fake_class: type) -> None:
    async with fake_class() as fake:
        async with client_of(fake) as client:
            with contextlib.suppress(openai.APIError):  # only the OpenAI fake serves this path
                await stream_once(client)
        with pytest.raises(TimeoutError):
            await fake.wait_disconnect(timeout=0.01)


def test_a_count_script_makes_numbered_tokens() -> None:
    script = Script.count(3)
    assert script.tokens == ["t0", " t1", " t2"]
    assert script.text == "t0 t1 t2"
