"""``validate_actions``: every rule with its exact path, against the context and against
what earlier actions in the list did; ``parse_key``."""

from __future__ import annotations

import math

import pytest

from yamabiko.engines.agent.validate import Key, parse_key, validate_actions
from yamabiko.schema.daw import (
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


def note(
    pitch: int = 60, start: float = 0.0, duration: float = 1.0, velocity: int = 100, **kw: str
) -> Note:
    return Note(pitch=pitch, start=start, duration=duration, velocity=velocity, **kw)


def paths(actions: list[Action], context: DawContext) -> list[str]:
    return [problem.path for problem in validate_actions(actions, context)]


def only(actions: list[Action], context: DawContext) -> tuple[str, str]:
    problems = validate_actions(actions, context)
    assert len(problems) == 1, problems
    return problems[0].path, problems[0].message


def test_a_valid_plan_has_no_problems(context: DawContext) -> None:
    actions: list[Action] = [
        AddTrack(description="Lead", track_id="lead", name="Lead", track_type="midi"),
        AddNotes(description="Hook", track_id="lead", notes=[note(id="h1"), note(72, 1)]),
        UpdateNotes(
            description="Accent", track_id="lead", notes=[NoteUpdate(id="h1", velocity=127)]
        ),
        UpdateNotes(description="Bass", track_id="bass", notes=[NoteUpdate(id="n2", pitch=47)]),
        DeleteNotes(description="Trim", track_id="bass", note_ids=["n1"]),
        AddNotes(description="Kick", track_id="drums", notes=[note(36, velocity=127)]),
        SetTempo(description="Up", tempo=20),
        SetTempo(description="Up", tempo=300),
        SetKey(description="Key", key="F# major"),
        SetTrackParams(description="Quiet", track_id="vox", volume=0.2, pan=-1, muted=False),
        AddEffect(description="Verb", track_id="vox", effect="reverb", params={"mix": 0.3}),
        DeleteTrack(description="Bye", track_id="drums"),
    ]
    assert validate_actions(actions, context) == []
    assert validate_actions([], context) == []


# --- tracks ----------------------------------------------------------------------------


def test_unknown_track(context: DawContext) -> None:
    path, message = only([DeleteTrack(description="d", track_id="piano")], context)
    assert path == "$.actions[0].trackId"
    assert message == "unknown track id 'piano'; tracks: 'bass', 'vox', 'drums'"


@pytest.mark.parametrize(
    "action",
    [
        DeleteTrack(description="d", track_id="ghost"),
        AddNotes(description="d", track_id="ghost", notes=[note()]),
        UpdateNotes(description="d", track_id="ghost", notes=[NoteUpdate(id="n1", pitch=1)]),
        DeleteNotes(description="d", track_id="ghost", note_ids=["n1"]),
        SetTrackParams(description="d", track_id="ghost", muted=True),
        AddEffect(description="d", track_id="ghost", effect="eq"),
    ],
    ids=lambda a: type(a).__name__,
)
def test_every_track_reference_is_checked(context: DawContext, action: Action) -> None:
    path, message = only([SetTempo(description="t", tempo=100), action], context)
    assert path == "$.actions[1].trackId"
    assert message.startswith("unknown track id 'ghost'")


def test_a_track_added_earlier_can_be_used(context: DawContext) -> None:
    actions: list[Action] = [
        AddTrack(description="d", track_id="keys", name="Keys", track_type="midi"),
        AddNotes(description="d", track_id="keys", notes=[note(id="k1")]),
        UpdateNotes(description="d", track_id="keys", notes=[NoteUpdate(id="k1", start=4)]),
        SetTrackParams(description="d", track_id="keys", pan=0.5),
        AddEffect(description="d", track_id="keys", effect="chorus"),
        DeleteNotes(description="d", track_id="keys", note_ids=["k1"]),
        DeleteTrack(description="d", track_id="keys"),
    ]
    assert validate_actions(actions, context) == []


def test_a_track_is_unknown_before_it_is_added(context: DawContext) -> None:
    actions: list[Action] = [
        AddNotes(description="d", track_id="keys", notes=[note()]),
        AddTrack(description="d", track_id="keys", name="Keys", track_type="midi"),
    ]
    assert paths(actions, context) == ["$.actions[0].trackId"]


def test_a_deleted_track_cannot_be_used(context: DawContext) -> None:
    actions: list[Action] = [
        SetTempo(description="t", tempo=100),
        DeleteTrack(description="d", track_id="bass"),
        AddNotes(description="d", track_id="bass", notes=[note()]),
        DeleteTrack(description="d", track_id="bass"),
    ]
    problems = validate_actions(actions, context)
    assert [(p.path, p.message) for p in problems] == [
        ("$.actions[2].trackId", "track 'bass' was deleted by $.actions[1]"),
        ("$.actions[3].trackId", "track 'bass' was deleted by $.actions[1]"),
    ]


def test_a_deleted_track_id_can_be_added_again(context: DawContext) -> None:
    actions: list[Action] = [
        DeleteTrack(description="d", track_id="bass"),
        AddTrack(description="d", track_id="bass", name="New bass", track_type="midi"),
        AddNotes(description="d", track_id="bass", notes=[note(id="n1")]),  # old n1 is gone
        UpdateNotes(description="d", track_id="bass", notes=[NoteUpdate(id="n2", pitch=1)]),
    ]
    assert paths(actions, context) == ["$.actions[3].notes[0].id"]


def test_add_track_with_an_existing_id(context: DawContext) -> None:
    actions: list[Action] = [
        AddTrack(description="d", track_id="bass", name="Bass 2", track_type="midi"),
        AddTrack(description="d", track_id="new", name="New", track_type="midi"),
        AddTrack(description="d", track_id="new", name="New", track_type="midi"),
    ]
    problems = validate_actions(actions, context)
    assert [(p.path, p.message) for p in problems] == [
        ("$.actions[0].trackId", "track id 'bass' already exists"),
        ("$.actions[2].trackId", "track id 'new' already exists"),
    ]


def test_add_track_fields(context: DawContext) -> None:
    bad = AddTrack(
        description="d",
        name=" ",
        track_type="synth",  # type: ignore[arg-type]
        volume=1.5,
        pan=-1.01,
    )
    problems = validate_actions([bad], context)
    assert [(p.path, p.message) for p in problems] == [
        ("$.actions[0].name", "name must not be empty"),
        ("$.actions[0].trackType", "unknown track type 'synth'; one of 'midi', 'audio', 'drum'"),
        ("$.actions[0].volume", "volume must be between 0 and 1, got 1.5"),
        ("$.actions[0].pan", "pan must be between -1 and 1, got -1.01"),
    ]


def test_a_track_added_without_an_id_cannot_be_named_later(context: DawContext) -> None:
    actions: list[Action] = [
        AddTrack(description="d", name="Keys", track_type="midi"),
        AddNotes(description="d", track_id="track-4", notes=[note()]),
    ]
    path, message = only(actions, context)
    assert path == "$.actions[1].trackId"
    assert "an addTrack needs a trackId" in message


# --- notes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "field", "message"),
    [
        (note(pitch=128), "pitch", "pitch must be between 0 and 127, got 128"),
        (note(pitch=-1), "pitch", "pitch must be between 0 and 127, got -1"),
        (note(velocity=0), "velocity", "velocity must be between 1 and 127, got 0"),
        (note(velocity=128), "velocity", "velocity must be between 1 and 127, got 128"),
        (note(start=-0.5), "start", "start must be at least 0 beats, got -0.5"),
        (note(start=math.inf), "start", "start must be a finite number of beats, got inf"),
        (note(duration=0), "duration", "duration must be more than 0 beats, got 0"),
        (note(duration=-1), "duration", "duration must be more than 0 beats, got -1"),
        (note(duration=math.nan), "duration", "duration must be a finite number of beats, got nan"),
    ],
)
def test_note_ranges(context: DawContext, bad: Note, field: str, message: str) -> None:
    actions: list[Action] = [
        SetTempo(description="t", tempo=100),
        AddNotes(description="d", track_id="bass", notes=[note(), note(), bad]),
    ]
    assert only(actions, context) == (f"$.actions[1].notes[2].{field}", message)


def test_the_edges_of_the_note_ranges_pass(context: DawContext) -> None:
    notes = [note(pitch=0, velocity=1, start=0), note(pitch=127, velocity=127, duration=0.001)]
    assert (
        validate_actions([AddNotes(description="d", track_id="bass", notes=notes)], context) == []
    )


def test_notes_do_not_go_on_audio_tracks(context: DawContext) -> None:
    actions: list[Action] = [
        AddNotes(description="d", track_id="vox", notes=[note()]),
        AddTrack(description="d", track_id="rec", name="Rec", track_type="audio"),
        UpdateNotes(description="d", track_id="rec", notes=[NoteUpdate(id="x", pitch=1)]),
    ]
    problems = validate_actions(actions, context)
    assert [(p.path, p.message) for p in problems] == [
        ("$.actions[0].trackId", "track 'vox' is an audio track; notes go on midi or drum tracks"),
        ("$.actions[2].trackId", "track 'rec' is an audio track; notes go on midi or drum tracks"),
        ("$.actions[2].notes[0].id", "no note with id 'x' on track 'rec'"),
    ]


def test_add_notes_needs_notes(context: DawContext) -> None:
    assert only([AddNotes(description="d", track_id="bass", notes=[])], context) == (
        "$.actions[0].notes",
        "needs at least one note",
    )


def test_new_note_ids_must_be_new(context: DawContext) -> None:
    actions: list[Action] = [
        AddNotes(
            description="d", track_id="bass", notes=[note(id="n1"), note(id="a"), note(id="a")]
        ),
        AddNotes(description="d", track_id="drums", notes=[note(id="n1")]),  # another track: fine
    ]
    problems = validate_actions(actions, context)
    assert [(p.path, p.message) for p in problems] == [
        ("$.actions[0].notes[0].id", "note id 'n1' already exists on track 'bass'"),
        ("$.actions[0].notes[2].id", "note id 'a' already exists on track 'bass'"),
    ]


def test_update_notes(context: DawContext) -> None:
    actions: list[Action] = [
        UpdateNotes(
            description="d",
            track_id="bass",
            notes=[
                NoteUpdate(id="n1", velocity=127),
                NoteUpdate(id="zz", pitch=1),
                NoteUpdate(id="n2"),
                NoteUpdate(id="n2", pitch=200, duration=0),
            ],
        ),
    ]
    problems = validate_actions(actions, context)
    assert [(p.path, p.message) for p in problems] == [
        ("$.actions[0].notes[1].id", "no note with id 'zz' on track 'bass'"),
        ("$.actions[0].notes[2]", "changes nothing; give pitch, start, duration or velocity"),
        ("$.actions[0].notes[3].pitch", "pitch must be between 0 and 127, got 200"),
        ("$.actions[0].notes[3].duration", "duration must be more than 0 beats, got 0"),
    ]


def test_note_ids_added_earlier_can_be_updated_and_deleted(context: DawContext) -> None:
    actions: list[Action] = [
        AddNotes(description="d", track_id="drums", notes=[note(36, id="k1"), note(38, id="s1")]),
        UpdateNotes(description="d", track_id="drums", notes=[NoteUpdate(id="k1", velocity=90)]),
        DeleteNotes(description="d", track_id="drums", note_ids=["s1", "k1"]),
    ]
    assert validate_actions(actions, context) == []


def test_deleted_notes_are_gone(context: DawContext) -> None:
    actions: list[Action] = [
        DeleteNotes(description="d", track_id="bass", note_ids=["n1", "nope", "n1"]),
        UpdateNotes(description="d", track_id="bass", notes=[NoteUpdate(id="n1", pitch=40)]),
        DeleteNotes(description="d", track_id="bass", note_ids=["n2"]),
    ]
    problems = validate_actions(actions, context)
    assert [(p.path, p.message) for p in problems] == [
        ("$.actions[0].noteIds[1]", "no note with id 'nope' on track 'bass'"),
        ("$.actions[0].noteIds[2]", "no note with id 'n1' on track 'bass'"),
        ("$.actions[1].notes[0].id", "no note with id 'n1' on track 'bass'"),
    ]


def test_note_ids_belong_to_their_track(context: DawContext) -> None:
    actions: list[Action] = [DeleteNotes(description="d", track_id="drums", note_ids=["n1"])]
    assert only(actions, context) == (
        "$.actions[0].noteIds[0]",
        "no note with id 'n1' on track 'drums'",
    )


# --- project, track params, effects, descriptions --------------------------------------


@pytest.mark.parametrize("tempo", [19.99, 300.01, 0, -120, math.nan])
def test_tempo_range(context: DawContext, tempo: float) -> None:
    path, message = only([SetTempo(description="d", tempo=tempo)], context)
    assert path == "$.actions[0].tempo"
    assert message.startswith("tempo (BPM) must be between 20 and 300, got ")


@pytest.mark.parametrize("key", ["H major", "C blues", "", "major", "C##", "Am7"])
def test_set_key_needs_a_key_name(context: DawContext, key: str) -> None:
    assert only([SetKey(description="d", key=key)], context) == (
        "$.actions[0].key",
        f"not a key name: {key!r}; write e.g. 'C', 'A minor', 'F# major', 'Bb dorian'",
    )


def test_set_track_params(context: DawContext) -> None:
    actions: list[Action] = [
        SetTrackParams(description="d", track_id="bass"),
        SetTrackParams(description="d", track_id="bass", volume=2, pan=1.5, name=""),
        SetTrackParams(description="d", track_id="bass", muted=False),
    ]
    problems = validate_actions(actions, context)
    assert [(p.path, p.message) for p in problems] == [
        ("$.actions[0]", "sets nothing; give name, volume, pan or muted"),
        ("$.actions[1].name", "name must not be empty"),
        ("$.actions[1].volume", "volume must be between 0 and 1, got 2"),
        ("$.actions[1].pan", "pan must be between -1 and 1, got 1.5"),
    ]


def test_add_effect(context: DawContext) -> None:
    actions: list[Action] = [
        AddEffect(description="d", track_id="bass", effect="flanger"),  # type: ignore[arg-type]
        AddEffect(
            description="d",
            track_id="bass",
            effect="delay",
            params={"mix": math.nan, "time": 0.25, "dry/wet": math.inf, "": 1},
        ),
    ]
    problems = validate_actions(actions, context)
    assert [(p.path, p.message) for p in problems] == [
        (
            "$.actions[0].effect",
            "unknown effect 'flanger'; one of 'reverb', 'delay', 'eq', 'compressor', "
            "'distortion', 'chorus'",
        ),
        ("$.actions[1].params.mix", "must be a finite number, got nan"),
        ("$.actions[1].params['dry/wet']", "must be a finite number, got inf"),
        ("$.actions[1].params['']", "a parameter needs a name"),
    ]


@pytest.mark.parametrize("effect", ["reverb", "delay", "eq", "compressor", "distortion", "chorus"])
def test_every_known_effect_passes(context: DawContext, effect: str) -> None:
    action = AddEffect(description="d", track_id="vox", effect=effect)  # type: ignore[arg-type]
    assert validate_actions([action], context) == []


def test_a_description_is_not_blank(context: DawContext) -> None:
    assert only([SetTempo(description="  ", tempo=100)], context) == (
        "$.actions[0].description",
        "description must not be empty",
    )


def test_validation_does_not_touch_the_context(context: DawContext) -> None:
    from tests.engines.agent.conftest import make_context

    validate_actions(
        [
            DeleteTrack(description="d", track_id="bass"),
            AddTrack(description="d", track_id="x", name="X", track_type="midi"),
        ],
        context,
    )
    assert context == make_context()


# --- key names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("C", Key("C", "major")),
        ("Am", Key("A", "minor")),
        ("A minor", Key("A", "minor")),
        ("a min", Key("A", "minor")),
        ("F# major", Key("F#", "major")),
        ("F♯m", Key("F#", "minor")),
        ("F sharp minor", Key("F#", "minor")),
        ("Bb dorian", Key("Bb", "dorian")),
        ("bb", Key("Bb", "major")),
        ("Bbm", Key("Bb", "minor")),
        ("e flat major", Key("Eb", "major")),
        ("E♭ Lydian", Key("Eb", "lydian")),
        ("CM", Key("C", "major")),
        ("Cmaj", Key("C", "major")),
        ("c#m", Key("C#", "minor")),
        (" D  mixolydian ", Key("D", "mixolydian")),
        ("G aeolian", Key("G", "minor")),
        ("B locrian", Key("B", "locrian")),
        ("E phrygian", Key("E", "phrygian")),
        ("A harmonic minor", Key("A", "harmonic minor")),
        ("A melodic-minor", Key("A", "melodic minor")),
    ],
)
def test_parse_key(name: str, key: Key) -> None:
    assert parse_key(name) == key


@pytest.mark.parametrize("name", ["", "H", "C blues", "Cx", "#", "m", "C major major", "Am7"])
def test_parse_key_refuses(name: str) -> None:
    assert parse_key(name) is None


@pytest.mark.parametrize(
    ("name", "pitch_class"), [("C", 0), ("C#", 1), ("Db", 1), ("Cb", 11), ("B#", 0), ("A", 9)]
)
def test_key_pitch_class(name: str, pitch_class: int) -> None:
    key = parse_key(name)
    assert key is not None
    assert key.pitch_class == pitch_class
    assert str(key) == f"{key.tonic} major"
