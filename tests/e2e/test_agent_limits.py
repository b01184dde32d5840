"""agent/run with huge DAW contexts: past the caps a clear -32602; under them the run
completes and another tenant's pings stay responsive (figures printed with ``-s``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.latency import Pinger
from tests.support import Running, running_server
from yamabiko.client import RemoteError
from yamabiko.schema.daw import MAX_CONTEXT_NOTES, MAX_TRACKS


def context(tracks: int, notes: int = 0) -> dict[str, Any]:
    return {
        "project": {
            "name": "Huge",
            "tempo": 120,
            "key": "C major",
            "timeSignature": "4/4",
            "tracks": [
                {
                    "id": f"t{i}",
                    "name": f"Track {i}",
                    "type": "midi",
                    "volume": 0.8,
                    "pan": 0.0,
                    "muted": False,
                    "notes": [
                        {"pitch": 60 + j % 12, "start": j, "duration": 1, "velocity": 90}
                        for j in range(notes)
                    ],
                }
                for i in range(tracks)
            ],
        }
    }


async def test_more_tracks_than_the_cap_is_refused_naming_the_field(server: Running) -> None:
    async with await server.client() as client:
        with pytest.raises(RemoteError) as refused:
            await client.call(
                "agent/run", {"prompt": "set the tempo to 128", "context": context(10_000)}
            )
        assert refused.value.remote_code == -32602
        assert refused.value.message.endswith("- at $.context.project.tracks")
        assert f"<= {MAX_TRACKS}" in refused.value.message


async def test_more_notes_than_the_cap_is_refused(tmp_path: Path) -> None:
    # More notes than fit in the default 1 MiB message: an operator raised the limit.
    async with (
        running_server(tmp_path, max_message_bytes=8 << 20) as server,
        await server.client() as client,
    ):
        huge = context(100, MAX_CONTEXT_NOTES // 100 + 1)
        with pytest.raises(RemoteError) as refused:
            await client.call("agent/run", {"prompt": "set the tempo to 128", "context": huge})
        assert refused.value.remote_code == -32602
        assert f"holds {MAX_CONTEXT_NOTES + 100} notes, more than {MAX_CONTEXT_NOTES}" in (
            refused.value.message
        )


async def test_a_run_on_a_context_at_the_caps_leaves_another_tenant_responsive(
    server: Running,
) -> None:
    big = context(MAX_TRACKS, 10)  # ~0.75 MB: 1,000 tracks, 10,000 notes
    prompt = "add a bassline and set the tempo to 128 and transpose track 5 up 2 semitones"
    async with await server.client() as client, await server.client("bob", "globex") as victim:
        async with Pinger(victim) as pinger:
            started = time.perf_counter()
            for _ in range(5):
                result = await client.call("agent/run", {"prompt": prompt, "context": big})
            elapsed = time.perf_counter() - started
        kinds = {a["type"] for a in result["actions"]}
        assert {"setTempo", "addTrack", "addNotes"} <= kinds
        print(f"\n5 agent/run on 1,000 tracks x 10 notes in {elapsed:.2f} s")
        assert pinger.report("ping while agent/run plans on a context at the caps") < 1.0
