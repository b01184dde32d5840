"""Audio end to end: synthesis streamed in frames, binary and base64, resumable, cancellable."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from tests.engines.audio.tiny_audio_models import write_model_dir
from tests.fakes import FakeSpeech, Script
from tests.support import Running, running_server
from yamabiko.client import Client, RemoteError

AUDIO = ("audio/frame", "audio/end", "stream/error")
BINARY = {"audio": {"binary": True}}
HEADER = struct.Struct(">2sBBII")
# Four bars of 4/4 at 120 bpm: eight half notes, a rest in bar 3.
MELODY = [
    {"pitch": p, "start": float(i * 2), "duration": 2.0, "lyric": syllable}
    for i, (p, syllable) in enumerate(
        [(60, "ka"), (62, "ze"), (64, "no"), (65, "u"), (0, ""), (67, "ta"), (69, "o"), (72, "la")]
    )
    if i != 4
]


@dataclass
class Received:
    frames: list[tuple[int, bytes, bool]] = field(default_factory=list)
    """(seq, payload, last), in arrival order."""
    end: dict[str, Any] | None = None

    @property
    def payload(self) -> bytes:
        return b"".join(data for _, data, _ in self.frames)

    @property
    def seqs(self) -> list[int]:
        return [seq for seq, _, _ in self.frames]


async def receive(
    client: Client, sub: Any, stream_id: str, *, binary: bool, into: Received | None = None
) -> Received:
    """Read one audio stream to its audio/end: binary frames from the client's binary
    queue, base64 ones from the notifications."""
    got = into or Received()
    frames = client.binary_frames() if binary else None
    while got.end is None:
        if frames is not None and (got.frames == [] or not got.frames[-1][2]):
            data = await asyncio.wait_for(anext(frames), 10)
            magic, version, flags, _number, seq = HEADER.unpack_from(data)
            assert (magic, version) == (b"YA", 1)
            got.frames.append((seq, data[HEADER.size :], bool(flags & 1)))
            continue
        note = await client.next(sub, 10)
        if note.params.get("streamId") != stream_id:
            continue
        if note.method == "audio/frame":
            params = note.params
            got.frames.append((params["seq"], base64.b64decode(params["data"]), params["last"]))
        elif note.method == "audio/end":
            got.end = note.params
        else:
            raise AssertionError(f"unexpected {note.method}: {note.params}")
    return got


async def synthesize(
    client: Client, *, binary: bool = False, **params: Any
) -> tuple[dict[str, Any], Received]:
    sub = client.subscribe(*AUDIO)
    result = await client.call("audio/synthesize", {"notes": MELODY, **params})
    return result, await receive(client, sub, result["streamId"], binary=binary)


def decode(payload: bytes, fmt: str, rate: int) -> tuple[np.ndarray, int]:
    if fmt == "pcm16":
        return np.frombuffer(payload, dtype="<i2").astype(np.float32) / 32768.0, rate
    samples, decoded_rate = soundfile.read(io.BytesIO(payload), dtype="float32")
    return samples, decoded_rate


def pitch_of(samples: np.ndarray, rate: int) -> float:
    """The fundamental: the loudest peak, or the lowest of its subharmonics that is a
    peak too (formants can make an upper harmonic the loudest)."""
    size = len(samples) * 8
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)), n=size))
    low = int(50 * size / rate)  # nothing sung below 50 Hz
    peak = low + int(np.argmax(spectrum[low:]))
    for k in (4, 3, 2):
        centre = peak / k
        lo, hi = int(centre * 0.97), int(centre * 1.03) + 1
        if lo > low and spectrum[lo:hi].max() >= 0.1 * spectrum[peak]:
            return float((lo + int(np.argmax(spectrum[lo:hi]))) * rate / size)
    return float(peak * rate / size)


@pytest.mark.parametrize("fmt", ["pcm16", "wav", "flac", "ogg"])
async def test_a_melody_streams_in_each_format_and_decodes_to_its_duration(
    server: Running, fmt: str
) -> None:
    rate = 48000 if fmt == "ogg" else 24000
    async with await server.client() as client:
        result, got = await synthesize(client, format=fmt, sampleRate=rate, frameMs=20)
    assert result["format"] == fmt
    assert (result["sampleRate"], result["channels"]) == (rate, 1)
    assert result["estimatedDurationMs"] == 8_000  # 16 beats at 120 bpm
    assert got.seqs == list(range(1, len(got.frames) + 1))
    assert [last for _, _, last in got.frames] == [False] * (len(got.frames) - 1) + [True]
    end = got.end
    assert end is not None
    assert end["frames"] == len(got.frames)
    assert end["seq"] == len(got.frames) + 1
    assert end["sha256"] == hashlib.sha256(got.payload).hexdigest()
    assert end["durationMs"] == 8_000
    samples, decoded_rate = decode(got.payload, fmt, rate)
    assert decoded_rate == rate
    assert abs(len(samples) - 16 * rate // 2) <= rate * 20 // 1000  # +-1 frame


async def test_binary_and_base64_delivery_carry_the_same_bytes(server: Running) -> None:
    async with (
        await server.client(capabilities=BINARY) as binary,
        await server.client(sub="bob") as text,
    ):
        by_binary = (await synthesize(binary, binary=True, format="wav"))[1]
        by_text = (await synthesize(text, format="wav"))[1]
    assert by_binary.payload == by_text.payload
    assert by_binary.seqs == by_text.seqs
    assert by_binary.end == {**by_text.end, "streamId": by_binary.end["streamId"]}  # type: ignore[dict-item]


async def test_each_sung_note_has_its_pitch_and_a_rest_is_silence(server: Running) -> None:
    rate = 24000
    async with await server.client() as client:
        _, got = await synthesize(client, format="pcm16", sampleRate=rate)
    samples, _ = decode(got.payload, "pcm16", rate)
    per_beat = rate // 2
    for note in MELODY:
        middle = int((note["start"] + 0.5) * per_beat)
        segment = samples[middle : middle + per_beat]
        expected = 440.0 * 2 ** ((note["pitch"] - 69) / 12)
        # Within a quarter tone (a wrong note is a semitone off, 6%): the vibrato sways
        # 30-45 cents either way across half a second; the centre pitch over whole
        # vibrato cycles is held to 10 cents in tests/engines/audio.
        assert abs(pitch_of(segment, rate) - expected) / expected < 0.025, note
    rest = samples[int(8.2 * per_beat) : int(9.8 * per_beat)]  # beats 8-10: no note
    assert np.max(np.abs(rest)) < 1e-3


async def test_cancel_stops_frames_within_one_frame(server: Running) -> None:
    async with await server.client(capabilities=BINARY) as client:
        sub = client.subscribe(*AUDIO)
        result = await client.call(
            "audio/synthesize", {"notes": MELODY, "pace": "realtime", "frameMs": 20}
        )
        frames = client.binary_frames()
        for _ in range(5):
            await asyncio.wait_for(anext(frames), 5)
        answer = await client.call("audio/cancel", {"streamId": result["streamId"]})
        assert answer == {"cancelled": True}
        late = 0
        while True:
            data = await asyncio.wait_for(anext(frames), 5)
            _, _, flags, _, _ = HEADER.unpack_from(data)
            if flags & 1:
                break
            late += 1
        assert late <= 1
        note = await client.next(sub, 5)
        while note.method != "audio/end":
            note = await client.next(sub, 5)
        assert note.params["cancelled"] is True
        assert note.params["durationMs"] < 8_000
        assert await client.call("audio/cancel", {"streamId": result["streamId"]}) == {
            "cancelled": False
        }


async def test_realtime_streams_started_together_keep_to_their_clocks(server: Running) -> None:
    # Three streams at once on one connection: each frame arrives on its stream's
    # 20 ms grid, counted from the stream's first frame; none runs ahead of it.
    short = [dict(note, start=note["start"] / 4, duration=0.5) for note in MELODY[:3]]
    frame_s = 0.02
    async with await server.client(capabilities=BINARY) as client:
        streams = [
            await client.call(
                "audio/synthesize",
                {
                    "notes": short,  # 1.5 beats at 60 bpm
                    "tempo": 60,
                    "pace": "realtime",
                    "format": "pcm16",
                    "frameMs": 20,
                },
            )
            for _ in range(3)
        ]
        arrivals: dict[int, list[tuple[int, float]]] = {s["streamNo"]: [] for s in streams}
        frames = client.binary_frames()
        done = 0
        loop = asyncio.get_running_loop()
        while done < len(streams):
            data = await asyncio.wait_for(anext(frames), 10)
            _, _, flags, number, seq = HEADER.unpack_from(data)
            if flags & 1:
                done += 1  # the codec's tail, sent straight after the last audio
            else:
                arrivals[number].append((seq, loop.time()))
    duration_s = 1.5
    for got in arrivals.values():
        assert [seq for seq, _ in got] == list(range(1, len(got) + 1))
        assert len(got) == round(duration_s / frame_s)
        first = got[0][1]
        lateness = [at - (first + (seq - 1) * frame_s) for seq, at in got]
        # Never well ahead of the clock (a first frame delivered late makes the others
        # look a little early; a stream sent as fast as it renders would be a second
        # ahead).
        assert min(lateness) > -0.05, min(lateness)
        # And on it: the stream lasts its duration, most frames within a few ms.
        assert got[-1][1] - first < duration_s + 0.25
        assert sorted(abs(x) for x in lateness)[len(lateness) // 2] < 0.02


async def test_a_client_that_disconnects_resumes_the_rest_exactly_once(server: Running) -> None:
    first = await server.client(capabilities=BINARY)
    sub = first.subscribe(*AUDIO)
    short = [{"pitch": 69, "start": 0.0, "duration": 1.0, "lyric": "la"}]  # 0.5 s
    result = await first.call(
        "audio/synthesize", {"notes": short, "pace": "realtime", "format": "pcm16"}
    )
    frames = first.binary_frames()
    seen = Received()
    for _ in range(8):
        data = await asyncio.wait_for(anext(frames), 5)
        _, _, flags, _, seq = HEADER.unpack_from(data)
        seen.frames.append((seq, data[HEADER.size :], bool(flags & 1)))
    del sub
    await first.close()
    async with await server.client(capabilities=BINARY) as again:
        sub = again.subscribe(*AUDIO)
        answer = await again.call(
            "stream/subscribe", {"streamId": result["streamId"], "afterSeq": seen.seqs[-1]}
        )
        assert answer["streamNo"] >= 1
        rest = await receive(again, sub, result["streamId"], binary=True)
    assert seen.seqs + rest.seqs == list(range(1, len(seen.frames) + len(rest.frames) + 1))
    assert rest.end is not None
    assert rest.end["sha256"] == hashlib.sha256(seen.payload + rest.payload).hexdigest()


async def test_bad_requests_are_refused_naming_what_is_wrong(server: Running) -> None:
    async with await server.client() as client:
        cases: list[tuple[dict[str, Any], int, str]] = [
            ({"notes": [MELODY[0], {**MELODY[1], "pitch": 128}]}, -32602, "$.notes[1].pitch"),
            ({"notes": [{**MELODY[0], "duration": -1}]}, -32602, "$.notes[0].duration"),
            ({"notes": [MELODY[0], {**MELODY[1], "start": 0.5}]}, -32602, "notes[1]"),
            ({"notes": MELODY, "sampleRate": 4000}, -32602, "$.sampleRate"),
            ({"notes": MELODY, "frameMs": 5}, -32602, "$.frameMs"),
            ({"notes": [{**MELODY[0], "duration": 700}]}, -32602, "allowed"),
            ({}, -32602, "nothing to synthesize"),
            ({"notes": MELODY, "engine": "nope"}, -32010, "nope"),
        ]
        for params, code, words in cases:
            with pytest.raises(RemoteError) as refused:
                await client.call("audio/synthesize", params)
            assert refused.value.wire_code == code, params
            assert words in refused.value.message, refused.value.message
        running = [
            await client.call(
                "audio/synthesize", {"notes": MELODY, "pace": "realtime", "frameMs": 100}
            )
            for _ in range(4)
        ]
        with pytest.raises(RemoteError) as full:
            await client.call("audio/synthesize", {"notes": MELODY})
        assert full.value.wire_code == -32029
        assert full.value.data["limit"] == "maxAudioStreams"
        for started in running:
            await client.call("audio/cancel", {"streamId": started["streamId"]})
    async with await server.client(scopes=["chat"]) as chat_only:
        with pytest.raises(RemoteError) as forbidden:
            await chat_only.call("audio/synthesize", {"notes": MELODY})
        assert forbidden.value.wire_code == -32003


async def test_spoken_text_streams_too(server: Running) -> None:
    async with await server.client() as client:
        sub = client.subscribe(*AUDIO)
        result = await client.call(
            "audio/synthesize", {"text": "Take it from the top.", "format": "wav"}
        )
        got = await receive(client, sub, result["streamId"], binary=False)
    samples, _ = decode(got.payload, "wav", 24000)
    assert np.max(np.abs(samples)) > 0.05
    assert got.end is not None
    assert abs(got.end["durationMs"] - result["estimatedDurationMs"]) <= 20


async def test_the_tts_engine_speaks_through_the_providers_sdk(tmp_path: Path) -> None:
    text = "Bring the vocal up a touch."
    async with (
        FakeSpeech() as fake,
        running_server(
            tmp_path, env={"OPENAI_BASE_URL": fake.url, "OPENAI_API_KEY": "k"}
        ) as server,
        await server.client() as client,
    ):
        sub = client.subscribe(*AUDIO)
        result = await client.call(
            "audio/synthesize", {"text": text, "engine": "tts", "format": "pcm16", "voice": "verse"}
        )
        got = await receive(client, sub, result["streamId"], binary=False)
        assert fake.last.body["voice"] == "verse"
        assert fake.last.body["input"] == text
    samples, _ = decode(got.payload, "pcm16", 24000)
    assert len(samples) == fake.samples_for(text)
    assert abs(pitch_of(samples[:4800], 24000) - 220.0) < 3.0


async def test_the_onnx_pipeline_sings_through_the_server(tmp_path: Path) -> None:
    model_dir = write_model_dir(tmp_path / "singer")
    async with (
        running_server(tmp_path, audio_onnx_model_dir=str(model_dir)) as server,
        await server.client() as client,
    ):
        result, got = await synthesize(client, engine="onnx", format="pcm16")
    assert got.end is not None
    assert got.end["durationMs"] == result["estimatedDurationMs"] == 8_000
    samples, _ = decode(got.payload, "pcm16", 24000)
    per_beat = 12000
    note = MELODY[2]
    middle = int((note["start"] + 0.5) * per_beat)
    expected = 440.0 * 2 ** ((note["pitch"] - 69) / 12)
    assert abs(pitch_of(samples[middle : middle + per_beat], 24000) - expected) / expected < 0.02
    rest = samples[int(8.2 * per_beat) : int(9.8 * per_beat)]
    assert np.max(np.abs(rest)) < 1e-3


async def test_an_engine_failing_mid_stream_ends_the_stream_with_an_error(
    tmp_path: Path,
) -> None:
    async with (
        FakeSpeech(Script(fail_after=2)) as fake,
        running_server(tmp_path, env={"OPENAI_BASE_URL": fake.url}) as server,
        await server.client() as client,
    ):
        sub = client.subscribe(*AUDIO)
        result = await client.call(
            "audio/synthesize", {"text": "A long line " * 20, "engine": "tts", "format": "wav"}
        )
        items: list[tuple[str, dict[str, Any]]] = []
        while not items or items[-1][0] != "audio/end":
            note = await client.next(sub, 10)
            items.append((note.method, note.params))
        with pytest.raises(RemoteError) as flac:
            await client.call("audio/synthesize", {"text": "hi", "engine": "tts", "format": "flac"})
        assert flac.value.wire_code == -32602
    methods = [method for method, _ in items]
    assert methods[-2:] == ["stream/error", "audio/end"]
    error, end = items[-2][1], items[-1][1]
    assert error["code"] == -32010
    assert error["streamId"] == result["streamId"]
    frames = [params for method, params in items if method == "audio/frame"]
    assert frames[-1]["last"] is True
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    assert (error["seq"], end["seq"], end["frames"]) == (
        len(frames) + 1,
        len(frames) + 2,
        len(frames),
    )
