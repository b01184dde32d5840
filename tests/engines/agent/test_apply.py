"""``apply_actions``: the context after the actions, the given one untouched."""

from __future__ import annotations

import msgspec
import pytest

from tests.engines.agent.conftest import make_context
from yamabiko.engines.agent.validate import InvalidActionsError, apply_actions
from yamabiko.schema.daw import (
    Action,
    AddEffect,
    AddNotes,
    AddTrack,
    DawContext,
    DeleteNotes,
    DeleteTrack,
    Effect,
    Note,
    NoteUpdate,
    Project,
    SetKey,
    SetTempo,
    SetTrackParams,
    Track,
    UpdateNotes,
)


def test_a_plan_applied(context: DawContext) -> None:
    actions: list[Action] = [
        SetTempo(description="d", tempo=96),
        SetKey(description="d", key="D dorian"),
        AddTrack(description="d", track_id="lead", name="Lead", track_type="midi", pan=0.25),
        AddNotes(
            description="d",
            track_id="lead",
            notes=[Note(id="l1", pitch=74, start=0, duration=0.5, velocity=110)],
        ),
        UpdateNotes(
            description="d", track_id="bass", notes=[NoteUpdate(id="n2", pitch=50, velocity=70)]
        ),
        DeleteNotes(description="d", track_id="bass", note_ids=["n1"]),
        SetTrackParams(description="d", track_id="drums", muted=False, volume=0.9, name="Kit"),
        AddEffect(description="d", track_id="lead", effect="delay", params={"time": 0.75}),
        AddEffect(description="d", track_id="lead", effect="reverb"),
        DeleteTrack(description="d", track_id="vox"),
        AddTrack(description="d", name="Room", track_type="audio"),
    ]
    after = apply_actions(context, actions)
    assert after == DawContext(
        project=Project(
            name="Demo",
            tempo=96.0,
            key="D dorian",
            time_signature="4/4",
            tracks=[
                Track(
                    id="bass",
                    name="Bass",
                    type="midi",
                    volume=0.8,
                    pan=0.0,
                    muted=False,
                    notes=[
                        Note(id="n2", pitch=50, start=1.0, duration=1.0, velocity=70),
                        Note(pitch=52, start=2.0, duration=2.0, velocity=80),
                    ],
                ),
                Track(
                    id="drums", name="Kit", type="drum", volume=0.9, pan=0.0, muted=False, notes=[]
                ),
                Track(
                    id="lead",
                    name="Lead",
                    type="midi",
                    volume=0.8,
                    pan=0.25,
                    muted=False,
                    notes=[Note(id="l1", pitch=74, start=0, duration=0.5, velocity=110)],
                    effects=[
                        Effect(effect="delay", params={"time": 0.75}),
                        Effect(effect="reverb"),
                    ],
                ),
                Track(id="track-1", name="Room", type="audio", volume=0.8, pan=0.0, muted=False),
            ],
        ),
        selected_track_id="bass",
        playhead=4.0,
    )
    assert context == make_context()  # untouched


def test_the_result_shares_nothing_with_the_input(context: DawContext) -> None:
    added = [Note(id="x", pitch=60, start=0, duration=1, velocity=100)]
    after = apply_actions(context, [AddNotes(description="d", track_id="drums", notes=added)])
    after.project.tracks[0].notes[0].pitch = 1  # type: ignore[index]
    after.project.tracks[2].notes[0].pitch = 2  # type: ignore[index]
    assert context == make_context()
    assert added[0].pitch == 60


def test_no_actions_is_an_equal_copy(context: DawContext) -> None:
    after = apply_actions(context, [])
    assert after == context
    assert after is not context


def test_new_track_ids_avoid_every_id_in_play(context: DawContext) -> None:
    context.project.tracks[1].id = "track-1"
    actions: list[Action] = [
        AddTrack(description="d", name="A", track_type="midi"),
        AddTrack(description="d", track_id="track-2", name="B", track_type="drum"),
        AddTrack(description="d", name="C", track_type="midi"),
    ]
    after = apply_actions(context, actions)
    assert [t.id for t in after.project.tracks] == [
        "bass",
        "track-1",
        "drums",
        "track-3",
        "track-2",
        "track-4",
    ]
    assert after.project.tracks[4].notes == []


def test_deleting_the_selected_track_clears_the_selection(context: DawContext) -> None:
    after = apply_actions(context, [DeleteTrack(description="d", track_id="bass")])
    assert after.selected_track_id is None
    assert [t.id for t in after.project.tracks] == ["vox", "drums"]
    kept = apply_actions(context, [DeleteTrack(description="d", track_id="vox")])
    assert kept.selected_track_id == "bass"


def test_a_track_deleted_and_added_again_starts_empty(context: DawContext) -> None:
    after = apply_actions(
        context,
        [
            DeleteTrack(description="d", track_id="bass"),
            AddTrack(description="d", track_id="bass", name="Sub", track_type="midi", volume=1),
        ],
    )
    assert after.project.tracks[-1] == Track(
        id="bass", name="Sub", type="midi", volume=1.0, pan=0.0, muted=False, notes=[]
    )


def test_steps_chain(context: DawContext) -> None:
    """Planning over several steps: the second step sees what the first did."""
    first = apply_actions(
        context,
        [AddTrack(description="d", track_id="pad", name="Pad", track_type="midi")],
    )
    second = apply_actions(
        first,
        [
            AddNotes(
                description="d",
                track_id="pad",
                notes=[Note(id="p1", pitch=57, start=0, duration=4, velocity=60)],
            )
        ],
    )
    third = apply_actions(second, [DeleteNotes(description="d", track_id="pad", note_ids=["p1"])])
    assert third.project.tracks[-1].notes == []
    with pytest.raises(InvalidActionsError):
        apply_actions(first, [DeleteNotes(description="d", track_id="pad", note_ids=["p1"])])


def test_invalid_actions_are_refused(context: DawContext) -> None:
    actions: list[Action] = [
        SetTempo(description="d", tempo=100),
        DeleteTrack(description="d", track_id="nope"),
        SetTempo(description="d", tempo=1000),
    ]
    with pytest.raises(InvalidActionsError) as caught:
        apply_actions(context, actions)
    assert [p.path for p in caught.value.problems] == [
        "$.actions[1].trackId",
        "$.actions[2].tempo",
    ]
    assert str(caught.value).startswith("2 problem(s); first: $.actions[1].trackId: unknown")
    assert context == make_context()


def test_the_result_encodes_as_a_context(context: DawContext) -> None:
    after = apply_actions(
        context, [AddEffect(description="d", track_id="vox", effect="compressor", params={})]
    )
    wire = msgspec.json.decode(msgspec.json.encode(after))
    assert wire["project"]["tracks"][1]["effects"] == [{"effect": "compressor"}]
    assert msgspec.convert(wire, DawContext) == after
