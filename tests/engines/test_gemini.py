"""What the Gemini engine sends: ``streamGenerateContent?alt=sse`` with the key in
``x-goog-api-key``, contents with roles user and model, the system instruction and the
generation config."""

from __future__ import annotations

import pytest

from tests.engines.conftest import PROVIDERS, ask, serve
from tests.fakes import Script
from yamabiko.engines.llm import ChatMessage, collect
from yamabiko.engines.llm.gemini import Pump

GEMINI = PROVIDERS[2]


async def test_the_request_has_the_generate_content_shape() -> None:
    async with serve(GEMINI, Script(tokens=["Side", "chain", " it."])) as (fake, registry):
        model = registry.resolve("gemini/gemini-test")
        request = model.request(
            [
                ChatMessage("user", "Hi"),
                ChatMessage("assistant", "Hello"),
                ChatMessage("user", "?"),
            ],
            system="Answer like a producer.",
            temperature=0.5,
            seed=3,
            max_tokens=77,
        )
        text, _ = await collect(model.engine.stream(request))
    assert text == "Sidechain it."
    sent = fake.last
    assert sent.path == "/v1beta/models/gemini-test:streamGenerateContent"
    assert sent.query == {"alt": "sse"}
    assert sent.headers["x-goog-api-key"] == "env-key"
    assert sent.body["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}]},
        {"role": "model", "parts": [{"text": "Hello"}]},
        {"role": "user", "parts": [{"text": "?"}]},
    ]
    assert sent.body["systemInstruction"]["parts"] == [{"text": "Answer like a producer."}]
    config = sent.body["generationConfig"]
    assert config["temperature"] == 0.5
    assert config["seed"] == 3
    assert config["maxOutputTokens"] == 77


async def test_the_environment_of_the_process_does_not_leak_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The SDK would read these; the engine pins the key, the version and the backend.
    monkeypatch.setenv("GOOGLE_API_KEY", "process-key")
    monkeypatch.setenv("GOOGLE_GENAI_API_VERSION", "v1")
    async with serve(GEMINI) as (fake, registry):
        model = registry.resolve("gemini/gemini-test")
        await collect(model.engine.stream(model.request(ask())))
    assert fake.last.headers["x-goog-api-key"] == "env-key"
    assert fake.last.path.startswith("/v1beta/")


async def test_the_pump_hands_over_items_and_failures() -> None:
    async def items() -> object:
        async def gen():  # type: ignore[no-untyped-def]
            yield 1
            yield 2
            raise ValueError("boom")

        return gen()

    got: list[int] = []
    with pytest.raises(ValueError, match="boom"):
        async with Pump(items) as pump:  # type: ignore[arg-type]
            async for item in pump:
                got.append(item)  # type: ignore[arg-type]
    assert got == [1, 2]
