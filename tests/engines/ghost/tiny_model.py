"""A tiny causal LM with a known greedy continuation, built for the tests (nothing is
downloaded or shipped).

The model is a bigram table: the logits for the next token are row ``t`` of a
``vocab x vocab`` matrix, where ``t`` is the current token. Each token of the training
text predicts the token that follows it there (logit 10), optionally a second choice
(logit 5), and the text's last token predicts the end-of-sequence token. So the greedy
continuation of any prefix of the text (cut at a word boundary) is the rest of the text.

Two graph variants, in the Optimum export convention:

- ``plain``: ``input_ids`` -> ``logits`` only; the engine reruns the whole sequence;
- ``past``: also ``attention_mask``, ``position_ids`` and two layers of
  ``past_key_values.{i}.key|value`` in, ``present.{i}.key|value`` out. The presents are
  the pasts with the new tokens' keys appended (sequence axis 2); the graph multiplies
  them by the attention mask and looks the positions up in a 64-row table, so a
  mask whose length is not the past's plus the new tokens', or a position past 63, makes
  ``run`` fail. That checks the engine feeds the presents back and counts positions.

Tokenizers (``tokenizer.json``): ``bytes`` (GPT-2 style byte-level BPE), ``metaspace``
(SentencePiece style ``▁`` word prefixes) and ``words`` (word level, whitespace
pre-tokenizer, no decoder: decoding joins tokens with spaces). Each has the special
token ``<|endoftext|>``; with ``template`` also ``<s>`` and ``</s>`` around every text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

TokenizerKind = Literal["bytes", "metaspace", "words"]
Variant = Literal["plain", "past"]

EOS = "<|endoftext|>"
BOS, END = "<s>", "</s>"
OPSET = 17
IR_VERSION = 8
"""Opset 17 needs IR version 8; onnxruntime 1.32 loads both."""
LAYERS = 2
HEADS = 2
HEAD_DIM = 4
MAX_POSITIONS = 64

TEXT = "warm pads swell slowly under bright leads\nthe kick drum hits hard on every beat"
"""The training text: no word occurs twice, so each token has one successor."""

SECOND_CHOICE = {"pads": "strings"}
"""Word -> the word the model ranks second after it (then continued greedily)."""


def build_tokenizer(kind: TokenizerKind, text: str = TEXT, *, template: bool = False) -> Tokenizer:
    """``template``: a post-processor that wraps every text in ``<s> ... </s>`` (as
    Llama's adds a BOS, and encoder tokenizers an EOS too)."""
    tokenizer = _base_tokenizer(kind, text)
    if template:
        tokenizer.add_special_tokens([BOS, END])
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A {END}",
            special_tokens=[(t, tokenizer.token_to_id(t)) for t in (BOS, END)],
        )
    return tokenizer


def _base_tokenizer(kind: TokenizerKind, text: str) -> Tokenizer:
    words = sorted(set(text.split()) | set(SECOND_CHOICE.values()))
    # The second choices after a space, as the model produces them.
    corpus = [" ".join([text, *SECOND_CHOICE.values()])] * 4
    if kind == "words":
        vocab = {EOS: 0, "[UNK]": 1} | {w: i + 2 for i, w in enumerate(words)}
        tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
        tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
        tokenizer.add_special_tokens([EOS])
        return tokenizer
    # Enough merges to make every word one token.
    trainer = trainers.BpeTrainer(
        vocab_size=2000,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet() if kind == "bytes" else [],
        show_progress=False,
    )
    if kind == "bytes":
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
    else:
        tokenizer = Tokenizer(models.BPE(unk_token=None))
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
    tokenizer.train_from_iterator(corpus, trainer)
    return tokenizer


def successors(
    tokenizer: Tokenizer, text: str = TEXT, second: dict[str, str] | None = None
) -> tuple[dict[int, int], dict[int, int]]:
    """``token -> next token`` along ``text`` (the last one -> EOS), and ``token -> second
    choice`` for the words in ``second`` (default :data:`SECOND_CHOICE`)."""
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    assert len(set(ids)) == len(ids), "a token repeats: the greedy path would loop"
    eos = tokenizer.token_to_id(EOS)
    assert eos is not None
    following = dict(zip(ids, [*ids[1:], eos], strict=True))
    alternatives: dict[int, int] = {}
    for word, alternative in (SECOND_CHOICE if second is None else second).items():
        # The word's last token as it occurs in the text, after a space.
        (token, *_) = _tail_token(tokenizer, text, word)
        (alt, *rest) = tokenizer.encode(" " + alternative, add_special_tokens=False).ids
        assert not rest, "the second choice must be one token"
        alternatives[token] = alt
        following.setdefault(alt, eos)
    return following, alternatives


def _tail_token(tokenizer: Tokenizer, text: str, word: str) -> list[int]:
    prefix = text[: text.index(" " + word + " ") + len(word) + 1]
    return tokenizer.encode(prefix, add_special_tokens=False).ids[-1:]


def build_model(
    vocab_size: int,
    following: dict[int, int],
    alternatives: dict[int, int] | None = None,
    *,
    variant: Variant = "plain",
) -> onnx.ModelProto:
    table = np.zeros((vocab_size, vocab_size), dtype=np.float32)
    for token, nxt in following.items():
        table[token, nxt] = 10.0
    for token, alt in (alternatives or {}).items():
        table[token, alt] = 5.0
    batch, seq = "batch_size", "sequence_length"
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [batch, seq])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, seq, vocab_size])]
    initializers = [numpy_helper.from_array(table, "table")]
    nodes = [helper.make_node("Gather", ["table", "input_ids"], ["bigram"])]
    if variant == "plain":
        nodes.append(helper.make_node("Identity", ["bigram"], ["logits"]))
    else:
        _add_past(nodes, inputs, outputs, initializers, vocab_size, batch, seq)
    graph = helper.make_graph(nodes, f"tiny-{variant}", inputs, outputs, initializers)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def _add_past(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    initializers: list[onnx.TensorProto],
    vocab_size: int,
    batch: str,
    seq: str,
) -> None:
    total, past = "total_sequence_length", "past_sequence_length"
    inputs += [
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [batch, total]),
        helper.make_tensor_value_info("position_ids", TensorProto.INT64, [batch, seq]),
    ]
    rng = np.random.default_rng(7)
    keys = rng.standard_normal((vocab_size, HEADS, HEAD_DIM)).astype(np.float32)
    positions = np.zeros((MAX_POSITIONS, vocab_size), dtype=np.float32)
    initializers += [
        numpy_helper.from_array(keys, "keys"),
        numpy_helper.from_array(positions, "positions"),
        numpy_helper.from_array(np.array([1, 3], dtype=np.int64), "mask_axes"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
    ]
    nodes += [
        helper.make_node("Gather", ["keys", "input_ids"], ["new_bshd"]),
        helper.make_node("Transpose", ["new_bshd"], ["new"], perm=[0, 2, 1, 3]),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "mask_axes"], ["mask_b1t1"]),
        helper.make_node("Gather", ["positions", "position_ids"], ["by_position"]),
    ]
    checks = ["by_position"]
    for layer in range(LAYERS):
        for kind in ("key", "value"):
            name_in, name_out = f"past_key_values.{layer}.{kind}", f"present.{layer}.{kind}"
            shape_in: list[str | int] = [batch, HEADS, past, HEAD_DIM]
            shape_out: list[str | int] = [batch, HEADS, total, HEAD_DIM]
            inputs.append(helper.make_tensor_value_info(name_in, TensorProto.FLOAT, shape_in))
            outputs.append(helper.make_tensor_value_info(name_out, TensorProto.FLOAT, shape_out))
            nodes += [
                helper.make_node("Concat", [name_in, "new"], [name_out], axis=2),
                helper.make_node("Mul", [name_out, "mask_b1t1"], [f"{name_out}.masked"]),
                helper.make_node(
                    "ReduceSum", [f"{name_out}.masked"], [f"{name_out}.sum"], keepdims=0
                ),
            ]
            checks.append(f"{name_out}.sum")
    # logits = bigram + 0 * (every check): the checks fail loudly or add nothing.
    nodes += [
        helper.make_node("Sum", checks, ["checks"]),
        helper.make_node("Mul", ["checks", "zero"], ["nothing"]),
        helper.make_node("Add", ["bigram", "nothing"], ["logits"]),
    ]


def write_model_dir(
    directory: Path,
    kind: TokenizerKind = "bytes",
    variant: Variant = "plain",
    *,
    text: str = TEXT,
    second: dict[str, str] | None = None,
    template: bool = False,
    config: dict[str, object] | None = None,
) -> Path:
    """``model.onnx`` and ``tokenizer.json`` (and ``config.json`` if given) in
    ``directory``, which is returned."""
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(kind, text, template=template)
    following, alternatives = successors(tokenizer, text, second)
    model = build_model(tokenizer.get_vocab_size(), following, alternatives, variant=variant)
    onnx.save(model, str(directory / "model.onnx"))
    tokenizer.save(str(directory / "tokenizer.json"))
    if config is not None:
        (directory / "config.json").write_text(json.dumps(config))
    return directory


def words_after(prefix: str, text: str = TEXT) -> str:
    """What follows ``prefix`` in ``text`` up to the end of its line."""
    assert text.startswith(prefix)
    return text[len(prefix) :].split("\n", 1)[0]


__all__: Sequence[str] = [
    "BOS",
    "END",
    "EOS",
    "SECOND_CHOICE",
    "TEXT",
    "build_model",
    "build_tokenizer",
    "successors",
    "words_after",
    "write_model_dir",
]
