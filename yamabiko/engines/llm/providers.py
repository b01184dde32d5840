"""What Yamabiko knows about each remote provider, without importing its SDK (the three
SDKs take about a second to import, so the registry loads an engine module only when
that engine is configured or first used).

The order of :data:`PROVIDERS` is the order :func:`~.registry.default_model` tries them.
"""

from __future__ import annotations

from typing import Final, NamedTuple


class ProviderInfo(NamedTuple):
    engine: str
    """The engine's part of a model name."""
    key_variable: str
    """The environment variable with the server's key; an agent's secret of the same
    name overrides it."""
    base_url_variable: str
    default_base_url: str
    default_model: str
    """The provider model :func:`~.registry.default_model` picks."""


ANTHROPIC: Final = ProviderInfo(
    "anthropic",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "https://api.anthropic.com",
    "claude-sonnet-4-5",
)
OPENAI: Final = ProviderInfo(
    "openai",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "https://api.openai.com/v1",
    "gpt-4.1-mini",
)
GEMINI: Final = ProviderInfo(
    "gemini",
    "GEMINI_API_KEY",
    "GEMINI_BASE_URL",
    "https://generativelanguage.googleapis.com/",
    "gemini-2.5-flash",
)
PROVIDERS: Final = {p.engine: p for p in (ANTHROPIC, OPENAI, GEMINI)}


def is_custom_openai_url(base_url: str | None) -> bool:
    """Whether ``base_url`` is another server than OpenAI's own (an OpenAI-compatible
    one: Ollama, vLLM, llama.cpp), which may want no key."""
    return base_url is not None and base_url.rstrip("/") not in ("", OPENAI.default_base_url)
