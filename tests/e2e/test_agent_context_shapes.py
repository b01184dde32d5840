"""agent/run over a real socket: the time signature in each shape front ends send, and a
tempo out of range said in the result (docs/agent.md)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeOpenAI, Script
from tests.support import Running, running_server
from yamabiko.client import RemoteError

SHAPES: list[Any] = ["3/4", [3, 4], {"numerator": 3, "denominator": 4}]


def context(signature: Any, tempo: float = 120) -> dict[str, Any]:
    return {
        "project": {
            "name": "Waltz",
            "tempo": tempo,
            "key": "C major",
            "timeSignature": copy.deepcopy(signature),
            "tracks": [],
        }
    }


@pytest.mark.parametrize("signature", SHAPES, ids=["string", "array", "object"])
async def test_each_time_signature_shape_plans_bars_of_three_beats(
    server: Running, signature: Any
) -> None:
    async with await server.client() as client:
        result = await client.call(
            "agent/run",
            {"prompt": "add a 2 bar bassline on a new track", "context": context(signature)},
        )
    notes = result["actions"][-1]["notes"]
    # Two bars of 3/4 are six beats, whatever shape said so.
    assert max(n["start"] + n["duration"] for n in notes) <= 6 + 1e-6
    assert max(n["start"] for n in notes) >= 3  # the second bar is there too


async def test_common_time_plans_longer_bars(server: Running) -> None:
    # The control for the test above: the signature is what bounds the part.
    async with await server.client() as client:
        result = await client.call(
            "agent/run",
            {"prompt": "add a 2 bar bassline on a new track", "context": context([4, 4])},
        )
    notes = result["actions"][-1]["notes"]
    assert max(n["start"] + n["duration"] for n in notes) > 6


@pytest.mark.parametrize(
    ("signature", "path"),
    [
        ([3, 3], "$.context.project.timeSignature[1]"),
        ([3, 4, 4], "$.context.project.timeSignature"),
        ({"numerator": 0, "denominator": 4}, "$.context.project.timeSignature.numerator"),
        ({"numerator": 3}, "$.context.project.timeSignature"),
        ({"numerator": 3, "denominator": 4, "beats": 3}, "$.context.project.timeSignature"),
        ("3/5", "$.context.project.timeSignature"),
    ],
)
async def test_a_bad_time_signature_is_refused_naming_where(
    server: Running, signature: Any, path: str
) -> None:
    async with await server.client() as client:
        with pytest.raises(RemoteError) as refused:
            await client.call("agent/run", {"prompt": "tempo 90", "context": context(signature)})
    assert refused.value.wire_code == -32602
    assert path in refused.value.message


async def test_the_model_sees_the_string_form(tmp_path: Path) -> None:
    answer = json.dumps({"actions": [{"type": "setTempo", "description": "Slower", "tempo": 90}]})
    async with (
        FakeOpenAI(Script(tokens=[answer])) as fake,
        running_server(
            tmp_path, env={"OPENAI_BASE_URL": fake.url, "OPENAI_API_KEY": "k"}
        ) as server,
        await server.client(scopes=["agent"]) as client,
    ):
        await client.call(
            "agent/run",
            {
                "prompt": "slower",
                "context": context({"numerator": 6, "denominator": 8}),
                "model": "openai/gpt-4.1-mini",
            },
        )
        sent = json.dumps(fake.requests[0].body["messages"])
    assert '\\"timeSignature\\":\\"6/8\\"' in sent
    assert "numerator" not in sent


@pytest.mark.parametrize(
    ("prompt", "tempo", "got", "asked"),
    [
        ("set the tempo to 500", 120, 300, "500"),
        ("tempo 15 bpm", 120, 20, "15"),
        ("faster", 295, 300, "305"),
    ],
)
async def test_a_tempo_out_of_range_is_clamped_and_said(
    server: Running, prompt: str, tempo: float, got: float, asked: str
) -> None:
    async with await server.client() as client:
        result = await client.call(
            "agent/run", {"prompt": prompt, "context": context("4/4", tempo)}
        )
    (action,) = result["actions"]
    assert action["tempo"] == got
    said = f"asked for {asked}: the range is 20-300 BPM"
    assert said in result["summary"]
    assert said in action["description"]


async def test_a_tempo_in_range_says_nothing_more(server: Running) -> None:
    async with await server.client() as client:
        result = await client.call(
            "agent/run", {"prompt": "set the tempo to 300", "context": context("4/4")}
        )
    assert result["actions"][0]["tempo"] == 300
    assert "asked for" not in result["summary"]
