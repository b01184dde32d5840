"""What the OpenAI engine sends, and OpenAI-compatible servers (Ollama, vLLM) through
``OPENAI_BASE_URL``."""

from __future__ import annotations

from tests.engines.conftest import FAST_RETRY, PROVIDERS, ask, serve
from tests.fakes import FakeOpenAI, Script
from yamabiko.engines.llm import ChatMessage, EngineRegistry, Usage, collect
from yamabiko.engines.llm.openai import PLACEHOLDER_KEY
from yamabiko.engines.llm.providers import is_custom_openai_url as is_custom_base_url

OPENAI = PROVIDERS[1]


async def test_the_request_has_the_chat_completions_shape() -> None:
    async with serve(OPENAI) as (fake, registry):
        model = registry.resolve("openai/gpt-test")
        request = model.request(
            [ChatMessage("user", "Hi"), ChatMessage("assistant", "Hey"), ChatMessage("user", "?")],
            system="Be brief.",
            temperature=0.2,
            seed=42,
            max_tokens=64,
        )
        await collect(model.engine.stream(request))
    sent = fake.last
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer env-key"
    assert sent.body["model"] == "gpt-test"
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
    assert sent.body["temperature"] == 0.2
    assert sent.body["seed"] == 42
    assert sent.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hey"},
        {"role": "user", "content": "?"},
    ]
    # A custom base_url is a compatible server: the limit is the classic max_tokens.
    assert sent.body["max_tokens"] == 64
    assert "max_completion_tokens" not in sent.body


async def test_unset_sampling_parameters_are_not_sent() -> None:
    async with serve(OPENAI) as (fake, registry):
        model = registry.resolve("openai/gpt-test")
        await collect(model.engine.stream(model.request(ask())))
    assert "temperature" not in fake.last.body
    assert "seed" not in fake.last.body


async def test_a_compatible_server_needs_no_key_and_any_prefix() -> None:
    async with FakeOpenAI(Script(tokens=["local", " llama"])) as fake:
        # Ollama mounts the API under /v1, llama.cpp at the root, others elsewhere.
        env = {"OPENAI_BASE_URL": fake.url.removesuffix("/v1") + "/api/v1"}
        async with EngineRegistry(env) as registry:
            assert registry.default_model() == "local/default"
            model = registry.resolve("openai/llama3.2")
            text, finish = await collect(model.engine.stream(model.request(ask())))
    assert text == "local llama"
    assert finish.usage == Usage(12, 2)
    assert fake.last.path == "/api/v1/chat/completions"
    assert fake.last.headers["authorization"] == f"Bearer {PLACEHOLDER_KEY}"
    assert fake.last.body["model"] == "llama3.2"


async def test_a_server_that_reports_no_usage_gets_an_estimate() -> None:
    async with FakeOpenAI(Script(tokens=["abcd", "efgh"]), send_usage=False) as fake:
        registry = EngineRegistry({"OPENAI_BASE_URL": fake.url}, retry=FAST_RETRY)
        try:
            model = registry.resolve("openai/qwen")
            text, finish = await collect(model.engine.stream(model.request(ask("abcdefgh"))))
        finally:
            await registry.aclose()
    assert text == "abcdefgh"
    assert finish.usage == Usage(2 + 4, 2, estimated=True)


def test_only_openais_own_url_is_not_custom() -> None:
    assert not is_custom_base_url(None)
    assert not is_custom_base_url("https://api.openai.com/v1")
    assert not is_custom_base_url("https://api.openai.com/v1/")
    assert is_custom_base_url("http://localhost:11434/v1")
