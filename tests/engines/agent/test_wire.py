"""The DAW types on the wire: camelCase names, ``type`` tags, ranges checked on decode."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from yamabiko.schema.daw import (
    ACTION_TYPES,
    Action,
    AddEffect,
    AddNotes,
    AddTrack,
    DawContext,
    DeleteNotes,
    DeleteTrack,
    Note,
    NoteUpdate,
    SetKey,
    SetTempo,
    SetTrackParams,
    UpdateNotes,
)

NOTE = Note(id="x1", pitch=60, start=0.5, duration=0.25, velocity=96)
NOTE_WIRE = {"id": "x1", "pitch": 60, "start": 0.5, "duration": 0.25, "velocity": 96}

EXAMPLES: list[tuple[Action, dict[str, Any]]] = [
    (
        AddTrack(
            description="Add a pad", track_id="pad", name="Pad", track_type="midi", volume=0.5
        ),
        {
            "type": "addTrack",
            "description": "Add a pad",
            "trackId": "pad",
            "name": "Pad",
            "trackType": "midi",
            "volume": 0.5,
        },
    ),
    (
        AddTrack(description="Add drums", name="Drums", track_type="drum", pan=-0.25),
        {
            "type": "addTrack",
            "description": "Add drums",
            "name": "Drums",
            "trackType": "drum",
            "pan": -0.25,
        },
    ),
    (
        DeleteTrack(description="Remove the vocal", track_id="vox"),
        {"type": "deleteTrack", "description": "Remove the vocal", "trackId": "vox"},
    ),
    (
        AddNotes(
            description="A C",
            track_id="bass",
            notes=[NOTE, Note(pitch=64, start=1, duration=1, velocity=1)],
        ),
        {
            "type": "addNotes",
            "description": "A C",
            "trackId": "bass",
            "notes": [
                NOTE_WIRE,
                {"pitch": 64, "start": 1.0, "duration": 1.0, "velocity": 1},
            ],
        },
    ),
    (
        UpdateNotes(
            description="Louder",
            track_id="bass",
            notes=[NoteUpdate(id="n1", velocity=127), NoteUpdate(id="n2", pitch=50, start=3)],
        ),
        {
            "type": "updateNotes",
            "description": "Louder",
            "trackId": "bass",
            "notes": [{"id": "n1", "velocity": 127}, {"id": "n2", "pitch": 50, "start": 3.0}],
        },
    ),
    (
        DeleteNotes(description="Thin out", track_id="bass", note_ids=["n1", "n2"]),
        {
            "type": "deleteNotes",
            "description": "Thin out",
            "trackId": "bass",
            "noteIds": ["n1", "n2"],
        },
    ),
    (
        SetTempo(description="Faster", tempo=128),
        {"type": "setTempo", "description": "Faster", "tempo": 128.0},
    ),
    (
        SetKey(description="Darker", key="D minor"),
        {"type": "setKey", "description": "Darker", "key": "D minor"},
    ),
    (
        SetTrackParams(description="Mute the bass", track_id="bass", muted=True, volume=0.0),
        {
            "type": "setTrackParams",
            "description": "Mute the bass",
            "trackId": "bass",
            "volume": 0.0,
            "muted": True,
        },
    ),
    (
        AddEffect(
            description="Space", track_id="bass", effect="reverb", params={"mix": 0.3, "decay": 2}
        ),
        {
            "type": "addEffect",
            "description": "Space",
            "trackId": "bass",
            "effect": "reverb",
            "params": {"mix": 0.3, "decay": 2.0},
        },
    ),
]


def test_every_action_type_has_an_example() -> None:
    assert sorted({wire["type"] for _, wire in EXAMPLES}) == sorted(ACTION_TYPES)


@pytest.mark.parametrize(("action", "wire"), EXAMPLES, ids=lambda v: type(v).__name__)
def test_action_round_trip(action: Action, wire: dict[str, Any]) -> None:
    encoded = msgspec.json.encode(action)
    assert msgspec.json.decode(encoded) == wire
    assert msgspec.json.decode(encoded, type=Action) == action
    assert msgspec.convert(wire, Action) == action


def test_a_list_of_every_action_round_trips() -> None:
    actions = [action for action, _ in EXAMPLES]
    encoded = msgspec.json.encode({"actions": actions})
    assert msgspec.json.decode(encoded, type=dict[str, list[Action]]) == {"actions": actions}


CONTEXT_WIRE: dict[str, Any] = {
    "project": {
        "name": "Demo",
        "tempo": 120.0,
        "key": "A minor",
        "timeSignature": "6/8",
        "tracks": [
            {
                "id": "t1",
                "name": "Bass",
                "type": "midi",
                "volume": 0.8,
                "pan": 0.0,
                "muted": False,
                "notes": [NOTE_WIRE],
                "effects": [{"effect": "eq", "params": {"low": -3.0}}],
            },
            {"id": "t2", "name": "Vox", "type": "audio", "volume": 1.0, "pan": 0.5, "muted": True},
        ],
    },
    "selectedTrackId": "t1",
    "playhead": 16.0,
}


def test_context_round_trip() -> None:
    context = msgspec.convert(CONTEXT_WIRE, DawContext)
    assert context.project.time_signature == "6/8"
    assert context.project.tracks[0].notes == [NOTE]
    assert context.selected_track_id == "t1"
    assert msgspec.json.decode(msgspec.json.encode(context)) == CONTEXT_WIRE


def test_context_optional_fields() -> None:
    wire = {"project": {"name": "", "tempo": 90, "key": "C", "timeSignature": "4/4", "tracks": []}}
    context = msgspec.convert(wire, DawContext)
    assert context.selected_track_id is None
    assert context.playhead is None
    assert msgspec.json.decode(msgspec.json.encode(context)) == {
        "project": {"name": "", "tempo": 90.0, "key": "C", "timeSignature": "4/4", "tracks": []}
    }


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"timeSignature": "4-4"}, "$.project.timeSignature"),
        ({"timeSignature": "4/5"}, "$.project.timeSignature"),
        ({"tempo": 301}, "$.project.tempo"),
        ({"tempo": 19.5}, "$.project.tempo"),
    ],
)
def test_context_ranges_on_decode(change: dict[str, Any], error: str) -> None:
    wire = {**CONTEXT_WIRE, "project": {**CONTEXT_WIRE["project"], **change}}
    with pytest.raises(msgspec.ValidationError, match=error.replace("$", r"\$")):
        msgspec.convert(wire, DawContext)


@pytest.mark.parametrize(
    ("note", "path"),
    [
        ({"pitch": 128, "start": 0, "duration": 1, "velocity": 1}, "pitch"),
        ({"pitch": -1, "start": 0, "duration": 1, "velocity": 1}, "pitch"),
        ({"pitch": 60, "start": -1, "duration": 1, "velocity": 1}, "start"),
        ({"pitch": 60, "start": 0, "duration": 0, "velocity": 1}, "duration"),
        ({"pitch": 60, "start": 0, "duration": 1, "velocity": 0}, "velocity"),
        ({"pitch": 60, "start": 0, "duration": 1, "velocity": 128}, "velocity"),
        ({"pitch": 60.5, "start": 0, "duration": 1, "velocity": 1}, "pitch"),
    ],
)
def test_note_ranges_on_decode(note: dict[str, Any], path: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=rf"at `\$\.{path}`"):
        msgspec.convert(note, Note)


@pytest.mark.parametrize(
    ("wire", "path"),
    [
        ({"type": "setTrackParams", "description": "d", "trackId": "t", "pan": 1.5}, "pan"),
        ({"type": "setTrackParams", "description": "d", "trackId": "t", "volume": -0.1}, "volume"),
        ({"type": "addEffect", "description": "d", "trackId": "t", "effect": "flanger"}, "effect"),
        ({"type": "addTrack", "description": "d", "name": "x", "trackType": "synth"}, "trackType"),
        ({"type": "setTempo", "description": "d", "tempo": 300.5}, "tempo"),
        ({"type": "deleteNotes", "description": "d", "trackId": "t", "noteIds": []}, "noteIds"),
        ({"type": "addNotes", "description": "d", "trackId": "t", "notes": []}, "notes"),
        ({"type": "setKey", "description": "", "key": "C"}, "description"),
    ],
)
def test_action_ranges_on_decode(wire: dict[str, Any], path: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=rf"at `\$\.{path}`"):
        msgspec.convert(wire, Action)
