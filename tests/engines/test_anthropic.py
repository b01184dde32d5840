"""What the Anthropic engine sends: API 2026-10-21 shape, no sampling parameters."""

from __future__ import annotations

from tests.engines.conftest import PROVIDERS, serve
from tests.fakes import Script
from yamabiko.engines.llm import ChatMessage, collect

ANTHROPIC = PROVIDERS[0]


async def test_the_request_has_the_messages_api_shape() -> None:
    history = [
        ChatMessage("user", "Hi"),
        ChatMessage("assistant", "Hello! What are you mixing?"),
        ChatMessage("user", "A vocal that sounds harsh."),
    ]
    async with serve(ANTHROPIC, Script(tokens=["Try", " a", " de-esser."])) as (fake, registry):
        model = registry.resolve("anthropic/claude-test")
        request = model.request(
            history, system="You are a mix engineer.", temperature=0.3, seed=7, max_tokens=99
        )
        text, _ = await collect(model.engine.stream(request))
    assert text == "Try a de-esser."
    sent = fake.last
    assert sent.path == "/v1/messages"
    assert sent.headers["anthropic-version"]
    assert sent.headers["authorization"] == "Bearer env-key"
    assert sent.body["model"] == "claude-test"
    assert sent.body["max_tokens"] == 99
    assert sent.body["stream"] is True
    assert sent.body["system"] == "You are a mix engineer."
    assert sent.body["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! What are you mixing?"},
        {"role": "user", "content": "A vocal that sounds harsh."},
    ]
    # API 2026-10-21 answers 400 to any sampling parameter, even at its default value.
    for refused in ("temperature", "top_p", "top_k", "seed"):
        assert refused not in sent.body


async def test_no_system_prompt_sends_no_system_field() -> None:
    async with serve(ANTHROPIC) as (fake, registry):
        model = registry.resolve("anthropic/claude-test")
        await collect(model.engine.stream(model.request([ChatMessage("user", "Hi")])))
    assert "system" not in fake.last.body


async def test_an_x_api_key_header_is_accepted_by_the_fake_too() -> None:
    # The fake accepts both forms, as the real API does; the SDK sends Bearer.
    from tests.fakes.server import RecordedRequest, bearer_or_header

    record = RecordedRequest("POST", "/v1/messages", {}, {"x-api-key": "k1"}, None, 0.0)
    assert bearer_or_header(record.headers, "x-api-key") == "k1"
    record.headers["authorization"] = "Bearer k2"
    assert bearer_or_header(record.headers, "x-api-key") == "k2"
