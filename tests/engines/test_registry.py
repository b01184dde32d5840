"""Model names, keys and the default model (docs/streams.md, Which model, which key),
and fallbacks across real engines."""

from __future__ import annotations

import pytest

from tests.engines.conftest import FAST_RETRY, PROVIDERS, ask
from tests.fakes import FakeAnthropic, FakeOpenAI, Script
from yamabiko.engines.llm import (
    AllModelsFailed,
    EngineRegistry,
    MissingApiKey,
    ProviderError,
    UnknownModel,
    collect,
    default_model,
    parse_model,
)
from yamabiko.engines.llm.retry import RetryingEngine


@pytest.mark.parametrize(
    ("name", "engine", "model"),
    [
        ("openai/gpt-4.1-mini", "openai", "gpt-4.1-mini"),
        ("anthropic/claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5"),
        ("gemini/gemini-2.5-flash", "gemini", "gemini-2.5-flash"),
        ("local/default", "local", "default"),
        ("scripted/path/to/file.jsonl", "scripted", "path/to/file.jsonl"),
        ("gemini/models/gemini-2.5-pro", "gemini", "models/gemini-2.5-pro"),
    ],
)
def test_a_name_is_engine_slash_provider_model(name: str, engine: str, model: str) -> None:
    parsed = parse_model(name)
    assert (parsed.engine, parsed.provider_model) == (engine, model)
    assert str(parsed) == name


@pytest.mark.parametrize("name", ["gpt-4.1", "openai/", "/gpt", ""])
def test_a_name_without_both_parts_is_refused(name: str) -> None:
    with pytest.raises(UnknownModel, match="engine/providerModel") as caught:
        parse_model(name)
    assert not caught.value.retryable


def test_an_unknown_engine_is_named_with_the_known_ones() -> None:
    with pytest.raises(UnknownModel, match=r"unknown engine 'mistral'.*anthropic, openai"):
        parse_model("mistral/large")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "local/default"),
        ({"GEMINI_API_KEY": "g"}, "gemini/gemini-2.5-flash"),
        ({"GEMINI_API_KEY": "g", "OPENAI_API_KEY": "o"}, "openai/gpt-4.1-mini"),
        (
            {"GEMINI_API_KEY": "g", "OPENAI_API_KEY": "o", "ANTHROPIC_API_KEY": "a"},
            "anthropic/claude-sonnet-4-5",
        ),
        ({"ANTHROPIC_API_KEY": " ", "OPENAI_API_KEY": ""}, "local/default"),
        ({"OPENAI_BASE_URL": "http://localhost:11434/v1"}, "local/default"),
    ],
)
def test_the_default_model_is_the_first_engine_with_a_key(
    env: dict[str, str], expected: str
) -> None:
    assert default_model(env) == expected
    assert EngineRegistry(env).default_model() == expected


async def test_engines_are_built_once_and_wrapped_with_retries() -> None:
    registry = EngineRegistry({"OPENAI_API_KEY": "k"})
    try:
        first = registry.resolve("openai/gpt-4.1-mini")
        second = registry.resolve("openai/gpt-4o")
        assert first.engine is second.engine
        assert isinstance(first.engine, RetryingEngine)
        assert first.engine.name == "openai"
    finally:
        await registry.aclose()


def test_a_key_given_for_the_agent_satisfies_a_keyless_server() -> None:
    registry = EngineRegistry({})
    with pytest.raises(MissingApiKey, match="ANTHROPIC_API_KEY"):
        registry.resolve("anthropic/claude-sonnet-4-5")
    resolved = registry.resolve("anthropic/claude-sonnet-4-5", api_key="agent-key")
    request = resolved.request(ask(), system="s", max_tokens=10)
    assert request.api_key == "agent-key"
    assert request.model == "claude-sonnet-4-5"
    assert "agent-key" not in repr(resolved)
    assert "agent-key" not in repr(request)
    assert registry.has_key("local")
    assert not registry.has_key("gemini")


def test_an_unknown_local_model_is_refused_at_resolve() -> None:
    with pytest.raises(UnknownModel, match="local/default"):
        EngineRegistry({}).resolve("local/gpt-5")


async def test_a_fallback_list_falls_back_across_providers() -> None:
    async with (
        FakeAnthropic(Script(fail_status=529, fail_times=99)) as anthropic,
        FakeOpenAI(Script(tokens=["from", " openai"])) as openai,
    ):
        env = {
            "ANTHROPIC_API_KEY": "a",
            "ANTHROPIC_BASE_URL": anthropic.url,
            "OPENAI_BASE_URL": openai.url,
        }
        registry = EngineRegistry(env, retry=FAST_RETRY)
        try:
            stream = registry.stream_with_fallbacks(
                ["anthropic/claude-test", "gemini/gemini-test", "openai/gpt-test"],
                lambda model: model.request(ask()),
                api_keys={"openai": "agent-openai-key"},
            )
            text, finish = await collect(stream)
        finally:
            await registry.aclose()
    assert text == "from openai"
    assert finish.reason == "stop"
    assert stream.model == "openai/gpt-test"
    failed = dict(stream.errors)
    assert isinstance(failed["anthropic/claude-test"], ProviderError)
    assert isinstance(failed["gemini/gemini-test"], MissingApiKey)
    assert len(anthropic.requests) == 3  # its own retries, then the next model
    assert openai.api_key(openai.last) == "agent-openai-key"


async def test_a_fallback_list_that_all_fails_reports_each_model() -> None:
    registry = EngineRegistry({}, retry=FAST_RETRY)
    stream = registry.stream_with_fallbacks(
        ["anthropic/x", "nope/y"], lambda model: model.request(ask())
    )
    with pytest.raises(AllModelsFailed) as caught:
        await collect(stream)
    assert [name for name, _ in caught.value.errors] == ["anthropic/x", "nope/y"]
    assert not caught.value.retryable


def test_the_provider_table_covers_every_keyed_engine() -> None:
    from yamabiko.engines.llm.registry import BASE_URL_VARIABLES, KEY_VARIABLES

    assert [p.engine for p in PROVIDERS] == list(KEY_VARIABLES)
    assert {p.key_variable for p in PROVIDERS} == set(KEY_VARIABLES.values())
    assert {p.url_variable for p in PROVIDERS} == set(BASE_URL_VARIABLES.values())
