"""Planning: notes (or spoken text) and their syllables -> a timeline of the voice.

Theory of operation. :func:`plan` validates a request and places every note (or
spoken syllable) on the sample grid as an *event*, cuts each into *segments* (onset
consonants, the vowel, coda consonants) and groups the events in *phrases*: runs of
notes each starting where the previous one ends (sung legato). Between phrases is
exact silence. The plan is small (a few numbers a segment), so a song of an hour is
planned at once; the continuous controls are computed only for the span being
rendered (:meth:`Phrase.controls`), at :data:`CONTROL_HZ`:

- ``lf``: log2 of the pitch in Hz. A legato note glides in over :data:`LEGATO_S`.
  A held sung note gets vibrato after about :data:`VIBRATO_DELAY_S` (a little
  different each note), fading in over :data:`VIBRATO_RAMP_S`; its rate
  (:data:`VIBRATO_RATE_HZ`) and depth (:data:`VIBRATO_CENTS`) drift slowly within the
  note. It is a sine in log-frequency, so the note's centre pitch is the note. Every
  voiced frame also gets a small random jitter and a slow drift (a few cents, zero on
  average).
- ``formants``: four (Hz, bandwidth) pairs, from the segment's vowel or murmur
  (:data:`FORMANTS`), moved by the voice's ``formant_scale``; from one vowel to the
  next they glide (log-frequency, raised cosine) over the segment's fade (50 ms
  between sung vowels, 20-30 ms out of a consonant), not cross-fade.
- ``level``: the voiced loudness (A-weighted RMS, see :mod:`.rendering`) from the
  velocity, with the attack, release and consonant closures, and a small random
  shimmer.
- ``breath``: aspiration noise, a fraction of ``level``, more at the start of a
  phrase (a breathy onset).
- ``tilt``: the source's spectral slope (louder is brighter).

Consonants are their own segments with their own durations (:data:`PHONES`): a
voiceless one silences the voice and has a noise burst or hiss in its own band
(:class:`Noise`); a voiced murmur (nasal, liquid, glide) has its own formants.

Randomness (jitter, drift, vibrato's per-note shape, noise) is a function of the
sample position and the note, never of how the render is chunked: the same request
gives the same samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from yamabiko.engines.audio.base import (
    AudioEngineError,
    AudioRequest,
    Note,
    frequency,
    seconds_per_beat,
)
from yamabiko.engines.audio.lyrics import HOLD, Syllable, Vowel, syllable, syllables, tokens

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

MIN_SAMPLE_RATE: Final = 8_000
MAX_SAMPLE_RATE: Final = 48_000
MAX_DURATION_S: Final = 3_600.0
"""The longest render the engine accepts (a song or a speech)."""
MAX_TEXT: Final = 100_000
"""The longest text the singer speaks, in characters."""

CONTROL_HZ: Final = 100
"""Control frames a second: the pitch, formants and levels are set this often and
interpolated between."""

VIBRATO_CENTS: Final = (30.0, 45.0)
"""The range of a note's vibrato depth either way (it drifts ±20% around it)."""
VIBRATO_RATE_HZ: Final = (5.3, 5.9)
"""The range of a note's vibrato rate (it drifts ±0.25 Hz around it)."""
VIBRATO_DELAY_S: Final = 0.2
"""When vibrato sets in on a held note (±30 ms, a note's own)."""
VIBRATO_RAMP_S: Final = 0.25
JITTER_CENTS: Final = 3.0
"""Frame-to-frame pitch jitter (uniform, either way)."""
DRIFT_CENTS: Final = 3.0
SHIMMER_DB: Final = 0.4
"""Frame-to-frame level shimmer (uniform, either way)."""
BREATH: Final = 0.035
"""Aspiration noise against the voice's level (about -29 dB); three times that in
the first 120 ms of a phrase."""

ATTACK_S: Final = 0.03
RELEASE_S: Final = 0.06
LEGATO_S: Final = 0.05
"""The formant and pitch glide from one sung vowel into the next (30-80 ms)."""

# ---------------------------------------------------------------------------------
# The voice: vowels, murmurs, consonants.

FORMANTS: Final[dict[str, tuple[tuple[float, float], ...]]] = {
    # (centre Hz, bandwidth Hz) for F1..F4 of an adult male voice: F1/F2 of the five
    # vowels are Japanese male averages (docs/decisions/0021-singer-voice-model.md).
    "a": ((750, 90), (1350, 110), (2600, 160), (3500, 250)),
    "i": ((310, 60), (2200, 110), (2950, 170), (3600, 250)),
    "u": ((360, 70), (1330, 110), (2400, 160), (3400, 250)),
    "e": ((500, 70), (1950, 110), (2600, 160), (3500, 250)),
    "o": ((520, 80), (1000, 100), (2550, 160), (3400, 250)),
    # Murmurs: the nasal (m, n, ng), the liquids (l, r).
    "N": ((270, 80), (1100, 200), (2500, 250), (3500, 300)),
    "L": ((360, 80), (1300, 150), (2700, 200), (3500, 250)),
    "R": ((400, 80), (1400, 150), (2000, 200), (3300, 250)),
}
TIMBRES: Final = tuple(FORMANTS)
_TIMBRE_INDEX: Final = {name: i for i, name in enumerate(TIMBRES)}
_FORMANT_TABLE: Final = np.array([FORMANTS[t] for t in TIMBRES], dtype=np.float64)

PhoneKind = Literal["stop", "fricative", "affricate", "murmur", "silence"]


@dataclass(frozen=True, slots=True)
class Phone:
    """A consonant: how long, voiced or not, its noise band, its murmur timbre."""

    kind: PhoneKind
    duration_s: float
    voiced: bool = False
    noise_hz: float = 0.0
    noise_width_hz: float = 0.0
    noise_gain: float = 0.0
    timbre: str = "N"
    level: float = 0.0
    """The voicing level during the phone (a murmur's loudness, a voice bar)."""


def _stop(ms: float, hz: float, width: float, gain: float, voiced: bool = False) -> Phone:
    return Phone("stop", ms / 1000, voiced, hz, width, gain, level=0.12 if voiced else 0.0)


def _fricative(ms: float, hz: float, width: float, gain: float, voiced: bool = False) -> Phone:
    return Phone("fricative", ms / 1000, voiced, hz, width, gain, level=0.18 if voiced else 0.0)


def _affricate(ms: float, hz: float, width: float, gain: float, voiced: bool = False) -> Phone:
    return Phone("affricate", ms / 1000, voiced, hz, width, gain, level=0.12 if voiced else 0.0)


def _murmur(ms: float, timbre: str, level: float) -> Phone:
    return Phone("murmur", ms / 1000, True, timbre=timbre, level=level)


PHONES: Final[dict[str, Phone]] = {
    "p": _stop(60, 1000, 1500, 0.25),
    "b": _stop(50, 900, 1200, 0.15, voiced=True),
    "t": _stop(60, 4000, 2500, 0.3),
    "d": _stop(50, 3500, 2500, 0.18, voiced=True),
    "k": _stop(70, 2200, 1500, 0.3),
    "g": _stop(55, 2000, 1500, 0.18, voiced=True),
    "s": _fricative(100, 7000, 3000, 0.12),
    "z": _fricative(80, 6500, 3000, 0.07, voiced=True),
    "sh": _fricative(100, 3300, 1600, 0.14),
    "zh": _fricative(80, 3100, 1600, 0.08, voiced=True),
    "f": _fricative(80, 4500, 5000, 0.1),
    "v": _fricative(60, 4000, 5000, 0.06, voiced=True),
    "th": _fricative(80, 5500, 5000, 0.08),
    "dh": _fricative(50, 5000, 5000, 0.05, voiced=True),
    "h": _fricative(70, 1600, 2400, 0.1),
    "ch": _affricate(90, 3400, 1600, 0.14),
    "ts": _affricate(80, 6500, 3000, 0.12),
    "j": _affricate(80, 3000, 1600, 0.09, voiced=True),
    "m": _murmur(60, "N", 0.45),
    "n": _murmur(55, "N", 0.45),
    "ng": _murmur(60, "N", 0.45),
    "r": _murmur(30, "R", 0.4),
    "l": _murmur(50, "L", 0.5),
    "w": _murmur(50, "u", 0.6),
    "y": _murmur(50, "i", 0.6),
    "q": Phone("silence", 0.05),  # a geminate's closure (っ, "kk")
}


@dataclass(frozen=True, slots=True)
class Voice:
    formant_scale: float
    speech_hz: tuple[float, float]
    """Speaking pitch: the start and the end of a sentence."""


VOICES: Final[dict[str, Voice]] = {
    "default": Voice(1.0, (180.0, 120.0)),
    "high": Voice(1.15, (300.0, 200.0)),
    "low": Voice(0.9, (130.0, 90.0)),
}

# ---------------------------------------------------------------------------------
# Deterministic randomness: a function of an integer position and a seed.


def hash_noise(index: Ints | Floats, seed: float) -> Floats:
    """Uniform in [-1, 1) for each integer ``index``: the same value wherever a render
    starts (a classic sine hash; quality is plenty for a few cents of jitter)."""
    x = np.sin(np.asarray(index, dtype=np.float64) * 12.9898 + seed * 78.233) * 43758.5453
    return 2.0 * (x - np.floor(x)) - 1.0


def _unit(seed: float) -> float:
    """One uniform number in [0, 1) for ``seed`` (:func:`hash_noise` at index 0)."""
    x = math.sin(seed * 78.233) * 43758.5453
    return x - math.floor(x)


# ---------------------------------------------------------------------------------
# The plan.

Shape = Literal["burst", "hiss", "affricate"]
_NOISE_SHAPES: Final[dict[str, Shape]] = {
    "stop": "burst",
    "fricative": "hiss",
    "affricate": "affricate",
}


@dataclass(frozen=True, slots=True)
class Vibrato:
    """One note's vibrato: when it sets in, its rate and depth, and the phases of its
    drift."""

    delay_s: float
    rate_hz: float
    cents: float
    phase: float


@dataclass(slots=True)
class Noise:
    """A consonant's noise: a burst (stop), a hiss (fricative) or both (affricate), in
    its own band."""

    start: int
    stop: int
    center_hz: float
    width_hz: float
    gain: float
    seed: int
    shape: Shape


@dataclass(slots=True)
class Segment:
    start: int
    stop: int
    lf_start: float
    """log2 of the pitch in Hz at ``start``; it moves linearly to ``lf_end``."""
    lf_end: float
    level: float
    timbre: str | None
    """A FORMANTS key; None: unvoiced (a closure, a voiceless fricative)."""
    fade: int
    """Samples of glide (formants, pitch, level) from the previous segment, or of
    attack."""
    note_start: int
    vibrato: Vibrato | None
    tilt: float
    release: int = 0


@dataclass(frozen=True, slots=True)
class Controls:
    """The voice at control frames (one row a frame): see the module docstring."""

    lf: Floats
    level: Floats
    breath: Floats
    tilt: Floats
    formants: Floats
    """(frames, 4, 2): Hz and bandwidth of F1..F4."""


@dataclass(slots=True)
class Phrase:
    start: int
    stop: int
    seed: int
    segments: list[Segment] = field(default_factory=list)
    noises: list[Noise] = field(default_factory=list)
    _arrays: dict[str, npt.NDArray[np.float64]] | None = None

    def controls(self, at: Ints, rate: int, formant_scale: float) -> Controls:
        """The controls at sample positions ``at`` (sorted; any may lie outside the
        phrase, where the level is 0)."""
        a = self._columns()
        starts = a["start"]
        p = at.astype(np.float64)
        i = np.clip(np.searchsorted(starts, p, side="right") - 1, 0, starts.size - 1)
        own = self._values(i, p, rate, end=False)
        prev_i = np.maximum(i - 1, 0)
        into = p - starts[i]
        fade = a["fade"][i]
        rise = _ramp01(into / np.maximum(fade, 1.0))
        first = i == 0
        attack = np.where(first, rise, 1.0)  # the first segment's fade is an attack
        w = np.where(first, 1.0, rise)
        before = self._values(prev_i, p, rate, end=True)
        lf = w * own[0] + (1 - w) * before[0]
        level = (w * own[1] + (1 - w) * before[1]) * attack
        timbre_own, timbre_before = (
            a["timbre"][i].astype(np.intp),
            a["timbre"][prev_i].astype(np.intp),
        )
        f_own, f_before = _FORMANT_TABLE[timbre_own], _FORMANT_TABLE[timbre_before]
        ww = w[:, None, None]
        formants = np.empty_like(f_own)
        formants[..., 0] = np.exp2(
            ww[..., 0] * np.log2(f_own[..., 0]) + (1 - ww[..., 0]) * np.log2(f_before[..., 0])
        )
        formants[..., 1] = ww[..., 0] * f_own[..., 1] + (1 - ww[..., 0]) * f_before[..., 1]
        formants *= formant_scale
        tilt = w * a["tilt"][i] + (1 - w) * a["tilt"][prev_i]
        # The release at the phrase's end; nothing outside the phrase.
        release = a["release"][-1]
        if release > 0:
            level *= _ramp01((self.stop - 1 - p) / release)
        level = np.where((p < self.start) | (p >= self.stop), 0.0, level)
        frame = np.round(p * CONTROL_HZ / rate)
        shimmer = np.exp(SHIMMER_DB / 20 * math.log(10) * hash_noise(frame, self.seed + 0.5))
        level *= shimmer
        t = p / rate
        cents = JITTER_CENTS * hash_noise(frame, self.seed + 0.25) + DRIFT_CENTS * np.sin(
            2 * np.pi * 0.37 * t + self.seed
        )
        lf = lf + cents / 1200
        onset = np.clip((p - self.start) / (0.12 * rate), 0.0, 1.0)
        breath = level * BREATH * (3.0 - 2.0 * onset)
        return Controls(lf, level, breath, tilt, formants)

    def _columns(self) -> dict[str, npt.NDArray[np.float64]]:
        if self._arrays is None:
            segments = self.segments
            voiced_after: list[int] = []
            following = _TIMBRE_INDEX["a"]
            for seg in reversed(segments):  # an unvoiced segment shapes the next vowel
                if seg.timbre is not None:
                    following = _TIMBRE_INDEX[seg.timbre]
                voiced_after.append(following)
            voiced_after.reverse()
            vib = [s.vibrato for s in segments]
            self._arrays = {
                "start": np.array([s.start for s in segments], dtype=np.float64),
                "stop": np.array([s.stop for s in segments], dtype=np.float64),
                "lf0": np.array([s.lf_start for s in segments]),
                "lf1": np.array([s.lf_end for s in segments]),
                "level": np.array([s.level if s.timbre else 0.0 for s in segments]),
                "timbre": np.array(voiced_after, dtype=np.float64),
                "fade": np.array([s.fade for s in segments], dtype=np.float64),
                "note": np.array([s.note_start for s in segments], dtype=np.float64),
                "tilt": np.array([s.tilt for s in segments]),
                "release": np.array([s.release for s in segments], dtype=np.float64),
                "vdelay": np.array([v.delay_s if v else math.inf for v in vib]),
                "vrate": np.array([v.rate_hz if v else 0.0 for v in vib]),
                "vcents": np.array([v.cents if v else 0.0 for v in vib]),
                "vphase": np.array([v.phase if v else 0.0 for v in vib]),
            }
        return self._arrays

    def _values(self, i: Ints, p: Floats, rate: int, *, end: bool) -> tuple[Floats, Floats]:
        """The pitch (log2 Hz) and level of segments ``i`` at ``p`` (``end``: held at
        their last pitch, for the glide out of them)."""
        a = self._columns()
        start, stop = a["start"][i], a["stop"][i]
        lf0, lf1 = a["lf0"][i], a["lf1"][i]
        if end:
            lf = lf1.copy()
        else:
            u = np.clip((p - start) / np.maximum(stop - start, 1.0), 0.0, 1.0)
            lf = lf0 + (lf1 - lf0) * u
        t = (p - a["note"][i]) / rate
        delay = a["vdelay"][i]
        depth_env = _ramp01((t - delay) / VIBRATO_RAMP_S)
        if np.any(depth_env > 0):
            phase = a["vphase"][i]
            rate_hz = a["vrate"][i]
            # The rate drifts by ±0.25 Hz at 0.7 Hz; the phase is its integral, in
            # closed form so that it does not depend on where a render starts.
            omega = 2 * np.pi * 0.7
            cycles = rate_hz * t - 0.25 / omega * (np.cos(omega * t + phase) - np.cos(phase))
            depth = a["vcents"][i] * (1.0 + 0.2 * np.sin(2 * np.pi * 0.9 * t + 2 * phase))
            lf = lf + depth_env * depth / 1200 * np.sin(2 * np.pi * cycles)
        return lf, a["level"][i]


def _ramp01(x: Floats) -> Floats:
    """A raised-cosine rise from 0 (x <= 0) to 1 (x >= 1)."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))


@dataclass(frozen=True, slots=True)
class Plan:
    sample_rate: int
    total_samples: int
    duration_s: float
    phrases: tuple[Phrase, ...]
    voice: Voice
    sung: tuple[Syllable, ...]
    """What each event sings, in order of time (for tests and evaluations: the plan of
    ``今日は`` is ``kyo - wa``)."""


@dataclass(slots=True)
class _Event:
    """One sung note or spoken syllable, placed."""

    start: int
    stop: int
    lf_start: float
    lf_end: float
    syllable: Syllable  # vowel resolved
    level: float
    tilt: float
    vibrato: Vibrato | None
    fit: bool
    """Squeeze the consonants into the note (sung); spoken syllables are sized for them."""


def _fail(message: str) -> AudioEngineError:
    return AudioEngineError(message)


def _validate(request: AudioRequest) -> Voice:
    rate = request.sample_rate
    if isinstance(rate, bool) or not isinstance(rate, int):
        raise _fail("sampleRate must be an integer")
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise _fail(f"sampleRate must be {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz, not {rate}")
    voice = VOICES.get(request.voice or "default")
    if voice is None:
        raise _fail(f"the singer has no voice {request.voice!r} (voices: {', '.join(VOICES)})")
    if request.notes:
        tempo = request.tempo
        if not isinstance(tempo, int | float) or not math.isfinite(tempo) or tempo <= 0:
            raise _fail("tempo must be a positive number of beats a minute")
        for i, note in enumerate(request.notes):
            _validate_note(i, note)
    for name, value in (("text", request.text), ("lyrics", request.lyrics)):
        if value is not None and len(value) > MAX_TEXT:
            raise _fail(f"the {name} is too long (at most {MAX_TEXT} characters)")
    return voice


def _validate_note(i: int, note: Note) -> None:
    def number(value: object) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    if not isinstance(note.pitch, int) or isinstance(note.pitch, bool):
        raise _fail(f"note {i}: pitch must be an integer MIDI note 0..127")
    if not 0 <= note.pitch <= 127:
        raise _fail(f"note {i}: pitch must be 0..127, not {note.pitch}")
    if not number(note.start) or not math.isfinite(note.start) or note.start < 0:
        raise _fail(f"note {i}: start must be a number of beats >= 0")
    if not number(note.duration) or not math.isfinite(note.duration) or note.duration <= 0:
        raise _fail(f"note {i}: duration must be a number of beats > 0")
    if not isinstance(note.velocity, int) or not 1 <= note.velocity <= 127:
        raise _fail(f"note {i}: velocity must be 1..127")
    if note.lyric is not None and not isinstance(note.lyric, str):
        raise _fail(f"note {i}: lyric must be a string")


def level(velocity: int) -> tuple[float, float]:
    """Loudness (0..1, strictly rising with velocity) and spectral tilt for a
    velocity: louder is brighter."""
    v = velocity / 127
    return v**1.2, 1.45 - 0.45 * v


def _vibrato(index: int) -> Vibrato:
    """A note's own vibrato, from its index (deterministic)."""
    u = [_unit(index * 7.0 + k) for k in range(4)]
    return Vibrato(
        delay_s=VIBRATO_DELAY_S + 0.06 * (u[0] - 0.5),
        rate_hz=VIBRATO_RATE_HZ[0] + (VIBRATO_RATE_HZ[1] - VIBRATO_RATE_HZ[0]) * u[1],
        cents=VIBRATO_CENTS[0] + (VIBRATO_CENTS[1] - VIBRATO_CENTS[0]) * u[2],
        phase=2 * math.pi * u[3],
    )


def _song_events(request: AudioRequest) -> tuple[list[_Event], float]:
    rate = request.sample_rate
    beat = seconds_per_beat(request.tempo)
    order = sorted(range(len(request.notes)), key=lambda i: (request.notes[i].start, i))
    spread = request.lyrics if request.lyrics is not None else request.text
    pending = iter(syllables(spread) if spread else ())
    vowel: Vowel = "a"
    events: list[_Event] = []
    end_s = 0.0
    for n, i in enumerate(order):
        note = request.notes[i]
        start_s, stop_s = note.start * beat, (note.start + note.duration) * beat
        end_s = max(end_s, stop_s)
        if note.lyric is None:
            sung = next(pending, HOLD)
        elif note.lyric.strip() in ("-", "ー"):
            sung = HOLD
        else:
            sung = syllable(note.lyric)
        if sung.vowel is None:
            sung = Syllable((), vowel)  # held: no new consonant
        vowel = sung.vowel or vowel
        lf = math.log2(frequency(note.pitch))
        loud, tilt = level(note.velocity)
        start, stop = round(start_s * rate), round(stop_s * rate)
        if stop > start:
            events.append(_Event(start, stop, lf, lf, sung, loud, tilt, _vibrato(n), True))
    return events, end_s


_SYLLABLE_S: Final = 0.15
_PAUSE_S: Final = {"clause": 0.2, "sentence": 0.4, "question": 0.4}


def _speech_events(text: str, voice: Voice, rate: int) -> tuple[list[_Event], float]:
    """Syllables one after another, sentence by sentence, on a declining pitch."""
    sentences: list[tuple[list[list[tuple[Syllable, str | None]]], str]] = []
    clauses: list[list[tuple[Syllable, str | None]]] = [[]]
    for kind, word in tokens(text):
        if kind == "word":
            for n, s in enumerate(word):
                clauses[-1].append((s, "word" if n == 0 else None))
        elif kind == "clause":
            if clauses[-1]:
                clauses.append([])
        elif any(clauses):
            sentences.append(([c for c in clauses if c], kind))
            clauses = [[]]
    if any(clauses):
        sentences.append(([c for c in clauses if c], "sentence"))

    events: list[_Event] = []
    position = 0
    loud, tilt = level(90)
    hi, lo = (math.log2(f) for f in voice.speech_hz)
    vowel: Vowel = "a"
    for s_index, (sentence, ending) in enumerate(sentences):
        count = sum(len(c) for c in sentence)
        done = 0
        top = hi + (0.1 if ending == "question" else 0.0)
        for c_index, clause in enumerate(sentence):
            for w_index, (sung, word_start) in enumerate(clause):
                last = done == count - 1
                x0, x1 = done / count, (done + 1) / count
                lf0, lf1 = top + (lo - top) * x0, top + (lo - top) * x1
                if word_start and w_index:
                    lf0 += 0.06  # a small accent at each word
                if last and ending == "question":
                    lf1 = lf0 + 0.55  # the rise of a question
                if sung.vowel is None:
                    sung = Syllable((), vowel)
                vowel = sung.vowel or vowel
                core = 0.09 if sung.vowel == "N" else _SYLLABLE_S
                consonants = sum(
                    PHONES[p].duration_s for p in (*sung.onset, *sung.coda) if p in PHONES
                )
                length = round((core * (1.35 if last else 1.0) + consonants) * rate)
                events.append(
                    _Event(
                        position,
                        position + length,
                        lf0,
                        lf1,
                        sung,
                        loud * (0.85 if last else 1.0),
                        tilt,
                        vibrato=None,
                        fit=False,
                    )
                )
                position += length
                done += 1
            if c_index + 1 < len(sentence):
                position += round(_PAUSE_S["clause"] * rate)
        if s_index + 1 < len(sentences):
            position += round(_PAUSE_S[ending] * rate)
    return events, position / rate


def _phrases(events: list[_Event], rate: int) -> list[Phrase]:
    """Events chained into legato phrases: a note starting where (or, a little legato
    overlap, before) the last one stops continues its phrase, and cuts the last one
    short; notes starting together are sung by voices of their own, mixed."""
    chains: list[list[_Event]] = []
    sounding: list[list[_Event]] = []  # the chains a later note may still continue
    for event in sorted(events, key=lambda e: e.start):
        sounding = [chain for chain in sounding if chain[-1].stop >= event.start]
        for chain in sounding:
            last = chain[-1]
            if last.start < event.start <= last.stop:
                last.stop = event.start
                chain.append(event)
                break
        else:
            chains.append([event])
            sounding.append(chains[-1])
    phrases: list[Phrase] = []
    seed = 0
    for number, chain in enumerate(chains):
        phrase = Phrase(chain[0].start, chain[-1].stop, seed=number % 9973)
        for event in chain:
            seed = _segments(phrase, event, rate, seed)
        last_segment = phrase.segments[-1]
        span = last_segment.stop - last_segment.start
        last_segment.release = min(round(RELEASE_S * rate), span // 2)
        phrases.append(phrase)
    return phrases


def _segments(phrase: Phrase, event: _Event, rate: int, seed: int) -> int:
    """Cut one event into segments (onset consonants, the vowel, the coda) appended to
    its phrase; returns the next noise seed."""
    length = event.stop - event.start
    onset = [PHONES[p] for p in event.syllable.onset if p in PHONES]
    coda = [PHONES[p] for p in event.syllable.coda if p in PHONES]
    onset_s = sum(p.duration_s for p in onset)
    coda_s = sum(p.duration_s for p in coda)
    scale_on = scale_co = 1.0
    if event.fit:
        if onset_s * rate > 0.35 * length:
            scale_on = 0.35 * length / (onset_s * rate)
        if coda_s * rate > 0.2 * length:
            scale_co = 0.2 * length / (coda_s * rate)
    onset_n = [round(p.duration_s * scale_on * rate) for p in onset]
    coda_n = [round(p.duration_s * scale_co * rate) for p in coda]
    vowel_n = length - sum(onset_n) - sum(coda_n)
    if vowel_n < 1:  # a note too short for its consonants: sing the vowel only
        onset, coda, onset_n, coda_n, vowel_n = [], [], [], [], length
    parts: list[tuple[Phone | None, int]] = [
        *zip(onset, onset_n, strict=True),
        (None, vowel_n),
        *zip(coda, coda_n, strict=True),
    ]
    span = event.lf_end - event.lf_start
    position = event.start
    for phone, count in parts:
        if count <= 0:
            continue
        start, stop = position, position + count
        position = stop
        lf0 = event.lf_start + span * (start - event.start) / length
        lf1 = event.lf_start + span * (stop - event.start) / length
        previous = phrase.segments[-1] if phrase.segments else None
        if phone is None:
            timbre: str | None = event.syllable.vowel
            loud = event.level
            if previous is None:
                fade_s = ATTACK_S
            elif previous.timbre is None or previous.level < 0.15 * event.level:
                fade_s = 0.02  # out of a closure or a hiss: quick
            elif previous.note_start == event.start:
                fade_s = 0.03  # out of a murmur of the same note
            else:
                fade_s = LEGATO_S
        else:
            voiced = phone.kind == "murmur" or phone.voiced
            timbre = phone.timbre if voiced else None
            loud = phone.level * event.level if voiced else 0.0
            fade_s = 0.012 if previous is not None else ATTACK_S
            if phone.kind != "murmur" and phone.kind != "silence":
                noise_start = {"stop": 0.6, "fricative": 0.0, "affricate": 0.35}[phone.kind]
                phrase.noises.append(
                    Noise(
                        start + int(noise_start * count),
                        stop,
                        phone.noise_hz,
                        phone.noise_width_hz,
                        phone.noise_gain * (0.15 + 0.85 * event.level),
                        seed,
                        _NOISE_SHAPES[phone.kind],
                    )
                )
                seed += 1
        fade = max(1, min(round(fade_s * rate), count // 2))
        phrase.segments.append(
            Segment(
                start,
                stop,
                lf0,
                lf1,
                loud,
                timbre if loud > 0 else None,
                fade,
                event.start,
                event.vibrato,
                event.tilt,
            )
        )
    return seed


def plan(request: AudioRequest) -> Plan:
    """Validate and lay out a request (raises :class:`AudioEngineError`)."""
    voice = _validate(request)
    rate = request.sample_rate
    if request.notes:
        events, duration_s = _song_events(request)
    elif request.text is not None and request.text.strip():
        events, duration_s = _speech_events(request.text, voice, rate)
        if not events:
            raise _fail("the text has nothing the singer can pronounce")
    else:
        raise _fail("nothing to sing or say: give notes or text")
    if duration_s > MAX_DURATION_S:
        raise _fail(f"the audio would last {duration_s:.0f} s; at most {MAX_DURATION_S:.0f} s")
    sung = tuple(e.syllable for e in sorted(events, key=lambda e: e.start))
    phrases = _phrases(events, rate)
    total = round(duration_s * rate)
    return Plan(rate, total, duration_s, tuple(phrases), voice, sung)
