"""LLM engines: one protocol, one module per provider.

Start from :class:`EngineRegistry` (model name -> engine, keys from the environment and
the agent) and :class:`LLMEngine` (the streaming contract, in :mod:`.base`). Prompts are
put together by :func:`assemble`, costs by :func:`cost_usd`.

Modules: ``base`` (protocol, request, events), ``errors`` (the exception tree),
``retry`` (retries and fallbacks), ``registry``, ``prompt``, ``cost``, ``clients`` (the
SDK client pool), and the engines ``anthropic``, ``openai``, ``gemini``, ``local`` and
``scripted``.
"""

from yamabiko.engines.llm.base import (
    ChatMessage,
    Finish,
    FinishReason,
    LLMEngine,
    LLMEvent,
    LLMRequest,
    TextDelta,
    Usage,
    collect,
    estimate_tokens,
    estimate_usage,
)
from yamabiko.engines.llm.cost import cost_usd
from yamabiko.engines.llm.errors import (
    AllModelsFailed,
    EngineError,
    MissingApiKey,
    PromptTooLong,
    ProviderError,
    ScriptError,
    UnknownModel,
)
from yamabiko.engines.llm.prompt import Prompt, assemble, system_prompt
from yamabiko.engines.llm.registry import (
    EngineRegistry,
    ResolvedModel,
    default_model,
    parse_model,
)
from yamabiko.engines.llm.retry import FallbackStream, RetryPolicy, with_retries

__all__ = [
    "AllModelsFailed",
    "ChatMessage",
    "EngineError",
    "EngineRegistry",
    "FallbackStream",
    "Finish",
    "FinishReason",
    "LLMEngine",
    "LLMEvent",
    "LLMRequest",
    "MissingApiKey",
    "Prompt",
    "PromptTooLong",
    "ProviderError",
    "ResolvedModel",
    "RetryPolicy",
    "ScriptError",
    "TextDelta",
    "UnknownModel",
    "Usage",
    "assemble",
    "collect",
    "cost_usd",
    "default_model",
    "estimate_tokens",
    "estimate_usage",
    "parse_model",
    "system_prompt",
    "with_retries",
]
