"""The onnx ghost engine on tiny bigram models built here (see :mod:`.tiny_model`): the
known greedy continuation with and without past key values, the request's limits, model
directories that will not load, cancellation and odd text."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import onnx
import pytest
from onnx import TensorProto, helper

from tests.engines.ghost.tiny_model import (
    IR_VERSION,
    OPSET,
    TokenizerKind,
    Variant,
    build_tokenizer,
    words_after,
    write_model_dir,
)
from yamabiko.engines.ghost.base import GhostEngineError, GhostRequest, GhostSuggestion
from yamabiko.engines.ghost.onnx import OnnxGhostEngine

KINDS: list[TokenizerKind] = ["bytes", "metaspace", "words"]
VARIANTS: list[Variant] = ["plain", "past"]
WAIT = 5.0
"""Seconds any wait in these tests may take before it fails."""

ModelDir = Callable[..., Path]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> ModelDir:
    """A model directory per set of :func:`write_model_dir` options, built once."""
    built: dict[str, Path] = {}

    def get(kind: TokenizerKind = "bytes", variant: Variant = "plain", **options: Any) -> Path:
        key = repr((kind, variant, sorted(options.items())))
        if key not in built:
            directory = tmp_path_factory.mktemp(f"{kind}-{variant}")
            built[key] = write_model_dir(directory, kind, variant, **options)
        return built[key]

    return get


def at_end(text: str, **options: Any) -> GhostRequest:
    return GhostRequest(text=text, cursor=len(text), **options)


def check(request: GhostRequest, suggestions: list[GhostSuggestion]) -> list[GhostSuggestion]:
    """The guarantees of ``GhostEngine.suggest``, for any answer."""
    texts = [s.text for s in suggestions]
    assert len(suggestions) <= request.max_items
    assert len(set(texts)) == len(texts)
    assert all(text and len(text) <= request.max_chars for text in texts)
    assert all(0.0 <= s.score <= 1.0 for s in suggestions)
    assert [s.score for s in suggestions] == sorted((s.score for s in suggestions), reverse=True)
    return suggestions


async def suggest(engine: OnnxGhostEngine, request: GhostRequest) -> list[str]:
    with anyio.fail_after(WAIT):
        return [s.text for s in check(request, await engine.suggest(request))]


# The known continuation.


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", KINDS)
async def test_it_continues_greedily(
    model_dir: ModelDir, kind: TokenizerKind, variant: Variant
) -> None:
    engine = OnnxGhostEngine(model_dir(kind, variant))
    assert await suggest(engine, at_end("the kick", max_items=1)) == [
        " drum hits hard on every beat"
    ]
    # Mid-document: only the text before the cursor counts.
    text = "the kick and more"
    request = GhostRequest(text=text, cursor=len("the kick"), max_items=1)
    assert await suggest(engine, request) == [" drum hits hard on every beat"]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", ["bytes", "metaspace"])
async def test_a_line_break_ends_the_suggestion(
    model_dir: ModelDir, kind: TokenizerKind, variant: Variant
) -> None:
    # The model goes on past the line break (``leads`` -> ``\n`` -> ``the``).
    engine = OnnxGhostEngine(model_dir(kind, variant))
    assert await suggest(engine, at_end("warm pads", max_items=1)) == [words_after("warm pads")]
    assert words_after("warm pads") == " swell slowly under bright leads"


@pytest.mark.parametrize("variant", VARIANTS)
async def test_the_next_likeliest_first_tokens_follow(
    model_dir: ModelDir, variant: Variant
) -> None:
    engine = OnnxGhostEngine(model_dir("bytes", variant))
    suggestions = await engine.suggest(at_end("warm pads", max_items=3))
    check(at_end("warm pads", max_items=3), suggestions)
    # ``strings`` is the model's second choice after ``pads``, then the end (its
    # successor); the third is one of the many tokens the model gives an even chance
    # (``<|endoftext|>``, the lowest id, which suggests nothing; any other, something).
    assert [s.text for s in suggestions[:2]] == [words_after("warm pads"), " strings"]
    assert suggestions[0].score > 0.9 > 0.1 > suggestions[1].score
    assert len(suggestions) in (2, 3)
    assert await suggest(engine, at_end("warm pads", max_items=2)) == [
        words_after("warm pads"),
        " strings",
    ]


async def test_a_tokenizer_that_drops_spaces_gets_no_second_space(model_dir: ModelDir) -> None:
    # The word-level tokenizer forgets the text's trailing space: the suggestion must
    # not bring another.
    engine = OnnxGhostEngine(model_dir("words", "past"))
    assert await suggest(engine, at_end("the kick ", max_items=1)) == [
        "drum hits hard on every beat"
    ]
    # A byte-level tokenizer keeps the space as a token of its own.
    engine = OnnxGhostEngine(model_dir("bytes", "past"))
    assert all(not s.startswith("  ") for s in await suggest(engine, at_end("the kick ")))


@pytest.mark.parametrize("variant", VARIANTS)
async def test_a_bos_and_eos_template_is_handled(model_dir: ModelDir, variant: Variant) -> None:
    # The post-processor's ``<s>`` goes first, its ``</s>`` never: it would end the
    # continuation before it began.
    engine = OnnxGhostEngine(model_dir("metaspace", variant, template=True))
    assert await suggest(engine, at_end("the kick", max_items=1)) == [
        " drum hits hard on every beat"
    ]


# The limits.


@pytest.mark.parametrize("variant", VARIANTS)
async def test_max_chars_cuts_at_a_word_boundary(model_dir: ModelDir, variant: Variant) -> None:
    engine = OnnxGhostEngine(model_dir("bytes", variant))
    assert await suggest(engine, at_end("the kick", max_items=1, max_chars=12)) == [" drum hits"]
    assert await suggest(engine, at_end("the kick", max_items=1, max_chars=10)) == [" drum hits"]
    # No word boundary to cut at: the first characters.
    assert await suggest(engine, at_end("the kick", max_items=1, max_chars=3)) == [" dr"]


async def test_max_new_tokens_bounds_a_suggestion(model_dir: ModelDir) -> None:
    engine = OnnxGhostEngine(model_dir("bytes", "past"), max_new_tokens=2)
    assert await suggest(engine, at_end("the kick", max_items=1)) == [" drum hits"]


async def test_context_tokens_bounds_the_prompt(model_dir: ModelDir) -> None:
    # A bigram model only looks at the last token, so the answer is the same.
    engine = OnnxGhostEngine(model_dir("bytes", "past"), context_tokens=1)
    long_text = "warm pads " * 100 + "the kick"
    assert await suggest(engine, at_end(long_text, max_items=1)) == [
        " drum hits hard on every beat"
    ]


async def test_the_end_of_sequence_token_ends_it(model_dir: ModelDir) -> None:
    engine = OnnxGhostEngine(model_dir("bytes", "past"))
    # ``beat`` predicts the end: nothing to suggest.
    assert await suggest(engine, at_end("on every beat", max_items=1)) == []
    assert await suggest(engine, at_end("on every", max_items=1)) == [" beat"]


async def test_config_eos_token_id_ends_it(model_dir: ModelDir) -> None:
    tokenizer = build_tokenizer("bytes")
    hard = tokenizer.token_to_id("Ġhard")
    directory = model_dir("bytes", "past", config={"eos_token_id": [hard, 0]})
    engine = OnnxGhostEngine(directory)
    assert await suggest(engine, at_end("the kick", max_items=1)) == [" drum hits"]


async def test_zero_items_or_chars_ask_for_nothing(model_dir: ModelDir) -> None:
    engine = OnnxGhostEngine(model_dir())
    assert await engine.suggest(at_end("the kick", max_items=0)) == []
    assert await engine.suggest(at_end("the kick", max_chars=0)) == []


# Odd text.


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "text",
    ["", " ", "\n", "🥁🎹", "the kick 🥁", "キックドラム", "\x00\ufffd", "the ki", "a" * 5000],
    ids=[
        "empty",
        "space",
        "newline",
        "emoji",
        "emoji-after",
        "japanese",
        "odd",
        "mid-word",
        "long",
    ],
)
async def test_odd_text_never_raises(
    model_dir: ModelDir, kind: TokenizerKind, variant: Variant, text: str
) -> None:
    engine = OnnxGhostEngine(model_dir(kind, variant))
    await suggest(engine, at_end(text))
    assert await suggest(engine, GhostRequest(text=text, cursor=0)) == []


async def test_empty_text_gives_nothing(model_dir: ModelDir) -> None:
    engine = OnnxGhostEngine(model_dir("bytes", "past"))
    assert await engine.suggest(at_end("")) == []


async def test_a_failing_run_gives_nothing_and_logs_no_text(
    model_dir: ModelDir, caplog: pytest.LogCaptureFixture
) -> None:
    engine = OnnxGhostEngine.open(model_dir("bytes", "past"))
    gate = Gate(engine, fail=True)
    with caplog.at_level(logging.ERROR):
        assert await suggest(engine, at_end("my secret lyric")) == []
    assert gate.calls == 1
    assert "inference failed" in caplog.text
    assert "secret" not in caplog.text


# Model directories that will not load.


async def test_a_missing_model_dir_raises(tmp_path: Path) -> None:
    engine = OnnxGhostEngine(tmp_path / "nowhere")  # constructing it does no I/O
    with pytest.raises(GhostEngineError, match="does not exist"):
        await engine.suggest(at_end("the kick"))
    # The failure sticks (a broken model is not reloaded on every keystroke).
    with pytest.raises(GhostEngineError, match="does not exist"):
        await engine.load()
    with pytest.raises(GhostEngineError, match="does not exist"):
        OnnxGhostEngine.open(tmp_path / "nowhere")


def broken_dir(tmp_path: Path, model_dir: ModelDir, broken: str) -> Path:
    source = model_dir()
    directory = tmp_path / broken
    directory.mkdir()
    for name in ("model.onnx", "tokenizer.json"):
        (directory / name).write_bytes((source / name).read_bytes())
    if broken == "no-model":
        (directory / "model.onnx").unlink()
    elif broken == "no-tokenizer":
        (directory / "tokenizer.json").unlink()
    elif broken == "bad-model":
        (directory / "model.onnx").write_bytes(b"not a model")
    elif broken == "bad-tokenizer":
        (directory / "tokenizer.json").write_text("{}")
    else:
        onnx.save(odd_graph(broken), str(directory / "model.onnx"))
    return directory


def odd_graph(broken: str) -> onnx.ModelProto:
    """A graph the engine cannot feed or read."""
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"])
    extra = helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["b", 3])
    past = helper.make_tensor_value_info(
        "past_key_values.0.key", TensorProto.FLOAT, ["b", 2, "p", 4]
    )
    out = helper.make_tensor_value_info("logits", TensorProto.INT64, ["b", "s"])
    scores = helper.make_tensor_value_info("scores", TensorProto.INT64, ["b", "s"])
    inputs, outputs = {
        "no-logits": ([ids], [scores]),
        "needs-more": ([ids, extra], [out]),
        "past-without-present": ([ids, past], [out]),
    }[broken]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input_ids"], [outputs[0].name])], broken, inputs, outputs
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION
    )


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ("no-model", "no model.onnx"),
        ("no-tokenizer", "no tokenizer.json"),
        ("bad-model", "model.onnx will not load"),
        ("bad-tokenizer", "tokenizer.json will not load"),
        ("no-logits", "no logits output"),
        ("needs-more", "does not feed: pixel_values"),
        ("past-without-present", "no present.0.key"),
    ],
)
async def test_a_broken_model_dir_raises(
    tmp_path: Path, model_dir: ModelDir, broken: str, message: str
) -> None:
    engine = OnnxGhostEngine(broken_dir(tmp_path, model_dir, broken))
    with pytest.raises(GhostEngineError, match=message) as caught:
        await engine.load()
    assert str(tmp_path) not in str(caught.value)  # safe to show a client
    with pytest.raises(GhostEngineError, match=message):
        await engine.suggest(at_end("the kick"))


def test_bad_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="positive"):
        OnnxGhostEngine(tmp_path, max_new_tokens=0)


# Threads and cancellation.


class Gate:
    """Wraps the engine's session: each ``run`` says it started, then waits for
    :meth:`open` (or fails, with ``fail``)."""

    def __init__(self, engine: OnnxGhostEngine, *, fail: bool = False, closed: bool = False):
        model = engine._model.now()  # the loaded model (the engine was opened)
        assert model is not None
        self.session = model.session
        model.session = self
        self.fail = fail
        self.calls = 0
        self.started = threading.Event()
        self.opened = threading.Event()
        if not closed:
            self.opened.set()

    def run(self, outputs: list[str], feed: dict[str, Any]) -> Any:
        self.calls += 1
        self.started.set()
        assert self.opened.wait(WAIT)
        if self.fail:
            raise RuntimeError("the runtime failed")
        return self.session.run(outputs, feed)

    def open(self) -> None:
        self.opened.set()


@pytest.fixture
def finished(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set when an engine's worker returns (even one whose result is dropped)."""
    event = threading.Event()
    original = OnnxGhostEngine._suggest

    def spy(self: OnnxGhostEngine, *args: Any) -> list[GhostSuggestion]:
        try:
            return original(self, *args)
        finally:
            event.set()

    monkeypatch.setattr(OnnxGhostEngine, "_suggest", spy)
    return event


async def test_cancelling_returns_at_once_and_the_thread_stops(
    model_dir: ModelDir, finished: threading.Event
) -> None:
    engine = OnnxGhostEngine.open(model_dir("bytes", "past"))
    gate = Gate(engine, closed=True)
    task = asyncio.create_task(engine.suggest(at_end("the kick")))
    assert await anyio.to_thread.run_sync(gate.started.wait, WAIT)
    task.cancel()
    with anyio.fail_after(1.0):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not finished.is_set()  # the thread is still inside the first step
    gate.open()
    assert await anyio.to_thread.run_sync(finished.wait, WAIT)
    # It stopped after that step instead of generating the rest of the suggestion.
    assert gate.calls == 1


async def test_a_cancelled_first_request_leaves_the_engine_usable(model_dir: ModelDir) -> None:
    engine = OnnxGhostEngine(model_dir("bytes", "past"))
    with anyio.move_on_after(0):
        await engine.suggest(at_end("the kick"))
    # A load it started finishes in its thread; the next request uses it or loads.
    assert await suggest(engine, at_end("the kick", max_items=1)) == [
        " drum hits hard on every beat"
    ]


@pytest.mark.parametrize("variant", VARIANTS)
async def test_concurrent_requests_share_one_session(model_dir: ModelDir, variant: Variant) -> None:
    engine = OnnxGhostEngine(model_dir("bytes", variant))
    await engine.load()
    expected = {
        "the kick": " drum hits hard on every beat",
        "warm pads": " swell slowly under bright leads",
        "on every": " beat",
        "the kick drum": " hits hard on every beat",
    }
    prompts = list(expected) * 8
    results = await asyncio.gather(*(suggest(engine, at_end(p, max_items=1)) for p in prompts))
    assert results == [[expected[p]] for p in prompts]


def test_learn_adds_nothing(model_dir: ModelDir) -> None:
    engine = OnnxGhostEngine(model_dir())
    assert engine.learn(at_end("the kick"), " drum") == []
    assert engine.name == "onnx"
