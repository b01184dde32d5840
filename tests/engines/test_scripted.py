"""The scripted engine: rules from a JSON Lines file, matched on the last user message."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.engines.conftest import FAST_RETRY
from yamabiko.engines.llm import (
    ChatMessage,
    EngineRegistry,
    ScriptError,
    TextDelta,
    UnknownModel,
    collect,
)
from yamabiko.engines.llm.scripted import Script, ScriptSyntaxError, split_words

RULES = [
    {"pattern": "(?i)\\bhello\\b", "reply": "Hi! What are you working on?"},
    {"pattern": "tokens", "tokens": ["Exactly", " these", " deltas"]},
    {"pattern": "slow", "reply": "one two three four", "delayMs": 5},
    {"pattern": "cut", "reply": "cut short", "finish": "length"},
    {"pattern": "midway", "reply": "half of an answer", "error": {"afterTokens": 2}},
    {"pattern": "flaky", "reply": "x", "error": {"message": "outage", "retryable": True}},
    {"pattern": "broken", "reply": "x", "error": {"message": "refused"}},
    {"pattern": "hello", "reply": "never reached: the first match wins"},
]


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "sessions" / "demo.jsonl"
    path.parent.mkdir()
    lines = ["# a demo script", ""] + [json.dumps(rule) for rule in RULES]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
async def registry(tmp_path: Path):  # type: ignore[no-untyped-def]
    registry = EngineRegistry({}, retry=FAST_RETRY, scripted_root=tmp_path)
    yield registry
    await registry.aclose()


async def ask(registry: EngineRegistry, text: str, name: str = "scripted/sessions/demo.jsonl"):  # type: ignore[no-untyped-def]
    model = registry.resolve(name)
    return await collect(model.engine.stream(model.request([ChatMessage("user", text)])))


async def test_the_first_matching_rule_answers_word_by_word(
    script: Path, registry: EngineRegistry
) -> None:
    model = registry.resolve("scripted/sessions/demo.jsonl")
    events = [
        e async for e in model.engine.stream(model.request([ChatMessage("user", "HELLO there")]))
    ]
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert deltas == ["Hi!", " What", " are", " you", " working", " on?"]
    assert events[-1].reason == "stop"  # type: ignore[union-attr]
    assert events[-1].usage.output_tokens == 6  # type: ignore[union-attr]


async def test_the_last_user_message_is_the_one_matched(
    script: Path, registry: EngineRegistry
) -> None:
    model = registry.resolve("scripted/sessions/demo.jsonl")
    history = [
        ChatMessage("user", "hello"),
        ChatMessage("assistant", "Hi"),
        ChatMessage("user", "tokens please"),
    ]
    text, _ = await collect(model.engine.stream(model.request(history)))
    assert text == "Exactly these deltas"


async def test_a_rule_can_pace_its_deltas(script: Path, registry: EngineRegistry) -> None:
    started = time.monotonic()
    text, _ = await ask(registry, "slow please")
    assert text == "one two three four"
    assert time.monotonic() - started >= 0.8 * 4 * 0.005  # the loop timers are coarse


async def test_a_rule_can_finish_with_length(script: Path, registry: EngineRegistry) -> None:
    text, finish = await ask(registry, "cut")
    assert (text, finish.reason) == ("cut short", "length")


async def test_a_rule_can_fail_after_some_tokens(script: Path, registry: EngineRegistry) -> None:
    text, finish = await ask(registry, "fail midway")
    assert text == "half of"
    assert finish.reason == "error"
    assert isinstance(finish.error, ScriptError)
    assert finish.error.message == "scripted failure"


async def test_a_failure_before_the_first_token_is_raised_and_retried_if_retryable(
    script: Path, registry: EngineRegistry
) -> None:
    with pytest.raises(ScriptError, match="outage") as caught:
        await ask(registry, "flaky")
    assert caught.value.retryable
    with pytest.raises(ScriptError, match="refused") as caught:
        await ask(registry, "broken")
    assert not caught.value.retryable


async def test_no_matching_rule_is_an_error(tmp_path: Path, registry: EngineRegistry) -> None:
    (tmp_path / "one.jsonl").write_text('{"pattern": "^yes$", "reply": "ok"}\n')
    with pytest.raises(ScriptError, match="no rule"):
        await ask(registry, "no", "scripted/one.jsonl")


async def test_a_rule_without_a_pattern_matches_anything(
    tmp_path: Path, registry: EngineRegistry
) -> None:
    (tmp_path / "any.jsonl").write_text('{"reply": "whatever you say"}\n')
    text, _ = await ask(registry, "anything", "scripted/any.jsonl")
    assert text == "whatever you say"


@pytest.mark.parametrize(
    "line",
    ["{not json", '{"pattern": "("}', '{"reply": 3}', '{"reply": "x", "typo": 1}'],
)
async def test_an_invalid_file_is_the_one_load_error_quoting_nothing(
    tmp_path: Path, registry: EngineRegistry, line: str
) -> None:
    (tmp_path / "bad.jsonl").write_text(line + "\n")
    with pytest.raises(ScriptError) as caught:
        await ask(registry, "hello", "scripted/bad.jsonl")
    assert caught.value.message == "scripted model 'bad.jsonl' cannot be loaded"


def test_the_parser_says_which_line_for_the_tester() -> None:
    with pytest.raises(ScriptSyntaxError, match="line 2") as caught:
        Script.parse('{"reply": "ok"}\n{"typo": 1}\n', "demo")
    assert (caught.value.line, caught.value.kind) == (2, "ValidationError")


async def test_every_load_failure_is_the_same_error(
    tmp_path: Path, registry: EngineRegistry
) -> None:
    outside = tmp_path.parent / "outside.jsonl"
    outside.write_text('{"reply": "leak"}\n')
    unreadable = tmp_path / "locked.jsonl"
    unreadable.write_bytes(b"\xff\xfe not utf-8")
    (tmp_path / "big.jsonl").write_text('{"reply": "x"}\n' * 100_000)
    names = [
        "../outside.jsonl", str(outside), "missing.jsonl", "locked.jsonl", "big.jsonl", ".",
    ]  # fmt: skip
    for name in names:
        with pytest.raises(ScriptError) as caught:
            await ask(registry, "hello", f"scripted/{name}")
        assert caught.value.message == f"scripted model {name!r} cannot be loaded"


async def test_without_a_scripts_directory_there_are_no_scripted_models(tmp_path: Path) -> None:
    (tmp_path / "here.jsonl").write_text('{"reply": "x"}\n')
    registry = EngineRegistry({}, retry=FAST_RETRY)
    try:
        with pytest.raises(UnknownModel, match="scripted models are off"):
            registry.resolve("scripted/here.jsonl")
    finally:
        await registry.aclose()


async def test_an_edited_file_is_read_again(tmp_path: Path, registry: EngineRegistry) -> None:
    path = tmp_path / "live.jsonl"
    path.write_text('{"reply": "first"}\n')
    assert (await ask(registry, "x", "scripted/live.jsonl"))[0] == "first"
    path.write_text('{"reply": "second version"}\n')
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert (await ask(registry, "x", "scripted/live.jsonl"))[0] == "second version"


def test_words_split_back_into_the_text() -> None:
    for text in ["", " ", "one", "  lead and trail  ", "a\nb\tc"]:
        assert "".join(split_words(text)) == text
    assert split_words(" a b") == [" a", " b"]
