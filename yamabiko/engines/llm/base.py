"""The LLM engine interface: a request in, an async stream of events out.

Theory of operation. :meth:`LLMEngine.stream` returns an async generator. Iterating it
sends the request and yields :class:`TextDelta` events as the provider produces text, then
exactly one :class:`Finish` carrying why it ended and the usage; then the generator is
exhausted. A failure *before* the first delta is raised as an :class:`EngineError` (and
nothing was yielded), so that a caller may retry it or fall back to another model
(:mod:`.retry`); a failure *after* the first delta is not raised but ends the stream with
``Finish(reason="error", error=...)``, so the text already produced is kept and billed.

Cancellation: closing the generator (``aclose()``, or ``contextlib.aclosing``) or
cancelling the task that iterates it closes the provider's HTTP stream before returning:
every engine runs the SDK call inside its ``async with``. A generator dropped without
being closed is only closed when it is garbage-collected, so always close it. It cannot
be closed from another task while it is being iterated (Python refuses): to stop a
generation from elsewhere, cancel the task that iterates it.

No ``Finish`` follows a close or a cancel: the caller knows it stopped the stream, and
:func:`estimate_usage` gives the usage to record for the text it received.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing
from typing import Literal, Protocol

import msgspec

from yamabiko.engines.llm.errors import EngineError

FinishReason = Literal["stop", "length", "error", "cancelled"]
"""``stop``: the model finished (or a stop sequence, a refusal, a content filter);
``length``: ``max_tokens`` or the context window cut it short; ``error``: it failed after
the first delta; ``cancelled``: stopped by the caller (never yielded by an engine: the
caller that stops a stream reports it)."""

Role = Literal["user", "assistant"]
CHARS_PER_TOKEN = 4
"""The cheap estimate used where a provider does not count: four characters a token."""


class ChatMessage(msgspec.Struct, frozen=True):
    role: Role
    content: str


class LLMRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One generation. ``model`` is the provider's model id (``gpt-4.1-mini``), not the
    Yamabiko name: :class:`~yamabiko.engines.llm.registry.EngineRegistry` resolves that.

    ``api_key``: the agent's key for the provider; None uses the server's (environment).
    ``temperature`` and ``seed`` are passed to providers that accept them (Anthropic's API
    2026-10-21 accepts neither). ``traceparent`` is sent as an HTTP header.
    """

    model: str
    messages: Sequence[ChatMessage]
    system: str | None = None
    temperature: float | None = None
    max_tokens: int = 1024
    api_key: str | None = None
    seed: int | None = None
    traceparent: str | None = None

    def __repr__(self) -> str:
        # Never the key, nor the prompt: reprs end up in logs and tracebacks.
        return (
            f"LLMRequest(model={self.model!r}, messages={len(self.messages)}, "
            f"max_tokens={self.max_tokens}, api_key={'***' if self.api_key else None})"
        )


class Usage(msgspec.Struct, frozen=True):
    """Tokens billed. ``estimated``: counted by us (characters / 4, or words for the
    local engine) because the provider did not report them."""

    input_tokens: int
    output_tokens: int
    estimated: bool = False


class TextDelta(msgspec.Struct, frozen=True):
    """The next piece of generated text; never empty."""

    text: str


class Finish(msgspec.Struct, frozen=True):
    """The last event of every stream that was not closed or cancelled. ``error`` is set
    when ``reason`` is ``error``."""

    reason: FinishReason
    usage: Usage
    error: EngineError | None = None


LLMEvent = TextDelta | Finish


class LLMEngine(Protocol):
    """Something that generates text from a conversation.

    Guarantees of :meth:`stream` (see the module docstring for the whole contract):

    - events are zero or more :class:`TextDelta` (never empty), then exactly one
      :class:`Finish`, in the order the provider produced them;
    - a failure before the first delta raises :class:`EngineError` and yields nothing;
      a failure after it yields ``Finish("error", usage, error)``; nothing is retried
      inside an engine (wrap it with :func:`~yamabiko.engines.llm.retry.with_retries`);
    - ``aclose()`` on the generator, or cancelling the task iterating it, closes the
      upstream HTTP stream before it returns.

    :meth:`aclose` releases the engine's pooled HTTP clients; call it once, at shutdown,
    when no stream is running.
    """

    name: str
    """The engine's part of a model name: ``openai``, ``anthropic``..."""

    def stream(self, request: LLMRequest) -> AsyncGenerator[LLMEvent, None]: ...

    async def aclose(self) -> None: ...


def estimate_tokens(text: str) -> int:
    """A cheap token count: characters / 4, rounded up."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate_input_tokens(request: LLMRequest) -> int:
    """The estimated prompt size of a request: its text, plus 4 tokens a message for the
    role markers providers add."""
    total = estimate_tokens(request.system or "")
    for message in request.messages:
        total += estimate_tokens(message.content) + 4
    return total


def estimate_usage(request: LLMRequest, output_text: str) -> Usage:
    """The usage to record for a stream that ended without a provider count: a cancelled
    stream, or one that broke off."""
    return Usage(estimate_input_tokens(request), estimate_tokens(output_text), estimated=True)


async def guarded(
    source: AsyncGenerator[LLMEvent, None],
    request: LLMRequest,
    translate: Callable[[Exception], EngineError],
) -> AsyncGenerator[LLMEvent, None]:
    """Give a provider's raw event generator the :class:`LLMEngine` guarantees.

    ``source`` yields deltas and a final :class:`Finish`, raising whatever the SDK
    raises. Here: empty deltas are dropped; an exception before the first delta becomes
    an :class:`EngineError` (``translate``) and is raised; after it, it becomes
    ``Finish("error")`` with the usage estimated; a source that ends without a
    ``Finish`` gets one. Closing this generator closes ``source`` first.
    """
    text_chars = 0
    started = False
    async with aclosing(source):
        try:
            async for event in source:
                if isinstance(event, TextDelta):
                    if not event.text:
                        continue
                    started = True
                    text_chars += len(event.text)
                    yield event
                else:
                    yield event
                    return
        except Exception as exc:
            error = exc if isinstance(exc, EngineError) else translate(exc)
            if not started:
                raise error from exc
            yield Finish(
                "error",
                Usage(
                    estimate_input_tokens(request),
                    math.ceil(text_chars / CHARS_PER_TOKEN),
                    estimated=True,
                ),
                error,
            )
            return
    yield Finish(
        "stop",
        Usage(
            estimate_input_tokens(request), math.ceil(text_chars / CHARS_PER_TOKEN), estimated=True
        ),
    )


class EventStream(Protocol):
    """What :func:`collect` takes: an engine's stream, or a
    :class:`~yamabiko.engines.llm.retry.FallbackStream`."""

    def __aiter__(self) -> AsyncIterator[LLMEvent]: ...

    def __anext__(self) -> Awaitable[LLMEvent]: ...

    def aclose(self) -> Awaitable[None]: ...


async def collect(events: EventStream) -> tuple[str, Finish]:
    """Consume (and close) a whole stream: the concatenated text and the final event. For
    tests, tools and non-streaming callers."""
    parts: list[str] = []
    async with aclosing(events):
        async for event in events:
            if isinstance(event, TextDelta):
                parts.append(event.text)
            else:
                return "".join(parts), event
    raise EngineError("the stream ended without a Finish event")
