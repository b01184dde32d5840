"""OpenAI, and any OpenAI-compatible server (Ollama, vLLM, llama.cpp), through the
official ``openai`` SDK: ``AsyncOpenAI().chat.completions.create(stream=True)``.

Usage is asked for with ``stream_options={"include_usage": True}`` (a last chunk with
empty ``choices``); a compatible server that ignores it gets an estimated usage. The
output limit is sent as ``max_completion_tokens`` to OpenAI itself (``max_tokens`` is
deprecated there and refused by reasoning models) and as ``max_tokens`` to any other
``base_url``, which is what compatible servers understand. A custom ``base_url`` needs no
key (local servers ignore it): a placeholder is sent. The SDK's retries are off.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Final

import httpx2
import openai
from openai.types.chat import ChatCompletionMessageParam

from yamabiko.engines.llm.base import (
    Finish,
    FinishReason,
    LLMEvent,
    LLMRequest,
    TextDelta,
    Usage,
    estimate_usage,
    guarded,
)
from yamabiko.engines.llm.clients import ClientPool, shared_ssl_context
from yamabiko.engines.llm.errors import (
    EngineError,
    MissingApiKey,
    ProviderError,
    parse_retry_after,
    shorten,
)
from yamabiko.engines.llm.providers import OPENAI, is_custom_openai_url

NAME: Final = OPENAI.engine
DEFAULT_BASE_URL: Final = OPENAI.default_base_url
PLACEHOLDER_KEY: Final = "unused"
"""Sent to a custom ``base_url`` when no key is configured."""

_FINISH: Final[dict[str, FinishReason]] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "stop",
    "function_call": "stop",
    "content_filter": "stop",
}


class OpenAIEngine:
    """OpenAI models, or a compatible server's. ``api_key``: ``OPENAI_API_KEY``, used when
    a request carries none; ``base_url``: ``OPENAI_BASE_URL`` or the public API."""

    name = NAME

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        max_clients: int = 32,
    ) -> None:
        self._api_key = api_key
        self._custom_base_url = is_custom_openai_url(base_url)
        self._base_url = base_url or DEFAULT_BASE_URL
        self._timeout = timeout
        self._clients: ClientPool[openai.AsyncOpenAI] = ClientPool(
            self._new_client, _close, max_size=max_clients
        )

    @property
    def needs_key(self) -> bool:
        """False for a custom ``base_url``: a compatible server may want no key."""
        return not self._custom_base_url

    def _new_client(self, api_key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=api_key,
            base_url=self._base_url,
            max_retries=0,
            timeout=self._timeout,
            http_client=openai.DefaultAsyncHttpxClient(verify=shared_ssl_context()),
        )

    def stream(self, request: LLMRequest) -> AsyncGenerator[LLMEvent, None]:
        return guarded(self._events(request), request, translate)

    async def _events(self, request: LLMRequest) -> AsyncGenerator[LLMEvent, None]:
        api_key = request.api_key or self._api_key
        if not api_key:
            if self.needs_key:
                raise MissingApiKey(
                    "no OpenAI key: set OPENAI_API_KEY or give the agent the secret"
                )
            api_key = PLACEHOLDER_KEY
        messages: list[ChatCompletionMessageParam] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        for m in request.messages:
            if m.role == "user":
                messages.append({"role": "user", "content": m.content})
            else:
                messages.append({"role": "assistant", "content": m.content})
        headers = {"traceparent": request.traceparent} if request.traceparent else None
        limit = {
            "max_tokens" if self._custom_base_url else "max_completion_tokens": request.max_tokens
        }
        parts: list[str] = []
        reason: FinishReason = "stop"
        usage: Usage | None = None
        async with self._clients.lease(api_key) as client:
            response = await client.chat.completions.create(
                model=request.model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                temperature=request.temperature if request.temperature is not None else openai.omit,
                seed=request.seed if request.seed is not None else openai.omit,
                extra_headers=headers,
                extra_body=limit,
            )
            async with response:
                async for chunk in response:
                    if chunk.usage is not None:
                        usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                    if not chunk.choices:
                        continue
                    choice = chunk.choices[0]
                    if choice.delta.content:
                        parts.append(choice.delta.content)
                        yield TextDelta(choice.delta.content)
                    if choice.finish_reason is not None:
                        reason = _FINISH.get(choice.finish_reason, "stop")
        yield Finish(reason, usage or estimate_usage(request, "".join(parts)))

    async def aclose(self) -> None:
        await self._clients.aclose()


async def _close(client: openai.AsyncOpenAI) -> None:
    await client.close()


def translate(exc: Exception) -> EngineError:
    """An SDK or transport exception as an :class:`EngineError`."""
    if isinstance(exc, openai.APIStatusError):
        retry_after = parse_retry_after(exc.response.headers.get("retry-after"))
        return ProviderError.from_status(
            NAME, exc.status_code, _detail(exc), retry_after=retry_after
        )
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(NAME, "timed out", retryable=True)
    if isinstance(exc, openai.APIConnectionError | httpx2.TransportError):
        return ProviderError(NAME, "connection failed or was lost", retryable=True)
    if isinstance(exc, openai.APIError):
        # An error object inside a 200 stream: the server failed mid-way.
        detail = shorten(_detail(exc))
        return ProviderError(NAME, f"the stream reported an error: {detail}", retryable=True)
    return ProviderError(NAME, f"unexpected {type(exc).__name__}", retryable=False)


def _detail(exc: openai.APIError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return exc.message
