"""agent/run and music/generate over a real socket."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.fakes import FakeOpenAI, Script
from tests.support import Running, running_server
from yamabiko.client import RemoteError
from yamabiko.engines.agent.validate import apply_actions, validate_actions
from yamabiko.schema.daw import Action, DawContext

SCALES = {"C major": {0, 2, 4, 5, 7, 9, 11}, "A minor": {9, 11, 0, 2, 4, 5, 7}}
LEADING_TONE = 8  # G#, A minor's raised seventh
CONTEXT: dict[str, Any] = {
    "project": {
        "name": "Demo",
        "tempo": 120,
        "key": "C major",
        "timeSignature": "4/4",
        "tracks": [
            {"id": "drums", "name": "Drums", "type": "drum", "volume": 0.8, "pan": 0.0,
             "muted": False, "notes": []},
        ],
    }
}  # fmt: skip
DAW = {"daw": {"applyActions": True}}


def decode_actions(raw: list[dict[str, Any]]) -> list[Action]:
    return msgspec.convert(raw, list[Action])


def context_of(raw: dict[str, Any]) -> DawContext:
    return msgspec.convert(raw, DawContext)


@pytest.mark.parametrize(
    "kind", ["drum_pattern", "bassline", "chord_progression", "melody", "harmony"]
)
async def test_music_generate_is_in_key_inside_the_bars_and_seeded(
    server: Running, kind: str
) -> None:
    async with await server.client() as client:
        ask = {"kind": kind, "key": "A minor", "bars": 2, "seed": 7, "prompt": "jazz"}
        first = await client.call("music/generate", ask)
        again = await client.call("music/generate", ask)
        other = await client.call("music/generate", {**ask, "seed": 8})
    assert first == again
    assert first["notes"] != other["notes"] or kind == "chord_progression"
    assert first["seed"] == 7
    assert first["notes"]
    for note in first["notes"]:
        assert note["start"] >= 0
        assert note["start"] + note["duration"] <= 8 + 1e-6
        assert 1 <= note["velocity"] <= 127
    if kind != "drum_pattern":
        # Only basslines and melodies may pass through a chromatic tone, and rarely.
        # The leading tone G# belongs to A minor's dominant (E, E7) in cadences.
        minor = SCALES["A minor"] | {LEADING_TONE}
        outside = [n for n in first["notes"] if n["pitch"] % 12 not in minor]
        allowed = len(first["notes"]) // 5 if kind in ("bassline", "melody") else 0
        assert len(outside) <= allowed, outside
    if kind == "chord_progression":
        assert first["chords"]
        for chord in first["chords"]:
            assert {p % 12 for p in chord["pitches"]} <= minor


async def test_music_generate_long_parts_cadence_above_the_chords_without_parallels(
    server: Running,
) -> None:
    # 16 bars: written in a worker thread, the answer is the same music.
    async with await server.client() as client:
        ask = {"key": "D minor", "bars": 16, "seed": 3, "style": "jazz"}
        chords = await client.call("music/generate", {**ask, "kind": "chord_progression"})
        tune = await client.call("music/generate", {**ask, "kind": "melody"})
    voiced = chords["chords"]
    assert voiced == tune["chords"]
    assert voiced[-1]["symbol"].startswith("Dm")
    for before, after in itertools.pairwise(voiced):
        a, b = sorted(before["pitches"]), sorted(after["pitches"])
        for i in range(len(a)):
            for j in range(i + 1, min(len(a), len(b))):
                moved = a[i] != b[i] and a[j] != b[j]
                interval = (a[j] - a[i]) % 12
                assert not (moved and interval in (0, 7) and interval == (b[j] - b[i]) % 12)
    dominants = [c for c in voiced if c["symbol"].startswith("A")]
    assert dominants
    assert all(any(p % 12 == 1 for p in c["pitches"]) for c in dominants)  # C#, raised
    notes = sorted(tune["notes"], key=lambda n: n["start"])
    assert notes[-1]["pitch"] % 12 == 2  # home on D
    for note in notes:
        sounding = [c for c in voiced if c["start"] <= note["start"] + 1e-9][-1]
        assert note["pitch"] > max(sounding["pitches"])


async def test_music_generate_refuses_a_bad_key(server: Running) -> None:
    async with await server.client() as client:
        with pytest.raises(RemoteError) as bad:
            await client.call("music/generate", {"kind": "melody", "key": "H major"})
        assert bad.value.wire_code == -32602


async def test_offline_agent_sets_tempo_and_adds_a_bassline(server: Running) -> None:
    async with await server.client() as client:
        result = await client.call(
            "agent/run",
            {
                "prompt": "set the tempo to 128 and add a bassline in A minor on a new track",
                "context": CONTEXT,
            },
        )
    assert result["model"] == "rules"
    assert [a["type"] for a in result["actions"]] == ["setTempo", "addTrack", "addNotes"]
    assert result["actions"][0]["tempo"] == 128
    added = result["actions"][1]
    assert added["trackId"] == result["actions"][2]["trackId"]
    assert added["trackType"] == "midi"
    actions = decode_actions(result["actions"])
    assert validate_actions(actions, context_of(CONTEXT)) == []
    notes = result["actions"][2]["notes"]
    roots = {n["pitch"] % 12 for n in notes if n["start"] % 4 == 0}
    assert roots <= SCALES["A minor"]
    assert "128" in result["summary"]
    assert result["nextSteps"]


async def test_offline_agent_melodies_close_on_the_tonic_unless_asked_to_stay_open(
    server: Running,
) -> None:
    endings = {}
    async with await server.client() as client:
        for ending in ("", " with an open ending"):
            result = await client.call(
                "agent/run",
                {
                    "prompt": f"add a 16 bar jazz melody in E minor{ending} on a new track",
                    "context": CONTEXT,
                },
            )
            assert result["model"] == "rules"
            notes = result["actions"][-1]["notes"]
            assert max(n["start"] + n["duration"] for n in notes) <= 64 + 1e-6
            endings[ending] = max(notes, key=lambda n: n["start"])["pitch"] % 12
    assert endings[""] == 4  # E
    assert endings[" with an open ending"] != 4


async def test_apply_client_runs_two_steps_planning_from_the_returned_context(
    server: Running,
) -> None:
    steps: list[dict[str, Any]] = []
    state = {"context": context_of(CONTEXT)}
    async with await server.client(capabilities=DAW) as daw:

        @daw.on_request("client/applyActions")
        async def apply(params: dict[str, Any]) -> dict[str, Any]:
            steps.append(params)
            after = apply_actions(state["context"], decode_actions(params["actions"]))
            raw = msgspec.to_builtins(after)
            if params["step"] == 1:  # the DAW also adds a track of its own
                raw["project"]["tracks"].append(
                    {"id": "pad", "name": "Pad", "type": "midi", "volume": 0.5, "pan": 0.0,
                     "muted": False, "notes": []}
                )  # fmt: skip
            state["context"] = context_of(raw)
            return {"applied": True, "errors": [], "context": raw}

        result = await daw.call(
            "agent/run",
            {
                "prompt": "set the tempo to 100, then mute the pad",
                "context": CONTEXT,
                "apply": "client",
                "maxSteps": 3,
            },
        )
    assert [s["step"] for s in steps] == [1, 2]
    assert [a["type"] for a in steps[0]["actions"]] == ["setTempo"]
    # The pad exists only in the context the client returned after step 1.
    assert steps[1]["actions"] == [
        {"type": "setTrackParams", "description": "Mute Pad", "trackId": "pad", "muted": True}
    ]
    assert result["steps"] == 2
    assert [a["type"] for a in result["actions"]] == ["setTempo", "setTrackParams"]


async def test_apply_client_needs_the_capability(server: Running) -> None:
    async with await server.client() as client:
        with pytest.raises(RemoteError) as refused:
            await client.call(
                "agent/run", {"prompt": "tempo 90", "context": CONTEXT, "apply": "client"}
            )
        assert refused.value.wire_code == -32602


async def test_the_agent_is_chosen_by_its_skills(server: Running) -> None:
    async with await server.client() as client:
        await client.call("agents/create", {"name": "Drummer", "skills": ["drums", "groove"]})
        bassist = await client.call("agents/create", {"name": "Low End", "skills": ["bassline"]})
        result = await client.call(
            "agent/run", {"prompt": "add a bassline on a new track", "context": CONTEXT}
        )
    assert result["agentId"] == bassist["id"]


async def test_a_model_planner_is_repaired_once_then_refused(tmp_path: Path) -> None:
    bad = json.dumps(
        {"actions": [{"type": "addNotes", "description": "x", "trackId": "nope",
                      "notes": [{"pitch": 200, "start": 0, "duration": 1, "velocity": 90}]}]}
    )  # fmt: skip
    async with (
        FakeOpenAI(Script(tokens=[bad])) as fake,
        running_server(
            tmp_path, env={"OPENAI_BASE_URL": fake.url, "OPENAI_API_KEY": "k"}
        ) as server,
        await server.client(scopes=["agent", "admin"]) as client,
    ):
        with pytest.raises(RemoteError) as refused:
            await client.call(
                "agent/run",
                {"prompt": "add notes", "context": CONTEXT, "model": "openai/gpt-4.1-mini"},
            )
        assert refused.value.wire_code == -32010
        paths = {p["path"] for p in refused.value.data["problems"]}
        assert "$.actions[0].notes[0].pitch" in paths
        assert len(fake.requests) == 2  # the answer, and the one repair
        repair = fake.requests[1].body["messages"][-1]["content"]
        assert "$.actions[0].notes[0].pitch" in repair
        good = json.dumps(
            {"actions": [{"type": "setTempo", "description": "Faster", "tempo": 140}],
             "summary": "Sped it up."}
        )  # fmt: skip
        fake.reset(Script(tokens=[good[:20], good[20:]]))
        result = await client.call(
            "agent/run",
            {"prompt": "faster", "context": CONTEXT, "model": "openai/gpt-4.1-mini"},
        )
        assert result["model"] == "openai/gpt-4.1-mini"
        assert result["actions"] == [{"type": "setTempo", "description": "Faster", "tempo": 140}]
        assert result["summary"] == "Sped it up."
        report = await client.call(
            "usage/report",
            {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z", "groupBy": "model"},
        )
        (row,) = report["items"]  # the run was billed to the tenant
        assert (row["key"], row["inputTokens"]) == ("openai/gpt-4.1-mini", 12)
        assert row["costUsd"] > 0


async def test_a_run_reports_progress_per_step_and_can_be_cancelled(server: Running) -> None:
    async with await server.client(capabilities=DAW) as daw:
        hold = asyncio.Event()

        @daw.on_request("client/applyActions")
        async def apply(params: dict[str, Any]) -> dict[str, Any]:
            if params["step"] == 2:
                await hold.wait()  # the DAW takes its time: the user cancels
            return {"applied": True, "errors": []}

        progress = daw.subscribe("notifications/progress")
        request_id, waiter = await daw.start(
            "agent/run",
            {
                "prompt": "tempo 100, then tempo 110",
                "context": CONTEXT,
                "apply": "client",
                "_meta": {"progressToken": "run-1"},
            },
        )
        first = await daw.next(progress)
        assert first.params["progressToken"] == "run-1"
        assert first.params["progress"] == 1
        await daw.next(progress)  # step 2 starts waiting on the DAW
        await daw.cancel(request_id)
        with pytest.raises(RemoteError) as cancelled:
            await daw.result(request_id, waiter, timeout=5)
        assert cancelled.value.wire_code == -32800
        hold.set()
