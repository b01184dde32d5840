"""Prompt assembly: what a model is sent for one chat turn (docs/api.md).

The system prompt is the tenant's system prompt, then the agent's personality, then the
agent's own system prompt, each left out when empty, joined by blank lines: the tenant's
rules first, the most specific instructions last. The messages are the conversation's
history, trimmed to fit, then the new user message.

Trimming: the context window minus the reply's ``max_output_tokens`` is the budget; the
system prompt and the new message always go in (if even they do not fit,
:class:`PromptTooLong`), then history from the newest message back, as long as it fits:
the oldest messages are the ones dropped, and the kept history is contiguous. Sizes are
estimated cheaply (four characters a token, plus four a message for role markers), which
over-counts most English text a little: a safe side to err on. Only ``user`` and
``assistant`` messages with text are sent; and the history starts with a user message,
as some providers require.

Pure functions: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from yamabiko.engines.llm.base import ChatMessage, estimate_tokens
from yamabiko.engines.llm.errors import PromptTooLong

MESSAGE_OVERHEAD: Final = 4
"""Estimated tokens a message costs beyond its text (role markers, separators)."""
DEFAULT_CONTEXT_WINDOW: Final = 32_000
"""For a model the catalogue does not describe: less than any current model offers."""


class Turn(Protocol):
    """A stored message, as far as a prompt cares (``schema.objects.Message`` is one)."""

    @property
    def role(self) -> str: ...

    @property
    def content(self) -> str: ...


@dataclass(frozen=True)
class Prompt:
    system: str | None
    messages: list[ChatMessage]
    """The kept history, then the new message."""
    dropped: int
    """History messages left out for lack of room."""
    estimated_tokens: int
    """The estimated size of the system prompt and the messages."""


def system_prompt(
    tenant_system: str | None, personality: str | None, agent_system: str | None
) -> str | None:
    """The combined system prompt, or None when every part is empty."""
    parts = [p.strip() for p in (tenant_system, personality, agent_system) if p and p.strip()]
    return "\n\n".join(parts) or None


def assemble(
    message: str,
    *,
    history: Sequence[Turn] = (),
    tenant_system: str | None = None,
    personality: str | None = None,
    agent_system: str | None = None,
    context_window: int,
    max_output_tokens: int = 1024,
    estimate: Callable[[str], int] = estimate_tokens,
) -> Prompt:
    """The prompt for ``message`` after ``history`` (oldest first). See the module."""
    system = system_prompt(tenant_system, personality, agent_system)
    fixed = (estimate(system) if system else 0) + estimate(message) + MESSAGE_OVERHEAD
    budget = context_window - max_output_tokens - fixed
    if budget < 0:
        raise PromptTooLong(
            f"the message and system prompt need about {fixed} tokens, more than the "
            f"{context_window - max_output_tokens} the model's context window leaves "
            f"beside a {max_output_tokens}-token reply"
        )
    turns = [
        ChatMessage("user" if t.role == "user" else "assistant", t.content)
        for t in history
        if t.role in ("user", "assistant") and t.content
    ]
    kept: list[ChatMessage] = []
    used = 0
    for turn in reversed(turns):
        cost = estimate(turn.content) + MESSAGE_OVERHEAD
        if used + cost > budget:
            break
        kept.append(turn)
        used += cost
    kept.reverse()
    while kept and kept[0].role != "user":
        used -= estimate(kept[0].content) + MESSAGE_OVERHEAD
        kept.pop(0)
    kept.append(ChatMessage("user", message))
    return Prompt(system, kept, len(turns) - (len(kept) - 1), fixed + used)
