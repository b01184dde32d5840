"""Scripts without a server: parsing, substitution, matching, turning a recording
into steps."""

from __future__ import annotations

from typing import Any

import pytest

from yamabiko.client.script import (
    ScriptError,
    UnknownVariable,
    closest,
    match,
    parse_script,
    redact,
    substitute,
    to_script,
)


def test_parse_skips_blank_lines_and_comments_and_keeps_line_numbers() -> None:
    steps = parse_script(
        '# a comment\n\n{"send": {"method": "ping"}}\n'
        '  # indented comment\n{"expect": {"id": 1}, "within": 250}\n{"sleep": 10}\n'
        '{"notify": {"method": "ghost/change", "params": {}}}\n'
    )
    assert [(s.kind, s.line) for s in steps] == [
        ("send", 3),
        ("expect", 5),
        ("sleep", 6),
        ("notify", 7),
    ]
    assert steps[1].within_ms == 250
    assert steps[0].body == {"method": "ping"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{nope", "not JSON"),
        ("[1]", "a step is a JSON object"),
        ('{"send": {"method": "ping"}, "sleep": 1}', "exactly one of"),
        ('{"wait": 1}', "exactly one of"),
        ('{"sleep": -1}', "sleep takes milliseconds"),
        ('{"sleep": true}', "sleep takes milliseconds"),
        ('{"send": "ping"}', "send takes a JSON object"),
        ('{"send": {"params": {}}}', "send takes a request"),
        ('{"send": {"id": 1, "result": 1, "error": {}}}', "send takes a request"),
        ('{"notify": {"params": {}}}', "notify needs a method"),
        ('{"notify": {"id": 1, "method": "x"}}', "a notification has no id"),
        ('{"expect": {}, "within": 0}', "within takes milliseconds"),
        ('{"send": {"method": "ping"}, "within": 10}', "unknown key(s) in a send step: within"),
        ('{"send": {"method": "x", "params": {"a": "${nope}"}}}', "${nope} is used before"),
    ],
)
def test_malformed_steps_name_their_line(text: str, message: str) -> None:
    with pytest.raises(ScriptError) as caught:
        parse_script(f"# first\n{text}\n")
    assert caught.value.line == 2
    assert message in caught.value.message


def test_a_variable_is_usable_after_the_step_that_saves_it() -> None:
    parse_script(
        '{"expect": {"result": {"streamId": "$save:stream"}}}\n'
        '{"expect": {"params": {"streamId": "${stream}", "x": "${id}"}}}\n'
    )
    with pytest.raises(ScriptError, match="used before"):
        parse_script('{"expect": {"a": "$save:x", "b": "${x}"}}\n')


def test_substitute_keeps_the_type_of_a_whole_value_and_interpolates_text() -> None:
    variables: dict[str, Any] = {"n": 3, "s": "abc", "o": {"k": [1]}}
    assert substitute(
        {"a": "${n}", "b": ["${o}", "id-${s}-${n}", "${o}!"], "c": "$any", "d": 1},
        variables,
    ) == {"a": 3, "b": [{"k": [1]}, "id-abc-3", '{"k":[1]}!'], "c": "$any", "d": 1}
    with pytest.raises(UnknownVariable):
        substitute("${missing}", variables)


def test_match_is_partial_over_objects_and_exact_over_lists() -> None:
    actual = {"jsonrpc": "2.0", "id": 1, "result": {"version": 2, "items": [1, 2], "x": None}}
    assert match({"id": 1, "result": {"items": [1, 2]}}, actual).ok
    found = match({"id": 1, "result": {"version": 3, "items": [1], "nope": 1}}, actual)
    assert found.diffs == [
        "$.result.version: expected 3, got 2",
        "$.result.items: expected 1 items, got 2",
        "$.result.nope: missing (expected 1)",
    ]
    assert match({"result": {"items": [1, 3]}}, actual).diffs == [
        "$.result.items[1]: expected 3, got 2"
    ]
    assert match({"result": {"x": None}}, actual).ok
    assert not match({"result": []}, actual).ok


def test_match_does_not_confuse_booleans_and_numbers() -> None:
    assert not match({"a": True}, {"a": 1}).ok
    assert not match({"a": 0}, {"a": False}).ok
    assert match({"a": 1}, {"a": 1.0}).ok


def test_special_strings() -> None:
    actual = {"result": {"streamId": "01a2-xyz", "model": "local/default", "n": 5}}
    found = match(
        {"result": {"streamId": "$save:stream", "model": "$regex:^local/", "n": "$any"}},
        actual,
    )
    assert found.ok
    assert found.captures == {"stream": "01a2-xyz"}
    assert match({"result": {"model": "$regex:openai"}}, actual).diffs == [
        '$.result.model: expected /openai/, got "local/default"'
    ]
    assert match({"result": {"n": "$regex:5"}}, actual).diffs == [
        "$.result.n: expected a string matching /5/, got 5"
    ]
    assert match({"result": {"absent": "$any"}}, actual).diffs == [
        '$.result.absent: missing (expected "$any")'
    ]
    assert match({"a": "$$any"}, {"a": "$any"}).ok
    assert not match({"a": "$$any"}, {"a": "x"}).ok
    assert match({"k/v": 1}, {"k/v": 2}).diffs == ['$["k/v"]: expected 1, got 2']


def test_closest_prefers_the_same_method_then_fewer_differences() -> None:
    expected = {"method": "stream/end", "params": {"finishReason": "stop", "seq": 3}}
    near = closest(
        expected,
        [
            {"method": "stream/delta", "params": {"finishReason": "stop", "seq": 3}},
            {"method": "stream/end", "params": {"finishReason": "error", "seq": 4}},
        ],
    )
    assert near is not None
    assert near[0]["method"] == "stream/end"
    assert near[1].diffs == [
        '$.params.finishReason: expected "stop", got "error"',
        "$.params.seq: expected 3, got 4",
    ]
    assert closest(expected, []) is None


def test_to_script_saves_generated_ids_and_hides_timestamps_and_deltas() -> None:
    steps = to_script(
        [
            ("client", {"jsonrpc": "2.0", "id": 1, "method": "chat/send", "params": {}}),
            (
                "server",
                {"jsonrpc": "2.0", "id": 1, "result": {"streamId": "s1", "messageId": "m1"}},
            ),
            ("server", {"method": "stream/delta", "params": {"streamId": "s1", "text": "hi"}}),
            ("server", {"method": "stream/end", "params": {"streamId": "s1", "seq": 9}}),
            ("client", {"id": 2, "method": "ghost/open", "params": {"docId": "d", "text": "t"}}),
            ("client", {"method": "ghost/change", "params": {"ref": "m1"}}),
            (
                "server",
                {
                    "id": 2,
                    "result": {"docId": "d", "createdAt": "2026-01-01T00:00:00Z", "when": 1},
                    "items": [{"id": "x1", "content": "made up", "text": "t"}],
                },
            ),
            ("server", {"method": "ghost/suggestions", "params": {"docId": "d", "items": [1]}}),
        ]
    )
    assert steps == [
        {"send": {"id": 1, "method": "chat/send", "params": {}}},
        {
            "expect": {
                "id": 1,
                "result": {"streamId": "$save:streamId", "messageId": "$save:messageId"},
            }
        },
        {"expect": {"method": "stream/end", "params": {"streamId": "${streamId}", "seq": "$any"}}},
        {"send": {"id": 2, "method": "ghost/open", "params": {"docId": "d", "text": "t"}}},
        {"notify": {"method": "ghost/change", "params": {"ref": "${messageId}"}}},
        {
            "expect": {
                "id": 2,
                "result": {"docId": "d", "createdAt": "$any", "when": 1},
                "items": [{"id": "$save:id2", "content": "$any", "text": "t"}],
            }
        },
        {"expect": {"method": "ghost/suggestions", "params": {"docId": "d", "items": "$any"}}},
    ]
    # What it writes parses as a script.
    import json

    parse_script("\n".join(json.dumps(s) for s in steps))


def test_redact_hides_secret_fields_at_any_depth_and_jwts_anywhere() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.sig"
    message = {
        "params": {
            "token": "t0",
            "servers": [{"headers": {"Authorization": "Bearer x"}, "api_key": "k"}],
            "refreshToken": "r",
            "clientSecret": "s",
            "text": f"my token is {jwt}, keep it",
            "tokens": 12,
            "name": "Demo",
        }
    }
    assert redact(message) == {
        "params": {
            "token": "[redacted]",
            "servers": [{"headers": {"Authorization": "[redacted]"}, "api_key": "[redacted]"}],
            "refreshToken": "[redacted]",
            "clientSecret": "[redacted]",
            "text": "my token is [redacted], keep it",
            "tokens": 12,
            "name": "Demo",
        }
    }
