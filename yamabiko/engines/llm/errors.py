"""The LLM engines' exception tree, drawn once::

    EngineError                  message, retryable
    ├── UnknownModel             the name is not ``engine/providerModel`` of a known engine
    ├── MissingApiKey            neither the agent's secret nor the server's environment
    │                            holds a key for the provider
    ├── PromptTooLong            the new message alone does not fit the context window
    ├── ScriptError              a scripted engine's file is missing or invalid, no rule
    │                            matches, or a rule simulates a failure
    ├── ProviderError            the provider refused or failed: provider, status,
    │                            retry_after; retryable for 408, 409, 429, 5xx (529
    │                            included), a stream error event and a lost connection
    └── AllModelsFailed          every model of a fallback list failed before its first token

Whose fault: ``UnknownModel``, ``MissingApiKey``, ``PromptTooLong`` and ``ScriptError``
are the caller's or the operator's (configuration); ``ProviderError`` is the provider's
(its status says more). None of them is a bug of ours.

Engines import nothing above them (docs/development.md, Layout), so this tree does not derive
from ``YamabikoError``: the handler that runs a generation turns an ``EngineError`` into
the wire's -32010 (engine unavailable) or a ``stream/error``. Messages are safe to show a
client: they never carry a key, a prompt or a provider's response body beyond its short
error message.
"""

from __future__ import annotations

from typing import Final

_MAX_DETAIL: Final = 200
RETRYABLE_STATUSES: Final = frozenset({408, 409, 425, 429})
"""Besides every 5xx: timeouts, conflicts, too early, rate limits."""


class EngineError(Exception):
    """Base of the engine errors. ``retryable``: trying the same request again later may
    succeed (the retry wrapper does that, before the first token only)."""

    retryable: bool

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class UnknownModel(EngineError):
    """The model name does not resolve to an engine (or the engine has no such model)."""


class MissingApiKey(EngineError):
    """No key for a provider that needs one."""


class PromptTooLong(EngineError):
    """The system prompt and the new message alone exceed the model's context window."""


class ScriptError(EngineError):
    """The scripted engine's file is missing or invalid, or a rule simulates a failure."""


class ProviderError(EngineError):
    """The provider refused the request or failed while answering it.

    ``status`` is the HTTP status (None when the connection failed or the stream broke
    off); ``retry_after`` the seconds the provider asked us to wait, if it said.
    """

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        status: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        if retryable is None:
            retryable = is_retryable_status(status)
        super().__init__(f"{provider}: {message}", retryable=retryable)
        self.provider = provider
        self.status = status
        self.retry_after = retry_after

    @classmethod
    def from_status(
        cls,
        provider: str,
        status: int,
        detail: str | None,
        *,
        retry_after: float | None = None,
    ) -> ProviderError:
        """An HTTP error answer. For 401 and 403 the provider's text is left out: it may
        quote part of the key."""
        if status in (401, 403):
            text = f"HTTP {status}: the API key was refused"
        elif status < 400:
            text = "the stream reported an error"
            if detail:
                text += f": {shorten(detail)}"
        else:
            text = f"HTTP {status}"
            if detail:
                text += f": {shorten(detail)}"
        return cls(provider, text, status=status, retry_after=retry_after)


class AllModelsFailed(EngineError):
    """Every model of a fallback list failed before its first token. ``errors`` holds
    each model's error, in order; retryable if any of them was."""

    def __init__(self, errors: list[tuple[str, EngineError]]) -> None:
        parts = "; ".join(f"{name}: {error.message}" for name, error in errors)
        super().__init__(
            f"every model failed ({parts})",
            retryable=any(error.retryable for _, error in errors),
        )
        self.errors = errors


def is_retryable_status(status: int | None) -> bool:
    """Whether an HTTP status (None: no answer, a broken connection; < 400: an error event
    inside a 200 stream) is worth retrying."""
    if status is None or status < 400:
        return True
    return status >= 500 or status in RETRYABLE_STATUSES


def shorten(text: str) -> str:
    """One line, at most 200 characters."""
    line = " ".join(text.split())
    return line if len(line) <= _MAX_DETAIL else line[: _MAX_DETAIL - 1] + "…"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``retry-after`` header (the delay form; a date gives None)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
