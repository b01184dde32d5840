"""The ``onnx`` ghost-text engine: any causal LM exported to ONNX, with its tokenizer.

Model directory::

    <model_dir>/
        model.onnx              the decoder (its external weights, ``model.onnx_data``,
                                next to it, as ONNX expects)
        tokenizer.json          the HuggingFace ``tokenizers`` file
        config.json             optional: ``eos_token_id``, an id or a list of ids
        generation_config.json  optional: ``eos_token_id`` too

That is the layout of an Optimum export (``optimum-cli export onnx --task
text-generation-with-past``) with the other files left out or ignored.

The graph. Inputs ``input_ids`` ``[batch, sequence]`` (int64 or int32) and, when the
graph has them, ``attention_mask`` ``[batch, past + sequence]`` (all ones),
``position_ids`` ``[batch, sequence]`` and ``token_type_ids`` (zeros); output ``logits``
``[batch, sequence or 1, vocab]``. A graph with past key values has inputs
``past_key_values.{i}.key|value`` and outputs ``present.{i}.key|value``: batch first,
one symbolic sequence axis, the other axes fixed (``[batch, heads, past, head_dim]``).
The first step feeds the prompt with empty pasts (sequence length 0), each later step
one token and the presents of the step before. Without pasts every step reruns the whole
sequence. A graph that needs any other input is refused when it loads.

Decoding. The prompt is the tail of the text before the cursor (at most
``context_tokens`` tokens, plus the tokens the tokenizer's post-processor puts first,
such as a BOS). The ``max_items`` likeliest first tokens are each continued greedily, in
one batch, until an end-of-sequence token (``eos_token_id``, every special added token
and the model's unknown token), a line break, ``max_chars`` characters or
``max_new_tokens`` tokens. A suggestion's text is the decoded prompt-and-continuation
minus the decoded prompt, so byte-level and ``▁``-prefix tokenizers give exactly the
characters to insert, leading space included; it is cut back to a word boundary when
``max_chars`` falls inside a
word. Its score is the probability of its first token.

Threads. Loading and inference run in worker threads (``anyio.to_thread``), never on the
event loop; one ``InferenceSession`` serves every request (``run`` is thread-safe).
Cancelling a ``suggest`` abandons its thread, which stops at its next decoding step.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import anyio
import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Tokenizer

from yamabiko.engines.ghost.base import (
    Count,
    GhostEngineError,
    GhostRequest,
    GhostSuggestion,
    PersonalCounts,
)
from yamabiko.engines.once import LoadOnce

NAME: Final = "onnx"
MODEL_FILE: Final = "model.onnx"
TOKENIZER_FILE: Final = "tokenizer.json"
CONFIG_FILES: Final = ("config.json", "generation_config.json")

_log = logging.getLogger(__name__)

_PAST = re.compile(r"past_key_values\.(\d+)\.(key|value)")
_FED = frozenset({"input_ids", "attention_mask", "position_ids", "token_type_ids"})
_DTYPES: Final[dict[str, type[np.generic]]] = {
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
}
_LINE_BREAKS = re.compile(r"[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")
_ANCHOR_TOKENS = 8
"""Prompt tokens decoded ahead of the continuation: enough context for the decoder to
render the continuation's first token as it would inside the text (its space)."""
_CHARS_PER_TOKEN = 8
"""The text window tokenized is ``context_tokens`` times this many characters."""

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class _Past:
    input: str
    output: str
    dtype: type[np.generic]
    shape: tuple[int, ...]
    """The input's shape with batch 1 and sequence length 0."""


class _Model:
    """A loaded model directory: the session, the tokenizer and how to feed them.
    Immutable once built; shared by every request."""

    def __init__(self, directory: Path, *, threads: int, providers: Sequence[str]) -> None:
        model_path, tokenizer_path = directory / MODEL_FILE, directory / TOKENIZER_FILE
        if not directory.is_dir():
            raise GhostEngineError("onnx ghost engine: the model directory does not exist")
        for path in (model_path, tokenizer_path):
            if not path.is_file():
                raise GhostEngineError(f"onnx ghost engine: no {path.name} in the model directory")
        try:
            self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as exc:
            raise GhostEngineError(f"onnx ghost engine: {TOKENIZER_FILE} will not load") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: ORT's warnings go to stderr
        try:
            self.session = ort.InferenceSession(
                str(model_path), sess_options=options, providers=list(providers)
            )
        except Exception as exc:
            raise GhostEngineError(f"onnx ghost engine: {MODEL_FILE} will not load") from exc
        self._read_graph()
        self.stop_ids = self._stop_ids(directory)
        self.prefix_ids = self._prefix_ids()

    def _read_graph(self) -> None:
        inputs = {arg.name: arg for arg in self.session.get_inputs()}
        outputs = {arg.name for arg in self.session.get_outputs()}
        if "input_ids" not in inputs:
            raise GhostEngineError("onnx ghost engine: the model has no input_ids input")
        if "logits" not in outputs:
            raise GhostEngineError("onnx ghost engine: the model has no logits output")
        self.dtypes = {
            name: _DTYPES.get(arg.type, np.int64) for name, arg in inputs.items() if name in _FED
        }
        pasts = []
        for name, arg in inputs.items():
            match = _PAST.fullmatch(name)
            if match is None:
                continue
            output = f"present.{match[1]}.{match[2]}"
            if output not in outputs:
                raise GhostEngineError(f"onnx ghost engine: the model has {name} but no {output}")
            if arg.type not in _DTYPES:
                raise GhostEngineError(f"onnx ghost engine: {name} has type {arg.type}")
            pasts.append(_Past(name, output, _DTYPES[arg.type], _empty_shape(name, arg.shape)))
        self.pasts = tuple(pasts)
        unfed = sorted(set(inputs) - _FED - {p.input for p in self.pasts})
        if unfed:
            raise GhostEngineError(
                f"onnx ghost engine: the model needs inputs this engine does not feed: "
                f"{', '.join(unfed)}"
            )
        self.outputs = ["logits", *(p.output for p in self.pasts)]

    def _stop_ids(self, directory: Path) -> frozenset[int]:
        stops = {i for i, t in self.tokenizer.get_added_tokens_decoder().items() if t.special}
        # The unknown token: a model that predicts it has nothing to suggest.
        unk = getattr(self.tokenizer.model, "unk_token", None)
        unk_id = self.tokenizer.token_to_id(unk) if isinstance(unk, str) else None
        if unk_id is not None:
            stops.add(unk_id)
        for name in CONFIG_FILES:
            try:
                config = json.loads((directory / name).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            eos = config.get("eos_token_id") if isinstance(config, dict) else None
            ids = eos if isinstance(eos, list) else [eos]
            stops.update(i for i in ids if isinstance(i, int))
        return frozenset(stops)

    def _prefix_ids(self) -> tuple[int, ...]:
        """The ids the post-processor puts before a text (a BOS), found by encoding one
        character with and without special tokens; never its suffix (an EOS would end
        the continuation before it began)."""
        plain = self.tokenizer.encode("a", add_special_tokens=False).ids
        full = self.tokenizer.encode("a").ids
        for start in range(len(full) - len(plain) + 1):
            if full[start : start + len(plain)] == plain:
                return tuple(full[:start])
        return ()

    def forward(
        self, ids: IntArray, past_length: int, past: list[npt.NDArray[Any]] | None
    ) -> tuple[FloatArray, list[npt.NDArray[Any]]]:
        """The last position's logits ``[batch, vocab]`` and the presents (empty for a
        model without pasts; ``past`` None: empty pasts)."""
        batch, length = ids.shape
        feed: dict[str, npt.NDArray[Any]] = {"input_ids": ids.astype(self.dtypes["input_ids"])}
        if "attention_mask" in self.dtypes:
            shape = (batch, past_length + length)
            feed["attention_mask"] = np.ones(shape, dtype=self.dtypes["attention_mask"])
        if "position_ids" in self.dtypes:
            positions = np.arange(past_length, past_length + length, dtype=np.int64)
            feed["position_ids"] = np.tile(positions, (batch, 1)).astype(
                self.dtypes["position_ids"]
            )
        if "token_type_ids" in self.dtypes:
            feed["token_type_ids"] = np.zeros_like(ids, dtype=self.dtypes["token_type_ids"])
        if past is None:
            past = [np.zeros((batch, *p.shape[1:]), dtype=p.dtype) for p in self.pasts]
        feed.update((p.input, array) for p, array in zip(self.pasts, past, strict=True))
        logits, *presents = self.session.run(self.outputs, feed)
        return np.asarray(logits)[:, -1, :].astype(np.float32), presents

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)


def _empty_shape(name: str, shape: Sequence[int | str | None]) -> tuple[int, ...]:
    """``shape`` with batch 1 and the one symbolic axis after it (the sequence) 0."""
    symbolic = [axis for axis, dim in enumerate(shape) if axis > 0 and not isinstance(dim, int)]
    if len(symbolic) > 1:  # ``past_sequence_length`` among other symbolic dims
        symbolic = [a for a in symbolic if any(w in str(shape[a]) for w in ("seq", "past"))]
    if len(shape) < 2 or len(symbolic) != 1:
        raise GhostEngineError(f"onnx ghost engine: cannot tell the sequence axis of {name}")
    empty = [1]
    for axis, dim in enumerate(shape[1:], start=1):
        if axis == symbolic[0]:
            empty.append(0)
        elif isinstance(dim, int):
            empty.append(dim)
        else:
            raise GhostEngineError(f"onnx ghost engine: {name} has a symbolic axis {dim}")
    return tuple(empty)


class OnnxGhostEngine:
    """Ghost text from a causal LM in ONNX (see the module for the model directory).

    The model loads on first use, in a worker thread, or up front with :meth:`load`
    (async) or :meth:`open` (blocking). A directory that will not load raises
    :class:`GhostEngineError` from then on: build a new engine to retry.
    """

    name: str = NAME

    def __init__(
        self,
        model_dir: str | Path,
        *,
        max_new_tokens: int = 16,
        context_tokens: int = 128,
        threads: int = 2,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> None:
        """``max_new_tokens`` bounds each suggestion, ``context_tokens`` the prompt;
        ``threads`` is ONNX Runtime's intra-op thread count (0: one per core)."""
        if max_new_tokens < 1 or context_tokens < 1 or threads < 0:
            raise ValueError("max_new_tokens and context_tokens must be positive, threads >= 0")
        self.model_dir = Path(model_dir)
        self.max_new_tokens = max_new_tokens
        self.context_tokens = context_tokens
        self.threads = threads
        self.providers = tuple(providers)
        self._model = LoadOnce(
            lambda: _Model(self.model_dir, threads=self.threads, providers=self.providers),
            error_type=GhostEngineError,
            fallback="onnx ghost engine: the model will not load",
            where=self.model_dir,
        )

    @classmethod
    def open(cls, model_dir: str | Path, **options: Any) -> OnnxGhostEngine:
        """An engine with its model loaded (blocking: at start-up or in a thread)."""
        engine = cls(model_dir, **options)
        engine._model.now()
        return engine

    async def load(self) -> None:
        """Load the model now, off the event loop; raises :class:`GhostEngineError`."""
        await self._loaded()

    async def suggest(
        self, request: GhostRequest, personal: PersonalCounts | None = None
    ) -> list[GhostSuggestion]:
        if request.max_items < 1 or request.max_chars < 1 or not request.before:
            return []
        model = await self._loaded()
        stop = threading.Event()
        try:
            return await anyio.to_thread.run_sync(
                self._suggest, model, request, stop, abandon_on_cancel=True
            )
        finally:
            stop.set()  # an abandoned thread stops at its next step

    def learn(self, request: GhostRequest, accepted: str) -> list[Count]:
        return []

    async def _loaded(self) -> _Model:
        return await self._model.get()

    def _suggest(
        self, model: _Model, request: GhostRequest, stop: threading.Event
    ) -> list[GhostSuggestion]:
        try:
            return _Decoding(model, request, self.context_tokens, self.max_new_tokens, stop).run()
        except Exception:
            # Never the text: the traceback comes from the runtime, the request's repr
            # has no text.
            _log.exception("onnx ghost engine: inference failed for %r", request)
            return []


class _Decoding:
    """One request's greedy decoding of ``max_items`` branches in lock-step (the same
    length at every step, so one batch with no padding)."""

    def __init__(
        self,
        model: _Model,
        request: GhostRequest,
        context_tokens: int,
        max_new_tokens: int,
        stop: threading.Event,
    ) -> None:
        self.model = model
        self.request = request
        self.max_new_tokens = max_new_tokens
        self.stop = stop
        window = request.before[-context_tokens * _CHARS_PER_TOKEN :]
        ids = model.tokenizer.encode(window, add_special_tokens=False).ids[-context_tokens:]
        self.prompt = [*model.prefix_ids, *ids] if ids else []
        self.anchor_ids = self.prompt[-_ANCHOR_TOKENS:]
        self.anchor = model.decode(self.anchor_ids)
        # A tokenizer that drops whitespace (a whitespace pre-tokenizer) decodes a
        # prompt ending in a space without it; the text already has it.
        self.strip_leading = window[-1:].isspace() and not self.anchor[-1:].isspace()

    def run(self) -> list[GhostSuggestion]:
        if not self.prompt:
            return []
        model = self.model
        logits, past = model.forward(np.array([self.prompt], dtype=np.int64), 0, None)
        probs = _softmax(logits[0])
        first = _top(probs, self.request.max_items)
        count = len(first)
        branches = [[int(token)] for token in first]
        texts = [""] * count
        alive = list(range(count))  # the branches the rows of ``past`` belong to
        if past:
            past = [np.repeat(array, count, axis=0) for array in past]
        while True:
            running = [b for b in alive if self._extend(b, branches[b], texts)]
            if not running or self.stop.is_set():
                break
            if past:
                if len(running) < len(alive):
                    rows = [alive.index(b) for b in running]
                    past = [array[rows] for array in past]
                ids = np.array([[branches[b][-1]] for b in running], dtype=np.int64)
                past_length = len(self.prompt) + len(branches[running[0]]) - 1
                logits, past = model.forward(ids, past_length, past)
            else:
                ids = np.array([self.prompt + branches[b] for b in running], dtype=np.int64)
                logits, _ = model.forward(ids, 0, None)
            for b, token in zip(running, np.argmax(logits, axis=-1), strict=True):
                branches[b].append(int(token))
            alive = running
        return self._suggestions(texts, [float(probs[t]) for t in first])

    def _extend(self, branch: int, tokens: list[int], texts: list[str]) -> bool:
        """Record the branch's text so far; whether to generate another token."""
        ended = tokens[-1] in self.model.stop_ids
        text = self._continuation(tokens[:-1] if ended else tokens)
        texts[branch] = text or ""
        if ended or text is None or _LINE_BREAKS.search(text):
            return False
        return len(text) <= self.request.max_chars and len(tokens) < self.max_new_tokens

    def _continuation(self, tokens: list[int]) -> str | None:
        """What ``tokens`` add after the prompt; None if decoding them changes the
        prompt's own text (nothing can be suggested then)."""
        full = self.model.decode(self.anchor_ids + tokens)
        if not full.startswith(self.anchor):
            return None
        # A trailing U+FFFD is a character whose remaining bytes are not generated yet.
        return full[len(self.anchor) :].rstrip("\ufffd")

    def _suggestions(self, texts: list[str], scores: list[float]) -> list[GhostSuggestion]:
        max_chars = self.request.max_chars
        seen: set[str] = set()
        suggestions = []
        for text, score in zip(texts, scores, strict=True):
            text = _LINE_BREAKS.split(text, maxsplit=1)[0]
            if self.strip_leading:
                text = text.lstrip()
            if len(text) > max_chars:
                cut = text[:max_chars]
                space = max((i for i, c in enumerate(cut) if c.isspace()), default=-1)
                if not text[max_chars].isspace() and space > 0:
                    cut = cut[:space]  # not half a word
                text = cut
            text = text.rstrip()
            if text and text not in seen:
                seen.add(text)
                suggestions.append(GhostSuggestion(text, min(1.0, max(0.0, score))))
        return suggestions


def _top(probs: FloatArray, count: int) -> list[int]:
    """The ``count`` likeliest ids, likeliest first (a partial sort: vocabularies run
    to 150,000 ids)."""
    count = min(count, probs.shape[0])
    ids = np.argpartition(-probs, count - 1)[:count]
    return [int(i) for i in sorted(ids, key=lambda i: (-probs[i], i))]


def _softmax(logits: FloatArray) -> FloatArray:
    shifted = np.exp(logits - logits.max())
    probs: FloatArray = shifted / shifted.sum()
    return probs
