"""Prompt assembly: the system prompt's parts, history trimmed oldest first."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from yamabiko.engines.llm import ChatMessage, PromptTooLong, assemble, system_prompt
from yamabiko.engines.llm.prompt import MESSAGE_OVERHEAD


@dataclass
class Stored:
    role: str
    content: str


def turn(role: str, tokens: int, tag: str = "") -> Stored:
    """A message whose estimate is ``tokens`` (4 characters each)."""
    return Stored(role, (tag + "x" * (4 * tokens))[: 4 * tokens])


def size(tokens: int) -> int:
    return tokens + MESSAGE_OVERHEAD


def test_the_system_prompt_is_tenant_then_personality_then_agent() -> None:
    assert system_prompt("Be safe.", "Warm and concise.", "You mix records.") == (
        "Be safe.\n\nWarm and concise.\n\nYou mix records."
    )
    assert system_prompt(None, "  ", "Only me. ") == "Only me."
    assert system_prompt(None, None, None) is None
    assert system_prompt("", "", "") is None


def test_everything_fits_in_a_large_window() -> None:
    history = [Stored("user", "hi"), Stored("assistant", "hello")]
    prompt = assemble(
        "next",
        history=history,
        tenant_system="T",
        personality="P",
        agent_system="A",
        context_window=10_000,
    )
    assert prompt.system == "T\n\nP\n\nA"
    assert prompt.messages == [
        ChatMessage("user", "hi"),
        ChatMessage("assistant", "hello"),
        ChatMessage("user", "next"),
    ]
    assert prompt.dropped == 0
    # "T\n\nP\n\nA" is 7 characters, 2 tokens; "hi" 1, "hello" 2, "next" 1.
    assert prompt.estimated_tokens == 2 + size(1) + size(2) + size(1)


def test_the_oldest_messages_are_dropped_first() -> None:
    history = [
        turn("user", 10, "u1"),
        turn("assistant", 10, "a1"),
        turn("user", 10, "u2"),
        turn("assistant", 10, "a2"),
    ]
    # Room for the new message and exactly two history messages.
    window = 100 + size(1) + 2 * size(10)
    prompt = assemble("next", history=history, context_window=window, max_output_tokens=100)
    assert [m.content[:2] for m in prompt.messages] == ["u2", "a2", "ne"]
    assert prompt.dropped == 2
    assert prompt.estimated_tokens <= window - 100


def test_the_kept_history_is_contiguous_even_if_an_older_message_would_fit() -> None:
    history = [turn("user", 1, "u1"), turn("assistant", 50, "a1"), turn("user", 10, "u2")]
    window = size(1) + size(10) + size(1) + 5
    prompt = assemble("next", history=history, context_window=window, max_output_tokens=0)
    assert [m.content[:2] for m in prompt.messages] == ["u2", "ne"]


def test_the_history_starts_with_a_user_message() -> None:
    history = [turn("user", 10, "u1"), turn("assistant", 10, "a1"), turn("user", 1, "u2")]
    window = size(1) + size(10) + size(1) + size(1)  # a1 and u2 fit, u1 does not
    prompt = assemble("next", history=history, context_window=window, max_output_tokens=0)
    assert [m.role for m in prompt.messages] == ["user", "user"]
    assert prompt.dropped == 2


def test_only_user_and_assistant_messages_with_text_are_sent() -> None:
    history = [
        Stored("system", "old instructions"),
        Stored("user", "q"),
        Stored("tool", "result"),
        Stored("assistant", ""),
        Stored("assistant", "a"),
    ]
    prompt = assemble("next", history=history, context_window=1000, max_output_tokens=100)
    assert prompt.messages == [
        ChatMessage("user", "q"),
        ChatMessage("assistant", "a"),
        ChatMessage("user", "next"),
    ]


def test_a_message_that_cannot_fit_is_refused() -> None:
    with pytest.raises(PromptTooLong, match="context window") as caught:
        assemble("x" * 4000, context_window=1000, max_output_tokens=100)
    assert not caught.value.retryable


def test_no_history_at_all() -> None:
    prompt = assemble("only this", context_window=100, max_output_tokens=10)
    assert prompt.system is None
    assert prompt.messages == [ChatMessage("user", "only this")]
    assert prompt.dropped == 0


def test_a_custom_estimate_is_used() -> None:
    def words(text: str) -> int:
        return len(text.split())

    history = [Stored("user", "a b c d"), Stored("assistant", "e f")]
    # Words: "one two three" 3 + 4, "e f" 2 + 4; "a b c d" (4 + 4) does not fit.
    prompt = assemble(
        "one two three",
        history=history,
        context_window=7 + 6 + 7,
        max_output_tokens=0,
        estimate=words,
    )
    assert prompt.messages == [ChatMessage("user", "one two three")]
    assert prompt.dropped == 2
    assert prompt.estimated_tokens == 7
