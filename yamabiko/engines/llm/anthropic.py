"""Claude through the official ``anthropic`` SDK: ``AsyncAnthropic().messages.stream``.

The SDK (2.x) speaks API version 2026-10-21, which refuses ``temperature``, ``top_p`` and
``top_k`` (HTTP 400 even at default values): a request's ``temperature`` and ``seed`` are
therefore not sent. The SDK's own retries are off (``max_retries=0``): retrying is
:mod:`.retry`'s job, before the first token only. Usage comes from the final message
(input tokens from ``message_start``, including cache reads and writes; output tokens
from ``message_delta``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Final

import anthropic
import httpx2
from anthropic.types import MessageParam

from yamabiko.engines.llm.base import (
    Finish,
    FinishReason,
    LLMEvent,
    LLMRequest,
    TextDelta,
    Usage,
    guarded,
)
from yamabiko.engines.llm.clients import ClientPool, shared_ssl_context
from yamabiko.engines.llm.errors import (
    EngineError,
    MissingApiKey,
    ProviderError,
    parse_retry_after,
)
from yamabiko.engines.llm.providers import ANTHROPIC

NAME: Final = ANTHROPIC.engine
DEFAULT_BASE_URL: Final = ANTHROPIC.default_base_url

_FINISH: Final[dict[str, FinishReason]] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "stop",
    "pause_turn": "stop",
    "refusal": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
}


class AnthropicEngine:
    """Claude models. ``api_key``: the server's key (``ANTHROPIC_API_KEY``), used when a
    request carries none; ``base_url``: ``ANTHROPIC_BASE_URL`` or the public API."""

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
        self._base_url = base_url or DEFAULT_BASE_URL
        self._timeout = timeout
        self._clients: ClientPool[anthropic.AsyncAnthropic] = ClientPool(
            self._new_client, _close, max_size=max_clients
        )

    def _new_client(self, api_key: str) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=self._base_url,
            max_retries=0,
            timeout=self._timeout,
            http_client=anthropic.DefaultAsyncHttpxClient(verify=shared_ssl_context()),
        )

    def stream(self, request: LLMRequest) -> AsyncGenerator[LLMEvent, None]:
        return guarded(self._events(request), request, translate)

    async def _events(self, request: LLMRequest) -> AsyncGenerator[LLMEvent, None]:
        api_key = request.api_key or self._api_key
        if not api_key:
            raise MissingApiKey(
                "no Anthropic key: set ANTHROPIC_API_KEY or give the agent the secret"
            )
        messages: list[MessageParam] = [
            {"role": "user", "content": m.content}
            if m.role == "user"
            else {"role": "assistant", "content": m.content}
            for m in request.messages
        ]
        headers = {"traceparent": request.traceparent} if request.traceparent else None
        async with (
            self._clients.lease(api_key) as client,
            client.messages.stream(
                model=request.model,
                max_tokens=request.max_tokens,
                messages=messages,
                system=request.system if request.system else anthropic.omit,
                extra_headers=headers,
            ) as stream,
        ):
            async for event in stream:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    yield TextDelta(event.delta.text)
            message = stream.current_message_snapshot
        usage = message.usage
        input_tokens = (
            usage.input_tokens
            + (usage.cache_creation_input_tokens or 0)
            + (usage.cache_read_input_tokens or 0)
        )
        reason = _FINISH.get(message.stop_reason or "end_turn", "stop")
        yield Finish(reason, Usage(input_tokens, usage.output_tokens))

    async def aclose(self) -> None:
        await self._clients.aclose()


async def _close(client: anthropic.AsyncAnthropic) -> None:
    await client.close()


def translate(exc: Exception) -> EngineError:
    """An SDK or transport exception as an :class:`EngineError`."""
    if isinstance(exc, anthropic.APIStatusError):
        detail = exc.api_message or str(exc)
        retry_after = parse_retry_after(exc.response.headers.get("retry-after"))
        return ProviderError.from_status(NAME, exc.status_code, detail, retry_after=retry_after)
    if isinstance(exc, anthropic.APITimeoutError):
        return ProviderError(NAME, "timed out", retryable=True)
    if isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError):
        return ProviderError(NAME, "connection failed or was lost", retryable=True)
    return ProviderError(NAME, f"unexpected {type(exc).__name__}", retryable=False)
