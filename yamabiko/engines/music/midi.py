"""Notes as a Standard MIDI File, through ``mido``.

A generated part (``music/generate``) or a track's notes become a type-1 file: a tempo
and time-signature track, then one track of notes; drum parts go to channel 10 (index
9), as General MIDI expects. Beats become ticks at 480 per quarter note.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Protocol

import mido

TICKS_PER_BEAT = 480


class NoteLike(Protocol):
    pitch: int
    start: float
    duration: float
    velocity: int


def to_midi(
    notes: Iterable[NoteLike],
    *,
    tempo: float = 120.0,
    time_signature: tuple[int, int] = (4, 4),
    drums: bool = False,
    name: str = "Yamabiko",
) -> bytes:
    """The notes as a type-1 SMF's bytes (starts and durations in beats)."""
    conductor = mido.MidiTrack()
    conductor.append(mido.MetaMessage("track_name", name=name, time=0))
    conductor.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo), time=0))
    numerator, denominator = time_signature
    conductor.append(
        mido.MetaMessage("time_signature", numerator=numerator, denominator=denominator, time=0)
    )
    channel = 9 if drums else 0
    events: list[tuple[int, int, mido.Message]] = []
    for note in notes:
        on = round(note.start * TICKS_PER_BEAT)
        off = on + max(1, round(note.duration * TICKS_PER_BEAT))
        # Sorting key: at the same tick a note-off (0) goes before a note-on (1), so
        # repeated notes of one pitch do not cut each other off.
        events.append(
            (
                on,
                1,
                mido.Message("note_on", note=note.pitch, velocity=note.velocity, channel=channel),
            )
        )
        events.append(
            (off, 0, mido.Message("note_off", note=note.pitch, velocity=0, channel=channel))
        )
    part = mido.MidiTrack()
    now = 0
    for tick, _, message in sorted(events, key=lambda e: (e[0], e[1])):
        part.append(message.copy(time=tick - now))
        now = tick
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.extend([conductor, part])
    out = io.BytesIO()
    midi.save(file=out)
    return out.getvalue()
