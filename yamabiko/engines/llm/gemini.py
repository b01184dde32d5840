"""Gemini through the official ``google-genai`` SDK:
``Client().aio.models.generate_content_stream`` (SSE, ``streamGenerateContent?alt=sse``).

Closing: the SDK's stream is a chain of nested async generators, some of them in a
reference cycle, so ``aclose()`` on the outer one leaves the HTTP response open until
the garbage collector runs. Cancelling the task that iterates it does unwind the whole
chain (each layer's ``finally`` closes what it holds). So the SDK stream is iterated by
a pump task that only ever awaits the SDK and hands chunks over through an unbounded
queue, and closing our stream cancels that task.

The SDK's automatic continuation is off (it would resend a broken stream, repeating
text), as are its retries (the default). The API version is pinned to ``v1beta`` and the
client is always the Gemini API's, never Vertex, whatever ``GOOGLE_GENAI_*`` says.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Final, Generic, TypeVar

import httpx2
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

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
)
from yamabiko.engines.llm.providers import GEMINI

NAME: Final = GEMINI.engine
DEFAULT_BASE_URL: Final = GEMINI.default_base_url
API_VERSION: Final = "v1beta"

T = TypeVar("T")


class GeminiEngine:
    """Gemini models. ``api_key``: ``GEMINI_API_KEY``, used when a request carries none;
    ``base_url``: ``GEMINI_BASE_URL`` or the public API."""

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
        self._clients: ClientPool[genai.Client] = ClientPool(
            self._new_client, _close, max_size=max_clients
        )

    def _new_client(self, api_key: str) -> genai.Client:
        ssl_context = shared_ssl_context()
        return genai.Client(
            api_key=api_key,
            vertexai=False,
            http_options=types.HttpOptions(
                base_url=self._base_url,
                api_version=API_VERSION,
                timeout=int(self._timeout * 1000),
                # Given here, the SDK builds no trust store of its own (~16 ms each).
                client_args={"verify": ssl_context},
                async_client_args={"verify": ssl_context, "ssl": ssl_context},
            ),
        )

    def stream(self, request: LLMRequest) -> AsyncGenerator[LLMEvent, None]:
        return guarded(self._events(request), request, translate)

    async def _events(self, request: LLMRequest) -> AsyncGenerator[LLMEvent, None]:
        api_key = request.api_key or self._api_key
        if not api_key:
            raise MissingApiKey("no Gemini key: set GEMINI_API_KEY or give the agent the secret")
        contents = [
            types.Content(
                role="user" if m.role == "user" else "model",
                parts=[types.Part(text=m.content)],
            )
            for m in request.messages
        ]
        config = types.GenerateContentConfig(
            system_instruction=request.system or None,
            temperature=request.temperature,
            seed=request.seed,
            max_output_tokens=request.max_tokens,
            automatic_continuation=False,
            http_options=(
                types.HttpOptions(headers={"traceparent": request.traceparent})
                if request.traceparent
                else None
            ),
        )
        parts: list[str] = []
        reason: FinishReason = "stop"
        usage: Usage | None = None
        async with self._clients.lease(api_key) as client:

            def open_stream() -> Awaitable[AsyncIterator[types.GenerateContentResponse]]:
                return client.aio.models.generate_content_stream(
                    model=request.model, contents=contents, config=config
                )

            async with Pump(open_stream) as chunks:
                async for chunk in chunks:
                    if chunk.usage_metadata is not None:
                        usage = _usage(chunk.usage_metadata) or usage
                    if not chunk.candidates:
                        continue
                    candidate = chunk.candidates[0]
                    if candidate.content is not None and candidate.content.parts:
                        for part in candidate.content.parts:
                            if part.text and not part.thought:
                                parts.append(part.text)
                                yield TextDelta(part.text)
                    if candidate.finish_reason is not None:
                        reason = _finish(candidate.finish_reason)
        yield Finish(reason, usage or estimate_usage(request, "".join(parts)))

    async def aclose(self) -> None:
        await self._clients.aclose()


class Pump(Generic[T]):
    """Iterate an async iterator in a task of its own; closing cancels the task.

    ``async with Pump(open) as items: async for item in items: ...``. ``open`` is called
    in the task and returns (an awaitable of) the iterator. The task only ever waits on
    the iterator (the queue is unbounded), so a cancel lands inside it and unwinds it.
    """

    _DONE: Final = object()

    def __init__(self, open: Callable[[], Awaitable[AsyncIterator[T]]]) -> None:
        self._open = open
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        try:
            iterator = await self._open()
            async for item in iterator:
                self._queue.put_nowait(item)
        except Exception as exc:
            self._queue.put_nowait(_Failure(exc))
        else:
            self._queue.put_nowait(self._DONE)

    async def __aenter__(self) -> Pump[T]:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            # wait(), not await: the task's cancellation must not look like ours.
            await asyncio.wait([task])

    def __aiter__(self) -> Pump[T]:
        return self

    async def __anext__(self) -> T:
        item = await self._queue.get()
        if item is self._DONE:
            self._queue.put_nowait(item)
            raise StopAsyncIteration
        if isinstance(item, _Failure):
            raise item.exc
        return item  # type: ignore[return-value]


class _Failure:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc


def _usage(metadata: types.GenerateContentResponseUsageMetadata) -> Usage | None:
    if metadata.prompt_token_count is None:
        return None
    output = (metadata.candidates_token_count or 0) + (metadata.thoughts_token_count or 0)
    return Usage(metadata.prompt_token_count, output)


def _finish(reason: types.FinishReason) -> FinishReason:
    if reason == types.FinishReason.MAX_TOKENS:
        return "length"
    return "stop"


async def _close(client: genai.Client) -> None:
    await client.aio.aclose()
    client.close()


def _retry_after(exc: genai_errors.APIError) -> float | None:
    # The SDK keeps the HTTP response under several types; all have ``headers``.
    headers = getattr(exc.response, "headers", None)
    return parse_retry_after(headers.get("retry-after")) if headers is not None else None


def translate(exc: Exception) -> EngineError:
    """An SDK or transport exception as an :class:`EngineError`."""
    if isinstance(exc, genai_errors.APIError):
        return ProviderError.from_status(
            NAME, exc.code, exc.message or exc.status, retry_after=_retry_after(exc)
        )
    if isinstance(exc, httpx2.TimeoutException):
        return ProviderError(NAME, "timed out", retryable=True)
    if isinstance(exc, httpx2.TransportError):
        return ProviderError(NAME, "connection failed or was lost", retryable=True)
    return ProviderError(NAME, f"unexpected {type(exc).__name__}", retryable=False)
