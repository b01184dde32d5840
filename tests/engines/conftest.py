"""Shared set-up for the engine tests: the three providers behind their fakes, reached
through the registry exactly as the server reaches them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from tests.fakes import FakeAnthropic, FakeGemini, FakeOpenAI, FakeProvider, Script
from yamabiko.engines.llm import ChatMessage, EngineRegistry, LLMRequest, RetryPolicy

FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.0, max_delay=0.05)
"""Retries without waiting (``max_delay`` leaves room for a short ``retry-after``)."""


@dataclass(frozen=True)
class Provider:
    engine: str
    fake: type[FakeProvider]
    model: str
    key_variable: str
    url_variable: str

    @property
    def name(self) -> str:
        return f"{self.engine}/{self.model}"


PROVIDERS = [
    Provider("anthropic", FakeAnthropic, "claude-test", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
    Provider("openai", FakeOpenAI, "gpt-test", "OPENAI_API_KEY", "OPENAI_BASE_URL"),
    Provider("gemini", FakeGemini, "gemini-test", "GEMINI_API_KEY", "GEMINI_BASE_URL"),
]


@pytest.fixture(params=PROVIDERS, ids=lambda p: p.engine)
def provider(request: pytest.FixtureRequest) -> Provider:
    return request.param  # type: ignore[no-any-return]


@asynccontextmanager
async def serve(
    provider: Provider,
    script: Script | None = None,
    *,
    key: str | None = "env-key",
    retry: RetryPolicy = FAST_RETRY,
) -> AsyncIterator[tuple[FakeProvider, EngineRegistry]]:
    """The provider's fake, and a registry whose environment points at it."""
    async with provider.fake(script) as fake:
        env = {provider.url_variable: fake.url}
        if key is not None:
            env[provider.key_variable] = key
        registry = EngineRegistry(env, retry=retry)
        try:
            yield fake, registry
        finally:
            await registry.aclose()
        assert fake.errors == []


def ask(text: str = "How loud should the kick be?") -> list[ChatMessage]:
    return [ChatMessage("user", text)]


def request_for(provider: Provider, **kwargs: object) -> LLMRequest:
    fields: dict[str, object] = {"model": provider.model, "messages": ask()}
    fields.update(kwargs)
    return LLMRequest(**fields)  # type: ignore[arg-type]
