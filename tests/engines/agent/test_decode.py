"""``decode_actions`` and ``check_actions`` on what models really write: prose, fences,
trailing commas, wrong types, missing fields."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from yamabiko.engines.agent.validate import check_actions, decode_actions
from yamabiko.schema.daw import AddNotes, DawContext, Note, Problem, SetKey, SetTempo

TEMPO = {"type": "setTempo", "description": "Faster", "tempo": 128}
KEY = {"type": "setKey", "description": "Darker", "key": "D minor"}
EXPECTED = [SetTempo(description="Faster", tempo=128), SetKey(description="Darker", key="D minor")]
BODY = json.dumps({"actions": [TEMPO, KEY], "summary": "Faster and darker"}, indent=2)


def problems_of(raw: str | bytes) -> list[tuple[str, str]]:
    actions, problems = decode_actions(raw)
    assert actions == []
    return [(p.path, p.message) for p in problems]


@pytest.mark.parametrize(
    "raw",
    [
        BODY,
        BODY.encode(),
        json.dumps([TEMPO, KEY]),
        f"  \n{BODY}\n\n",
        f"```json\n{BODY}\n```",
        f"Sure! Here is the plan:\n\n```json\n{BODY}\n```\n\nLet me know if you want more.",
        f"```\n{BODY}\n```",
        f"```JSON {BODY}```",
        f"Here you go:\n```json\n{BODY}",  # the fence never closed (output cut short)
        f"I'll speed it up and darken it. {BODY} Hope that helps!",
        f"Plan: {json.dumps([TEMPO, KEY])} (two steps)",
        f"```text\nnot json\n```\n```json\n{BODY}\n```",
        f'Thinking {{"mood": "dark"}} ... then: {BODY}',
    ],
)
def test_finds_the_actions(raw: str | bytes) -> None:
    assert decode_actions(raw) == (EXPECTED, [])


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps(TEMPO),
        f"```json\n{json.dumps(TEMPO)}\n```",
        f"```json\n{json.dumps({'mood': 'fast'})}\n```\n```json\n{json.dumps(TEMPO)}\n```",
        f"Just this: {json.dumps(TEMPO)}. Done",
    ],
)
def test_one_action_on_its_own(raw: str) -> None:
    assert decode_actions(raw) == ([EXPECTED[0]], [])


@pytest.mark.parametrize(
    "raw",
    [
        f"{json.dumps(TEMPO)}\n{json.dumps(KEY)}\n",
        f"First {json.dumps(TEMPO)}, then {json.dumps(KEY)}.",
        f"```json\n{json.dumps(TEMPO)}\n```\nand\n```json\n{json.dumps(KEY)}\n```",
    ],
)
def test_action_objects_one_after_another(raw: str) -> None:
    assert decode_actions(raw) == (EXPECTED, [])


def test_a_fenced_example_before_the_actions_is_skipped() -> None:
    example = json.dumps({"project": {"name": "Demo"}})
    raw = f"Your project:\n```json\n{example}\n```\nThe plan:\n```json\n{BODY}\n```"
    assert decode_actions(raw) == (EXPECTED, [])


def test_lone_objects_inside_a_broken_list_are_not_taken() -> None:
    raw = "Plan: [" + json.dumps(TEMPO) + ", " + json.dumps(KEY)[:-1] + ",}]"
    [(path, message)] = problems_of(raw)
    assert (path, message[:14]) == ("$", "invalid JSON: ")


def test_an_empty_list_is_no_actions() -> None:
    assert decode_actions('{"actions": []}') == ([], [])
    assert decode_actions("[]") == ([], [])


def test_a_trailing_comma_outside_the_list_is_survived() -> None:
    raw = '{"actions": [' + json.dumps(TEMPO) + "], }"
    assert decode_actions(raw) == ([EXPECTED[0]], [])


def test_camel_case_names_only() -> None:
    raw = {"type": "deleteTrack", "description": "d", "track_id": "bass"}
    assert problems_of(json.dumps([raw])) == [("$.actions[0].trackId", "required field is missing")]


@pytest.mark.parametrize(
    ("item", "path", "message"),
    [
        (
            {"type": "addChord", "description": "d"},
            "$.actions[0].type",
            "Invalid value 'addChord'; expected one of 'addTrack', 'deleteTrack', 'addNotes', "
            "'updateNotes', 'deleteNotes', 'setTempo', 'setKey', 'setTrackParams', 'addEffect'",
        ),
        ({"description": "d", "tempo": 100}, "$.actions[0].type", "required field is missing"),
        (
            {"type": "setTempo", "tempo": 100},
            "$.actions[0].description",
            "required field is missing",
        ),
        (
            {"type": "setTempo", "description": "d", "tempo": "fast"},
            "$.actions[0].tempo",
            "Expected `float`, got `str`",
        ),
        (
            {"type": "setTempo", "description": "d", "tempo": True},
            "$.actions[0].tempo",
            "Expected `float`, got `bool`",
        ),
        (
            {"type": "setTempo", "description": "d", "tempo": 400},
            "$.actions[0].tempo",
            "Expected `float` <= 300.0",
        ),
        (
            {
                "type": "addNotes",
                "description": "d",
                "trackId": "b",
                "notes": [{"pitch": 200, "start": 0, "duration": 1, "velocity": 9}],
            },
            "$.actions[0].notes[0].pitch",
            "Expected `int` <= 127",
        ),
        (
            {
                "type": "addNotes",
                "description": "d",
                "trackId": "b",
                "notes": [{"pitch": "C4", "start": 0, "duration": 1, "velocity": 9}],
            },
            "$.actions[0].notes[0].pitch",
            "Expected `int`, got `str`",
        ),
        (
            {
                "type": "addNotes",
                "description": "d",
                "trackId": "b",
                "notes": [{"pitch": 60, "start": 0, "velocity": 9}],
            },
            "$.actions[0].notes[0].duration",
            "required field is missing",
        ),
        (
            {"type": "addNotes", "description": "d", "trackId": "b", "notes": {"pitch": 60}},
            "$.actions[0].notes",
            "Expected `array`, got `object`",
        ),
        (
            {"type": "addEffect", "description": "d", "trackId": "b", "effect": "wah"},
            "$.actions[0].effect",
            "Invalid enum value 'wah'; expected one of 'reverb', 'delay', 'eq', 'compressor', "
            "'distortion', 'chorus'",
        ),
        (
            {"type": "addTrack", "description": "d", "name": "x", "trackType": "synth"},
            "$.actions[0].trackType",
            "Invalid enum value 'synth'; expected one of 'midi', 'audio', 'drum'",
        ),
        (
            {
                "type": "addEffect",
                "description": "d",
                "trackId": "b",
                "effect": "eq",
                "params": {"low": "-3dB"},
            },
            "$.actions[0].params[...]",  # msgspec does not name the key
            "Expected `float`, got `str`",
        ),
        ("setTempo", "$.actions[0]", "Expected `object`, got `str`"),
    ],
)
def test_wrong_items_become_problems_with_paths(item: Any, path: str, message: str) -> None:
    assert problems_of(json.dumps({"actions": [item]})) == [(path, message)]


def test_each_item_is_decoded_on_its_own() -> None:
    bad = {"type": "setTempo", "description": "d", "tempo": 999}
    actions, problems = decode_actions(json.dumps([TEMPO, bad, KEY, {"type": "nope"}]))
    assert actions == EXPECTED
    assert [p.path for p in problems] == ["$.actions[1].tempo", "$.actions[3].type"]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (
            "I could not do that, sorry.",
            ("$", 'no JSON in the output; expected {"actions": [...]}'),
        ),
        ("", ("$", 'no JSON in the output; expected {"actions": [...]}')),
        ('{"actions": 3}', ("$.actions", "expected an array of actions, got number")),
        (
            '{"actions": {"type": "setTempo"}}',
            ("$.actions", "expected an array of actions, got object"),
        ),
        ("42", ("$", 'expected {"actions": [...]} or an array of actions, got number')),
        ('{"plan": []}', ("$", 'expected {"actions": [...]} or an array of actions, got object')),
        ('"actions"', ("$", 'expected {"actions": [...]} or an array of actions, got string')),
        (
            'Use [1, 2] or {"a": 1}.',
            ("$", 'no {"actions": [...]} and no array of actions in the output'),
        ),
        (b"\xff\xfe{}", ("$", "not UTF-8: invalid start byte")),
    ],
)
def test_output_without_actions(raw: str | bytes, problem: tuple[str, str]) -> None:
    assert problems_of(raw) == [problem]


@pytest.mark.parametrize(
    "raw",
    [
        '```json\n{"actions": [{"type": "setTempo", "tempo": 100,}]}\n```',
        'Here: {"actions": [{"type": "setTempo" "tempo": 100}]}',
        '{"actions": [{"type": "setTempo", "description": "d", "tempo": NaN}]}',
        '[{"type": "setTempo", "description": "d", "tempo": Infinity}]',
    ],
)
def test_broken_json_is_one_problem_at_the_root(raw: str) -> None:
    [(path, message)] = problems_of(raw)
    assert path == "$"
    assert message.startswith("invalid JSON: ")


# --- check_actions: decoding and validation, with the model's paths --------------------


def test_check_keeps_the_model_indices(context: DawContext) -> None:
    raw = json.dumps(
        [
            {"type": "setTempo", "description": "d", "tempo": 5},
            {
                "type": "addNotes",
                "description": "d",
                "trackId": "piano",
                "notes": [{"pitch": 60, "start": 0, "duration": 1, "velocity": 100}],
            },
            {"type": "setKey", "description": "d", "key": "H minor"},
            {"type": "deleteTrack", "description": "d", "trackId": "bass"},
        ]
    )
    actions, problems = check_actions(raw, context)
    assert len(actions) == 3
    assert [p.path for p in problems] == [
        "$.actions[0].tempo",
        "$.actions[1].trackId",
        "$.actions[2].key",
    ]


def test_a_broken_add_track_still_declares_its_track(context: DawContext) -> None:
    raw = json.dumps(
        {
            "actions": [
                {
                    "type": "addTrack",
                    "description": "d",
                    "trackId": "lead",
                    "name": "Lead",
                    "trackType": "midi",
                    "volume": 2,
                },
                {
                    "type": "addNotes",
                    "description": "d",
                    "trackId": "lead",
                    "notes": [{"pitch": 72, "start": 0, "duration": 1, "velocity": 100}],
                },
            ]
        }
    )
    actions, problems = check_actions(raw, context)
    assert actions == [
        AddNotes(
            description="d",
            track_id="lead",
            notes=[Note(pitch=72, start=0, duration=1, velocity=100)],
        )
    ]
    assert problems == [Problem(path="$.actions[0].volume", message="Expected `float` <= 1.0")]


def test_check_a_clean_plan(context: DawContext) -> None:
    assert check_actions(f"```json\n{BODY}\n```", context) == (EXPECTED, [])


def test_check_output_without_actions(context: DawContext) -> None:
    assert check_actions("nothing", context) == (
        [],
        [Problem(path="$", message='no JSON in the output; expected {"actions": [...]}')],
    )


def test_problems_encode_for_the_wire() -> None:
    _, problems = decode_actions("[{}]")
    assert msgspec.json.decode(msgspec.json.encode(problems)) == [
        {"path": "$.actions[0].type", "message": "required field is missing"}
    ]
