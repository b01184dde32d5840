"""The ``onnx`` audio engine: notes sung by an acoustic model and a vocoder in ONNX
(DiffSinger / HiFi-GAN style), from a model directory.

Model directory::

    <model_dir>/
        manifest.json     the pipeline (below)
        acoustic.onnx     phonemes, durations and f0 -> mel (any file name: the manifest's)
        vocoder.onnx      mel (and optionally f0) -> waveform

``manifest.json``::

    {
      "sample_rate": 44100,          the vocoder's output rate (Hz)
      "hop_size": 512,               samples per mel frame
      "n_mels": 128,                 mel channels
      "mel_layout": "bmt",           optional: "bmt" = [1, n_mels, T] (default),
                                     "btm" = [1, T, n_mels], for both models
      "phonemes": ["SP", "a", ...],  the inventory: a phoneme's id is its index
      "silence": "SP",               optional (default "SP"): rests, and a closure (っ)
                                     when the inventory has no "cl"
      "vowels": ["a", "i", ...],     optional: default the phonemes spelt with a, e, i,
                                     o, u, y only, and "N"
      "default_vowel": "a",          optional: sung by a first note without a lyric
      "dictionary": {"love": ["l", "a", "v"]},
                                     optional: syllable -> phonemes, tried first
      "consonant_ms": 60,            optional: each consonant's length (at most half a
                                     note for all its consonants together)
      "acoustic": {
        "file": "acoustic.onnx",
        "phonemes": "tokens",        input: int ids [1, T_ph], or [1, T_frames] (below)
        "durations": "durations",    input: frames per phoneme [1, T_ph]; null: the
                                     model takes per-frame ids and no durations
        "f0": "f0",                  input: Hz per frame [1, T_frames], 0 in rests
        "mel": "mel",                output: [1, n_mels, T_frames]
        "constants": {"speedup": 10} optional: other inputs, fed these values
      },
      "vocoder": {
        "file": "vocoder.onnx",
        "mel": "mel",                input: [1, n_mels, T]
        "f0": null,                  optional input: Hz per frame [1, T] (NSF-HiFiGAN)
        "waveform": "waveform"       output: T * hop_size samples (any leading 1s)
      }
    }

Input dtypes are read from the graphs (int64 or int32 ids and durations, float f0).
A graph input the manifest does not name is refused when the directory loads.

Lyrics to phonemes. A note sings its ``lyric``, else the request's ``lyrics`` syllable
at its position (sorted by start; whitespace-separated, kana split into morae, small
kana joined to theirs). A syllable is looked up in ``dictionary``; else kana become
romaji (``しゃ`` -> ``sha``, ``ん`` -> ``n``, ``っ`` -> ``cl``, ``ー`` holds; the table the
``singer`` reads too, :mod:`.kana`) and the letters split into onset, vowel and coda:
the onset is the letters before the first vowel (a, e, i, o, u), the vowel is the
longest prefix of that vowel run in the inventory (else ``default_vowel``), the coda
is the consonant letters after the run.
Onset and coda are matched greedily against the inventory, longest first (``sh``,
``ky``, else ``s``, ``k``...); letters that match nothing are dropped. ``n`` alone is
``N`` when the inventory has it. A lyric of None or ``-`` holds the previous vowel.
This is deliberately simple (no English pronunciation rules): a model with its own
phoneme set wants a ``dictionary``.

Timing. Note times in beats at ``tempo`` become frames (``round(t * sample_rate /
hop_size)``); notes are monophonic: a note is cut where the next one starts. Each onset
and coda consonant gets ``consonant_ms`` inside the note, the vowel the rest; a note
with no vowel shares its frames evenly. Gaps are rests: the silence phoneme at f0 0.
Notes shorter than a frame are dropped; velocity is not used (the models have no
input for it).

Rendering. The frames are cut into windows of ``chunk_frames`` frames; each runs the
acoustic model and the vocoder in one worker thread with ``overlap_frames`` of
context on both sides, whose samples are dropped, so a convolutional vocoder sees
across the seam. The waveform is padded or trimmed to exactly ``round(duration_s *
sample_rate)`` samples, clipped to [-1, 1] and sent in ``block_samples`` blocks. A
request at another sample rate is resampled by linear interpolation (fine for speech
bands; a model at the requested rate sounds better).

Text without notes is refused (:class:`AudioEngineError`): this engine sings; ``singer``
or ``tts`` speak. A request with neither renders nothing (no blocks).

Threads. Loading and inference run in worker threads (``anyio.to_thread``); one pair of
sessions serves every request. Cancelling abandons the thread, which finishes its chunk
and drops it; closing the generator between blocks starts no more chunks.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import anyio
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from yamabiko.engines.audio.base import (
    AudioEngineError,
    AudioRequest,
    Samples,
    frequency,
    seconds_per_beat,
)
from yamabiko.engines.audio.kana import HOLD
from yamabiko.engines.audio.kana import romanize as romanize
from yamabiko.engines.audio.kana import split_syllables as split_syllables
from yamabiko.engines.once import LoadOnce

NAME: Final = "onnx"
MANIFEST_FILE: Final = "manifest.json"
NO_SPEECH: Final = "the onnx engine sings notes; use singer or tts for speech"

_log = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]

_DTYPES: Final[dict[str, type[np.generic]]] = {
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
}
_VOWEL_LETTERS = "aeiou"
_HOLD = HOLD

# Kana -> romaji: the table the singer reads too (:mod:`.kana`).

# The manifest.


def _error(message: str) -> AudioEngineError:
    return AudioEngineError(f"onnx audio engine: {message}")


def _string(table: Mapping[str, Any], key: str, where: str, *, optional: bool = False) -> Any:
    value = table.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise _error(f"manifest: {where}{key} must be a string")
    return value


def _positive(table: Mapping[str, Any], key: str) -> int:
    value = table.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _error(f"manifest: {key} must be a positive integer")
    return value


@dataclass(frozen=True)
class Manifest:
    """A parsed ``manifest.json`` (see the module docstring)."""

    sample_rate: int
    hop_size: int
    n_mels: int
    frames_first: bool
    phonemes: tuple[str, ...]
    silence: str
    vowels: frozenset[str]
    default_vowel: str
    dictionary: Mapping[str, tuple[str, ...]]
    consonant_ms: float
    acoustic: Mapping[str, Any]
    vocoder: Mapping[str, Any]

    @classmethod
    def parse(cls, data: object) -> Manifest:
        if not isinstance(data, dict):
            raise _error("manifest: not a JSON object")
        phonemes = data.get("phonemes")
        if (
            not isinstance(phonemes, list)
            or not phonemes
            or not all(isinstance(p, str) and p for p in phonemes)
            or len(set(phonemes)) != len(phonemes)
        ):
            raise _error("manifest: phonemes must be a list of distinct strings")
        inventory = set(phonemes)
        silence = data.get("silence", "SP")
        if silence not in inventory:
            raise _error("manifest: the silence phoneme is not in the inventory")
        vowels = data.get("vowels")
        if vowels is None:
            vowels = [p for p in phonemes if p == "N" or re.fullmatch("[aeiouy]+", p)]
        if not isinstance(vowels, list) or not set(vowels) <= inventory:
            raise _error("manifest: vowels must be a list of phonemes in the inventory")
        default_vowel = data.get("default_vowel", "a" if "a" in vowels else None)
        if default_vowel is None and vowels:
            default_vowel = vowels[0]
        if not isinstance(default_vowel, str) or default_vowel not in inventory:
            raise _error("manifest: default_vowel must be a phoneme in the inventory")
        dictionary = data.get("dictionary", {})
        if not isinstance(dictionary, dict) or not all(
            isinstance(v, list) and v and set(v) <= inventory for v in dictionary.values()
        ):
            raise _error("manifest: dictionary entries must be lists of inventory phonemes")
        consonant_ms = data.get("consonant_ms", 60)
        if not isinstance(consonant_ms, int | float) or not 0 <= consonant_ms <= 1000:
            raise _error("manifest: consonant_ms must be a number of milliseconds")
        layout = data.get("mel_layout", "bmt")
        if layout not in ("bmt", "btm"):
            raise _error('manifest: mel_layout must be "bmt" or "btm"')
        acoustic, vocoder = data.get("acoustic"), data.get("vocoder")
        if not isinstance(acoustic, dict) or not isinstance(vocoder, dict):
            raise _error("manifest: acoustic and vocoder must be objects")
        for key in ("file", "phonemes", "f0", "mel"):
            _string(acoustic, key, "acoustic.")
        _string(acoustic, "durations", "acoustic.", optional=True)
        if not isinstance(acoustic.get("constants", {}), dict):
            raise _error("manifest: acoustic.constants must be an object")
        for key in ("file", "mel", "waveform"):
            _string(vocoder, key, "vocoder.")
        _string(vocoder, "f0", "vocoder.", optional=True)
        return cls(
            sample_rate=_positive(data, "sample_rate"),
            hop_size=_positive(data, "hop_size"),
            n_mels=_positive(data, "n_mels"),
            frames_first=layout == "btm",
            phonemes=tuple(phonemes),
            silence=silence,
            vowels=frozenset(vowels),
            default_vowel=default_vowel,
            dictionary={str(k).lower(): tuple(v) for k, v in dictionary.items()},
            consonant_ms=float(consonant_ms),
            acoustic=acoustic,
            vocoder=vocoder,
        )


@dataclass(frozen=True)
class Syllable:
    """A syllable's phoneme ids: the ``onset`` consonants, the ``vowel`` (None: a
    syllable of consonants only) and the ``coda`` consonants."""

    onset: tuple[int, ...]
    vowel: int | None
    coda: tuple[int, ...]


class Phonemizer:
    """Syllables to phoneme ids (see the module docstring)."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.ids = {p: i for i, p in enumerate(manifest.phonemes)}
        self.silence = self.ids[manifest.silence]
        self.default_vowel = self.ids[manifest.default_vowel]
        self._longest = max(len(p) for p in manifest.phonemes)

    def syllable(self, lyric: str) -> Syllable:
        key = lyric.strip().lower()
        entry = self.manifest.dictionary.get(key)
        if entry is not None:
            return self._split([self.ids[p] for p in entry])
        letters = re.sub("[^a-z]", "", romanize(key))
        if letters == "cl":
            return Syllable((self.ids.get("cl", self.silence),), None, ())
        if letters == "n" and "N" in self.ids:
            return Syllable((), self.ids["N"], ())
        match = re.fullmatch(f"([^{_VOWEL_LETTERS}]*)([{_VOWEL_LETTERS}]+)(.*)", letters)
        if match is None:
            consonants = self._greedy(letters)
            if consonants:
                return Syllable(consonants, None, ())
            return Syllable((), self.default_vowel, ())
        onset, run, coda = match.groups()
        vowel = next(
            (self.ids[run[:n]] for n in range(len(run), 0, -1) if run[:n] in self.ids),
            self.default_vowel,
        )
        coda = re.sub(f"[{_VOWEL_LETTERS}]", "", coda)
        return Syllable(self._greedy(onset), vowel, self._greedy(coda))

    def _split(self, ids: list[int]) -> Syllable:
        vowels = {self.ids[v] for v in self.manifest.vowels}
        for index, phoneme in enumerate(ids):
            if phoneme in vowels:
                return Syllable(tuple(ids[:index]), phoneme, tuple(ids[index + 1 :]))
        return Syllable(tuple(ids), None, ())

    def _greedy(self, letters: str) -> tuple[int, ...]:
        found: list[int] = []
        at = 0
        while at < len(letters):
            for length in range(min(self._longest, len(letters) - at), 0, -1):
                phoneme = self.ids.get(letters[at : at + length])
                if phoneme is not None:
                    found.append(phoneme)
                    at += length
                    break
            else:
                at += 1  # a letter the inventory cannot spell
        return tuple(found)


# The score: notes -> phonemes with durations and f0 per frame.


@dataclass(frozen=True)
class Score:
    """Phonemes ``ids`` with ``durations`` in frames (contiguous, summing to
    ``frames``), ``f0`` in Hz per frame, and the ``samples`` to send."""

    ids: IntArray
    durations: IntArray
    f0: FloatArray
    frames: int
    samples: int

    def window(self, start: int, end: int) -> tuple[IntArray, IntArray, FloatArray]:
        """The phonemes, durations and f0 of frames ``start`` to ``end``."""
        ends = np.cumsum(self.durations)
        starts = ends - self.durations
        keep = (ends > start) & (starts < end)
        durations = np.minimum(ends[keep], end) - np.maximum(starts[keep], start)
        return self.ids[keep], durations.astype(np.int64), self.f0[start:end]


def duration_s(request: AudioRequest) -> float:
    """When the last note ends, in seconds (0 with no notes)."""
    if not request.notes or not request.tempo > 0:
        return 0.0
    end = max(note.start + max(note.duration, 0.0) for note in request.notes)
    return max(end, 0.0) * seconds_per_beat(request.tempo)


def _check(request: AudioRequest, max_duration_s: float) -> None:
    if not request.notes:
        if request.text:
            raise AudioEngineError(NO_SPEECH)
        return
    if not (math.isfinite(request.tempo) and request.tempo > 0):
        raise AudioEngineError("tempo must be a positive number")
    for note in request.notes:
        if not (math.isfinite(note.start) and math.isfinite(note.duration)) or note.start < 0:
            raise AudioEngineError("note start and duration must be finite, start >= 0")
        if not 0 <= note.pitch <= 127:
            raise AudioEngineError("note pitch must be 0-127")
    if duration_s(request) > max_duration_s:
        raise AudioEngineError(f"the onnx engine renders at most {max_duration_s:g} s")
    if request.sample_rate < 1:
        raise AudioEngineError("the sample rate must be positive")


def build_score(request: AudioRequest, phonemizer: Phonemizer) -> Score:
    """The phonemes, durations and f0 of a (checked) request's notes."""
    manifest = phonemizer.manifest
    rate, hop = manifest.sample_rate, manifest.hop_size
    spb = seconds_per_beat(request.tempo) if request.notes else 0.0
    samples = round(duration_s(request) * request.sample_rate)
    # Enough model samples for the last output sample and its right neighbour.
    needed = (samples - 1) * rate // request.sample_rate + 2 if samples else 0
    frames = -(-needed // hop)

    def frame(beats: float) -> int:
        return min(frames, round(beats * spb * rate / hop))

    notes = sorted(request.notes, key=lambda n: n.start)
    syllables = split_syllables(request.lyrics or "")
    ids: list[int] = []
    durations: list[int] = []
    f0 = np.zeros(frames, dtype=np.float32)
    cursor = 0
    vowel = phonemizer.default_vowel
    consonant_frames = max(1, round(manifest.consonant_ms / 1000 * rate / hop))
    for index, note in enumerate(notes):
        lyric = note.lyric
        if lyric is None and index < len(syllables):
            lyric = syllables[index]
        end = note.start + note.duration
        if index + 1 < len(notes):
            end = min(end, notes[index + 1].start)
        first, last = max(frame(note.start), cursor), frame(end)
        if last <= first:
            continue
        if first > cursor:
            ids.append(phonemizer.silence)
            durations.append(first - cursor)
        if lyric is None or lyric.strip() in ("", _HOLD):
            syllable = Syllable((), vowel, ())
        else:
            syllable = phonemizer.syllable(lyric)
            vowel = syllable.vowel if syllable.vowel is not None else vowel
        for phoneme, length in _allot(syllable, last - first, consonant_frames):
            ids.append(phoneme)
            durations.append(length)
        f0[first:last] = frequency(note.pitch)
        cursor = last
    if frames > cursor:
        ids.append(phonemizer.silence)
        durations.append(frames - cursor)
    return Score(
        ids=np.array(ids, dtype=np.int64),
        durations=np.array(durations, dtype=np.int64),
        f0=f0,
        frames=frames,
        samples=samples,
    )


def _allot(syllable: Syllable, frames: int, consonant: int) -> list[tuple[int, int]]:
    """A note's ``frames`` among its syllable's phonemes: ``consonant`` frames each
    (at most half the note for all), the vowel the rest."""
    if syllable.vowel is None:
        phonemes = syllable.onset[:frames]
        share, extra = divmod(frames, len(phonemes))
        return [
            (p, share + (extra if i == len(phonemes) - 1 else 0)) for i, p in enumerate(phonemes)
        ]
    count = len(syllable.onset) + len(syllable.coda)
    each = min(consonant, frames // 2 // count) if count else 0
    if each == 0:
        return [(syllable.vowel, frames)]
    return [
        *((p, each) for p in syllable.onset),
        (syllable.vowel, frames - each * count),
        *((p, each) for p in syllable.coda),
    ]


# The models.


class _Model:
    """A loaded model directory: the manifest and both sessions. Immutable once
    built; shared by every request (``InferenceSession.run`` is thread-safe)."""

    def __init__(self, directory: Path, *, threads: int, providers: Sequence[str]) -> None:
        if not directory.is_dir():
            raise _error("the model directory does not exist")
        try:
            data = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise _error(f"no {MANIFEST_FILE} in the model directory") from exc
        except (OSError, ValueError) as exc:
            raise _error(f"{MANIFEST_FILE} is not readable JSON") from exc
        self.manifest = manifest = Manifest.parse(data)
        self.phonemizer = Phonemizer(manifest)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: ORT's warnings go to stderr
        self.acoustic = self._session(directory, "acoustic", options, providers)
        self.vocoder = self._session(directory, "vocoder", options, providers)
        acoustic, vocoder = manifest.acoustic, manifest.vocoder
        self.constants = dict(acoustic.get("constants", {}))
        self.acoustic_types = self._inputs(
            self.acoustic,
            "acoustic",
            [acoustic["phonemes"], acoustic.get("durations"), acoustic["f0"], *self.constants],
        )
        self.constants = {
            name: np.asarray(value, dtype=self.acoustic_types[name])
            for name, value in self.constants.items()
        }
        self.vocoder_types = self._inputs(
            self.vocoder, "vocoder", [vocoder["mel"], vocoder.get("f0")]
        )
        self._outputs(self.acoustic, "acoustic", acoustic["mel"])
        self._outputs(self.vocoder, "vocoder", vocoder["waveform"])

    def _session(self, directory: Path, which: str, options: Any, providers: Sequence[str]) -> Any:
        table = self.manifest.acoustic if which == "acoustic" else self.manifest.vocoder
        path = directory / table["file"]
        if not path.is_file():
            raise _error(f"no {which} model file in the model directory")
        try:
            return ort.InferenceSession(str(path), sess_options=options, providers=list(providers))
        except Exception as exc:
            raise _error(f"the {which} model will not load") from exc

    @staticmethod
    def _inputs(session: Any, which: str, names: list[Any]) -> dict[str, type[np.generic]]:
        wanted = {n for n in names if n is not None}
        inputs = {arg.name: arg for arg in session.get_inputs()}
        if set(inputs) != wanted:
            raise _error(f"the {which} model's inputs are not the manifest's")
        types = {}
        for name, arg in inputs.items():
            if arg.type not in _DTYPES:
                raise _error(f"the {which} model's input {name} has type {arg.type}")
            types[name] = _DTYPES[arg.type]
        return types

    @staticmethod
    def _outputs(session: Any, which: str, name: str) -> None:
        if name not in {arg.name for arg in session.get_outputs()}:
            raise _error(f"the {which} model has no output {name}")

    def render(self, ids: IntArray, durations: IntArray, f0: FloatArray) -> FloatArray:
        """The waveform of one window: ``len(f0) * hop_size`` samples."""
        manifest, acoustic, vocoder = self.manifest, self.manifest.acoustic, self.manifest.vocoder
        frames = len(f0)
        feed: dict[str, npt.NDArray[Any]] = dict(self.constants)
        types = self.acoustic_types
        if acoustic.get("durations") is None:
            tokens = np.repeat(ids, durations)
        else:
            tokens = ids
            feed[acoustic["durations"]] = durations[None, :].astype(types[acoustic["durations"]])
        feed[acoustic["phonemes"]] = tokens[None, :].astype(types[acoustic["phonemes"]])
        feed[acoustic["f0"]] = f0[None, :].astype(types[acoustic["f0"]])
        (mel,) = self.acoustic.run([acoustic["mel"]], feed)
        mel = np.asarray(mel, dtype=np.float32)
        if manifest.frames_first:
            mel = mel.transpose(0, 2, 1)
        if mel.ndim != 3 or mel.shape[:2] != (1, manifest.n_mels):
            raise ValueError(f"the acoustic model returned a mel of shape {mel.shape}")
        mel = _fit(mel, frames, axis=2)
        if manifest.frames_first:
            mel = mel.transpose(0, 2, 1)
        feed = {vocoder["mel"]: mel.astype(self.vocoder_types[vocoder["mel"]])}
        if vocoder.get("f0") is not None:
            feed[vocoder["f0"]] = f0[None, :].astype(self.vocoder_types[vocoder["f0"]])
        (wave,) = self.vocoder.run([vocoder["waveform"]], feed)
        samples = np.asarray(wave, dtype=np.float32).reshape(-1)
        return _fit(samples, frames * manifest.hop_size, axis=0)


def _fit(array: FloatArray, length: int, *, axis: int) -> FloatArray:
    """``array`` trimmed or zero-padded to ``length`` along ``axis``."""
    have = array.shape[axis]
    if have >= length:
        return np.take(array, np.arange(length), axis=axis)
    pad = [(0, 0)] * array.ndim
    pad[axis] = (0, length - have)
    return np.pad(array, pad)


class _Resampler:
    """Linear interpolation from the model's rate to the request's, fed in pieces:
    output sample ``j`` is at model sample ``j * source / target``. Exact copying when
    the rates are equal."""

    def __init__(self, source: int, target: int, total: int) -> None:
        self.source, self.target, self.total = source, target, total
        self.buffer = np.zeros(0, dtype=np.float32)
        self.offset = 0  # the model sample ``buffer[0]`` is
        self.done = 0  # output samples produced so far

    def feed(self, samples: FloatArray, *, final: bool) -> FloatArray:
        buffer = np.concatenate([self.buffer, samples])
        end = self.offset + len(buffer)
        last = self.total
        if not final:
            # Those whose right neighbour has arrived: j * source // target + 1 < end.
            last = min(last, ((end - 1) * self.target - 1) // self.source + 1)
        js = np.arange(self.done, max(last, self.done), dtype=np.int64)
        whole = js * self.source
        left = np.minimum(whole // self.target - self.offset, len(buffer) - 1)
        right = np.minimum(left + 1, len(buffer) - 1)
        fraction = ((whole % self.target) / self.target).astype(np.float32)
        out = buffer[left] * (1 - fraction) + buffer[right] * fraction
        self.done = int(js[-1]) + 1 if len(js) else self.done
        keep = self.done * self.source // self.target - self.offset
        keep = max(0, min(keep, len(buffer)))
        self.buffer, self.offset = buffer[keep:], self.offset + keep
        result: FloatArray = out.astype(np.float32)
        return result


class OnnxSingerEngine:
    """Singing from an acoustic model and a vocoder in ONNX (see the module for the
    model directory and the pipeline).

    The models load on first use, in a worker thread, or up front with :meth:`load`
    (async) or :meth:`open` (blocking). A directory that will not load raises
    :class:`AudioEngineError` from then on: build a new engine to retry.
    """

    name: str = NAME

    def __init__(
        self,
        model_dir: str | Path,
        *,
        chunk_frames: int = 256,
        overlap_frames: int = 16,
        threads: int = 2,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        max_duration_s: float = 600.0,
    ) -> None:
        """``chunk_frames`` frames are rendered per worker call with ``overlap_frames``
        of context each side; ``threads`` is ONNX Runtime's intra-op thread count (0:
        one per core); longer requests than ``max_duration_s`` are refused."""
        if chunk_frames < 1 or overlap_frames < 0 or threads < 0 or max_duration_s <= 0:
            raise ValueError("chunk_frames and max_duration_s must be positive, the rest >= 0")
        self.model_dir = Path(model_dir)
        self.chunk_frames = chunk_frames
        self.overlap_frames = overlap_frames
        self.threads = threads
        self.providers = tuple(providers)
        self.max_duration_s = max_duration_s
        self._model = LoadOnce(
            lambda: _Model(self.model_dir, threads=self.threads, providers=self.providers),
            error_type=AudioEngineError,
            fallback="onnx audio engine: the models will not load",
            where=self.model_dir,
        )

    @classmethod
    def open(cls, model_dir: str | Path, **options: Any) -> OnnxSingerEngine:
        """An engine with its models loaded (blocking: at start-up or in a thread)."""
        engine = cls(model_dir, **options)
        engine._model.now()
        return engine

    async def load(self) -> None:
        """Load the models now, off the event loop; raises :class:`AudioEngineError`."""
        await self._loaded()

    def duration_s(self, request: AudioRequest) -> float:
        """Exact: when the last note ends (0 for text, which this engine refuses)."""
        return duration_s(request)

    async def blocks(
        self, request: AudioRequest, block_samples: int
    ) -> AsyncGenerator[Samples, None]:
        if block_samples < 1:
            raise AudioEngineError("block_samples must be positive")
        _check(request, self.max_duration_s)
        model = await self._loaded()
        score = build_score(request, model.phonemizer)
        if score.samples == 0:
            return
        hop = model.manifest.hop_size
        resampler = _Resampler(model.manifest.sample_rate, request.sample_rate, score.samples)
        pending = np.zeros(0, dtype=np.float32)
        for start in range(0, score.frames, self.chunk_frames):
            end = min(start + self.chunk_frames, score.frames)
            before = min(self.overlap_frames, start)
            after = min(self.overlap_frames, score.frames - end)
            window = score.window(start - before, end + after)
            wave = await anyio.to_thread.run_sync(
                self._render, model, window, abandon_on_cancel=True
            )
            core = wave[before * hop : (before + end - start) * hop]
            pending = np.concatenate([pending, resampler.feed(core, final=end == score.frames)])
            while len(pending) >= block_samples:
                block, pending = pending[:block_samples], pending[block_samples:]
                yield block
        if len(pending):
            yield pending

    async def _loaded(self) -> _Model:
        return await self._model.get()

    @staticmethod
    def _render(model: _Model, window: tuple[IntArray, IntArray, FloatArray]) -> FloatArray:
        try:
            wave = model.render(*window)
        except Exception as exc:
            _log.exception("onnx audio engine: inference failed")
            raise _error("inference failed") from exc
        clipped: FloatArray = np.clip(np.nan_to_num(wave), -1.0, 1.0).astype(np.float32)
        return clipped
