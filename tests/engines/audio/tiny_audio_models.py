"""A tiny acoustic model and vocoder for the ``onnx`` audio engine, built for the tests
(nothing is downloaded or shipped), whose output can be checked by ear-free means.

The acoustic model maps each frame to a 4-channel "mel": channel 0 is the frame's f0
in kHz, channel 1 its loudness (:data:`LOUDNESS`: silence 0, vowels 0.5, consonants
0.1), channels 2-3 a fixed embedding of the phoneme. The vocoder turns that back into
a sine: each frame's f0 and loudness repeated ``hop_size`` times, the phase the running
sum of f0 / sample_rate, ``loudness * sin(2 pi phase)``. So the output's pitch is the
notes', rests are exactly silent and a consonant is quieter than its vowel.

Two variants, one per way the engine feeds the acoustic model:

- ``frames``: ``tokens`` [1, T_frames] per-frame phoneme ids and ``f0`` [1, T_frames]
  (the manifest's ``durations`` is null); the vocoder reads f0 from mel channel 0;
- ``phonemes``: ``tokens`` [1, T_ph], ``durations`` [1, T_ph] and ``f0`` [1, T_frames],
  as DiffSinger's; the graph expands the ids by the durations itself (a frame's
  phoneme is the number of phonemes that end at or before it), and its vocoder takes
  ``f0`` as a second input, as NSF-HiFiGAN's does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

Variant = Literal["frames", "phonemes"]

OPSET = 17
IR_VERSION = 8
SAMPLE_RATE = 24_000
HOP_SIZE = 240
"""100 frames a second."""
N_MELS = 4
PHONEMES = ("SP", "a", "i", "u", "e", "o", "N", "k", "s", "sh", "t", "n", "m", "r", "l", "v")
VOWELS = frozenset({"a", "i", "u", "e", "o", "N"})
LOUDNESS = {"SP": 0.0, **{p: 0.5 if p in VOWELS else 0.1 for p in PHONEMES[1:]}}
VOWEL_LOUDNESS = 0.5
CONSONANT_LOUDNESS = 0.1
CONSONANT_MS = 50


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def _const(name: str, value: Any, dtype: Any = np.int64) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def build_acoustic(variant: Variant = "frames") -> onnx.ModelProto:
    """``tokens`` (+ ``durations``) and ``f0`` -> ``mel`` [1, 4, T]."""
    loudness = np.array([LOUDNESS[p] for p in PHONEMES], dtype=np.float32)
    embedding = np.random.default_rng(3).uniform(-1, 1, (len(PHONEMES), N_MELS - 2))
    init = [
        numpy_helper.from_array(loudness, "loudness"),
        numpy_helper.from_array(embedding.astype(np.float32), "embedding"),
        _const("axis0", [0]),
        _const("axis1", [1]),
        _const("khz", 0.001, np.float32),
    ]
    inputs = [helper.make_tensor_value_info("f0", TensorProto.FLOAT, [1, "frames"])]
    nodes = []
    if variant == "frames":
        inputs.insert(0, helper.make_tensor_value_info("tokens", TensorProto.INT64, [1, "frames"]))
        nodes.append(helper.make_node("Identity", ["tokens"], ["frame_ids"]))
    else:
        inputs[:0] = [
            helper.make_tensor_value_info("tokens", TensorProto.INT64, [1, "phonemes"]),
            helper.make_tensor_value_info("durations", TensorProto.INT64, [1, "phonemes"]),
        ]
        init += [_const("one", 1), _const("zero", 0), _const("one_i", 1)]
        nodes += [
            helper.make_node("CumSum", ["durations", "one"], ["ends"]),  # [1, P]
            helper.make_node("Shape", ["f0"], ["f0_shape"]),
            helper.make_node("Gather", ["f0_shape", "one_i"], ["count"]),  # scalar T
            helper.make_node("Range", ["zero", "count", "one"], ["frame_no"]),  # [T]
            helper.make_node("Unsqueeze", ["frame_no", "axis1"], ["frame_col"]),  # [T, 1]
            helper.make_node("GreaterOrEqual", ["frame_col", "ends"], ["over"]),  # [T, P]
            helper.make_node("Cast", ["over"], ["over_i"], to=TensorProto.INT64),
            helper.make_node("ReduceSum", ["over_i", "axis1"], ["which"], keepdims=0),  # [T]
            helper.make_node("Squeeze", ["tokens", "axis0"], ["token_list"]),  # [P]
            helper.make_node("Gather", ["token_list", "which"], ["ids_t"]),  # [T]
            helper.make_node("Unsqueeze", ["ids_t", "axis0"], ["frame_ids"]),  # [1, T]
        ]
    nodes += [
        helper.make_node("Mul", ["f0", "khz"], ["pitch"]),  # [1, T]
        helper.make_node("Unsqueeze", ["pitch", "axis1"], ["ch0"]),  # [1, 1, T]
        helper.make_node("Gather", ["loudness", "frame_ids"], ["loud"]),
        helper.make_node("Unsqueeze", ["loud", "axis1"], ["ch1"]),
        helper.make_node("Gather", ["embedding", "frame_ids"], ["embedded"]),  # [1, T, 2]
        helper.make_node("Transpose", ["embedded"], ["ch23"], perm=[0, 2, 1]),
        helper.make_node("Concat", ["ch0", "ch1", "ch23"], ["mel"], axis=1),
    ]
    outputs = [helper.make_tensor_value_info("mel", TensorProto.FLOAT, [1, N_MELS, "frames"])]
    return _model(helper.make_graph(nodes, f"acoustic-{variant}", inputs, outputs, init))


def build_vocoder(variant: Variant = "frames") -> onnx.ModelProto:
    """``mel`` [1, 4, T] (+ ``f0`` [1, T]) -> ``waveform`` [1, T * hop]."""
    init = [
        _const("ch0", [0]),
        _const("ch1", [1]),
        _const("ch2", [2]),
        _const("axis1", [1]),
        _const("axis", 1),
        _const("repeat", [1, 1, HOP_SIZE]),
        _const("flat", [1, -1]),
        _const("hz", 1000.0, np.float32),
        _const("per_sample", 1.0 / SAMPLE_RATE, np.float32),
        _const("two_pi", 2 * np.pi, np.float32),
        _const("unit", 1.0, np.float32),
    ]
    inputs = [helper.make_tensor_value_info("mel", TensorProto.FLOAT, [1, N_MELS, "frames"])]
    nodes = [
        helper.make_node("Slice", ["mel", "ch1", "ch2", "axis1"], ["loud"]),  # [1, 1, T]
    ]
    if variant == "frames":
        nodes += [
            helper.make_node("Slice", ["mel", "ch0", "ch1", "axis1"], ["khz"]),
            helper.make_node("Mul", ["khz", "hz"], ["pitch"]),  # [1, 1, T]
        ]
    else:
        inputs.append(helper.make_tensor_value_info("f0", TensorProto.FLOAT, [1, "frames"]))
        nodes.append(helper.make_node("Unsqueeze", ["f0", "axis1"], ["pitch"]))
    for name in ("pitch", "loud"):
        nodes += [
            helper.make_node("Transpose", [name], [f"{name}_t"], perm=[0, 2, 1]),  # [1, T, 1]
            helper.make_node("Expand", [f"{name}_t", "repeat"], [f"{name}_x"]),  # [1, T, hop]
            helper.make_node("Reshape", [f"{name}_x", "flat"], [f"{name}_up"]),  # [1, T*hop]
        ]
    nodes += [
        helper.make_node("Mul", ["pitch_up", "per_sample"], ["step"]),
        helper.make_node("CumSum", ["step", "axis"], ["cycles"]),
        helper.make_node("Mod", ["cycles", "unit"], ["phase"], fmod=1),
        helper.make_node("Mul", ["phase", "two_pi"], ["angle"]),
        helper.make_node("Sin", ["angle"], ["sine"]),
        helper.make_node("Mul", ["sine", "loud_up"], ["waveform"]),
    ]
    outputs = [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, [1, "samples"])]
    return _model(helper.make_graph(nodes, f"vocoder-{variant}", inputs, outputs, init))


def manifest(variant: Variant = "frames", **overrides: Any) -> dict[str, Any]:
    """The manifest of :func:`write_model_dir`'s directory, with top-level
    ``overrides``."""
    return {
        "sample_rate": SAMPLE_RATE,
        "hop_size": HOP_SIZE,
        "n_mels": N_MELS,
        "phonemes": list(PHONEMES),
        "silence": "SP",
        "consonant_ms": CONSONANT_MS,
        "acoustic": {
            "file": "acoustic.onnx",
            "phonemes": "tokens",
            "durations": None if variant == "frames" else "durations",
            "f0": "f0",
            "mel": "mel",
        },
        "vocoder": {
            "file": "vocoder.onnx",
            "mel": "mel",
            "f0": None if variant == "frames" else "f0",
            "waveform": "waveform",
        },
        **overrides,
    }


def write_model_dir(directory: Path, variant: Variant = "frames", **overrides: Any) -> Path:
    """``manifest.json``, ``acoustic.onnx`` and ``vocoder.onnx`` in ``directory``
    (created), which is returned: what ``YAMABIKO_AUDIO_ONNX_MODEL_DIR`` names."""
    directory.mkdir(parents=True, exist_ok=True)
    onnx.save(build_acoustic(variant), str(directory / "acoustic.onnx"))
    onnx.save(build_vocoder(variant), str(directory / "vocoder.onnx"))
    text = json.dumps(manifest(variant, **overrides), ensure_ascii=False, indent=2)
    (directory / "manifest.json").write_text(text, encoding="utf-8")
    return directory


__all__: Sequence[str] = [
    "CONSONANT_LOUDNESS",
    "HOP_SIZE",
    "PHONEMES",
    "SAMPLE_RATE",
    "VOWEL_LOUDNESS",
    "build_acoustic",
    "build_vocoder",
    "manifest",
    "write_model_dir",
]
