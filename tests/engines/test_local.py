"""The offline engine: no key, no network, deterministic for a seed, loosely on topic."""

from __future__ import annotations

import asyncio
import time

import pytest

from yamabiko.engines.llm import (
    ChatMessage,
    EngineRegistry,
    LLMRequest,
    TextDelta,
    UnknownModel,
    collect,
)
from yamabiko.engines.llm.local import LocalEngine, count_tokens, load_model


def request(text: str = "How do I make my chorus hit harder?", **kwargs: object) -> LLMRequest:
    return LLMRequest(model="default", messages=[ChatMessage("user", text)], **kwargs)  # type: ignore[arg-type]


async def reply(engine: LocalEngine, **kwargs: object) -> str:
    text, _ = await collect(engine.stream(request(**kwargs)))  # type: ignore[arg-type]
    return text


async def test_it_answers_with_no_environment_at_all() -> None:
    registry = EngineRegistry({})
    try:
        assert registry.default_model() == "local/default"
        model = registry.resolve(registry.default_model())
        text, finish = await collect(
            model.engine.stream(model.request([ChatMessage("user", "Hi")]))
        )
    finally:
        await registry.aclose()
    assert len(text.split()) >= 5
    assert text[0].isupper()
    assert text.rstrip()[-1] in ".!?"
    assert finish.reason == "stop"
    assert finish.usage.input_tokens == 1
    assert finish.usage.output_tokens == count_tokens(text)
    assert not finish.usage.estimated


async def test_the_same_seed_gives_the_same_reply() -> None:
    engine = LocalEngine()
    assert await reply(engine, seed=7) == await reply(engine, seed=7)


async def test_different_seeds_give_different_replies() -> None:
    engine = LocalEngine()
    replies = {await reply(engine, seed=seed) for seed in range(5)}
    assert len(replies) == 5


async def test_deltas_are_words_and_punctuation_that_join_into_the_reply() -> None:
    events = [e async for e in LocalEngine().stream(request(seed=1))]
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert deltas[0] == deltas[0].strip()
    assert all(d.startswith(" ") or d in ".,!?;:" for d in deltas[1:])
    assert len(deltas) == events[-1].usage.output_tokens  # type: ignore[union-attr]


async def test_the_reply_follows_the_prompt_loosely() -> None:
    model = load_model("music_production")
    assert model.keywords("How should I use reverb on my vocals?") == ["reverb", "vocals"]
    text = await reply(LocalEngine(), text="How should I use reverb on my vocals?", seed=3)
    # The first sentence opens like a corpus sentence about the first keyword.
    opening = text.split()[:3]
    about_reverb = [s for s in model.sentences if "reverb" in (w.lower() for w in s)]
    assert any(s[:3] == opening for s in about_reverb)


async def test_max_tokens_cuts_the_reply_with_length() -> None:
    text, finish = await collect(LocalEngine().stream(request(seed=2, max_tokens=5)))
    assert finish.reason == "length"
    assert finish.usage.output_tokens == 5
    assert count_tokens(text) == 5


async def test_temperature_zero_is_greedy_and_ignores_the_seed_after_the_opening() -> None:
    engine = LocalEngine()
    one = await reply(engine, text="hello", seed=1, temperature=0.0)
    two = await reply(engine, text="hello", seed=1, temperature=0.0)
    assert one == two


async def test_an_unknown_local_model_is_refused() -> None:
    with pytest.raises(UnknownModel, match="local/default"):
        await collect(LocalEngine().stream(LLMRequest(model="nope", messages=[])))


async def test_other_tasks_run_while_it_streams() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        await reply(LocalEngine(), seed=4)
    finally:
        task.cancel()
    assert ticks > 5


async def test_the_token_delay_paces_the_stream() -> None:
    started = time.monotonic()
    text, _ = await collect(LocalEngine(token_delay=0.002).stream(request(seed=5, max_tokens=10)))
    assert time.monotonic() - started >= 0.8 * 10 * 0.002  # the loop timers are coarse
    assert count_tokens(text) == 10


def test_the_model_is_built_once() -> None:
    assert load_model("music_production") is load_model("music_production")
    assert len(load_model("music_production").sentences) > 300
