"""The encoders: every format's payloads, joined, are a file of the right length."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile

from yamabiko.engines.audio.base import AudioRequest, Note
from yamabiko.engines.audio.encode import (
    FORMATS,
    WAV_HEADER_BYTES,
    encoder,
    ogg_codec,
    pcm16_bytes,
    wav_header,
)
from yamabiko.engines.audio.singer import SingerEngine

QUANTUM = 1.0 / 32767


async def rendered(rate: int, seconds: float = 1.3) -> tuple[list[np.ndarray], np.ndarray]:
    notes = (
        Note(pitch=62, start=0, duration=seconds / 2, lyric="sa"),
        Note(pitch=66, start=seconds / 2, duration=seconds / 2, lyric="ku"),
    )
    request = AudioRequest(notes=notes, tempo=120, sample_rate=rate)
    block = rate * 20 // 1000  # frameMs 20
    blocks = [b async for b in SingerEngine().blocks(request, block)]
    return blocks, np.concatenate(blocks)


def encode_all(fmt: str, rate: int, blocks: list[np.ndarray], total: int | None) -> list[bytes]:
    codec = encoder(fmt, rate, total_samples=total)
    return [*(codec.encode(b) for b in blocks), codec.finish()]


def decode(fmt: str, data: bytes, rate: int) -> tuple[np.ndarray, int, int]:
    if fmt == "pcm16":
        with soundfile.SoundFile(
            io.BytesIO(data),
            samplerate=rate,
            channels=1,
            format="RAW",
            subtype="PCM_16",
            endian="LITTLE",
        ) as f:
            return f.read(dtype="float32"), f.samplerate, f.channels
    with soundfile.SoundFile(io.BytesIO(data)) as f:
        return f.read(dtype="float32"), f.samplerate, f.channels


@pytest.mark.parametrize(
    ("fmt", "rate", "known"),
    [
        ("pcm16", 24_000, True),
        ("pcm16", 24_000, False),
        ("wav", 24_000, True),
        ("wav", 44_100, False),
        ("flac", 24_000, True),
        ("flac", 8_000, True),
        ("ogg", 24_000, True),  # Opus
        ("ogg", 48_000, False),  # Opus
        ("ogg", 22_050, True),  # Vorbis
        ("ogg", 44_100, False),  # Vorbis
    ],
)
async def test_the_joined_payloads_decode_to_the_stream(fmt: str, rate: int, known: bool) -> None:
    blocks, samples = await rendered(rate)
    payloads = encode_all(fmt, rate, blocks, samples.size if known else None)
    decoded, decoded_rate, channels = decode(fmt, b"".join(payloads), rate)
    assert (decoded_rate, channels) == (rate, 1)
    frame = blocks[0].size
    assert abs(decoded.shape[0] - samples.size) <= frame
    if fmt in ("pcm16", "wav", "flac"):  # lossless but for 16-bit quantization
        assert decoded.shape[0] == samples.size
        # int16 at 32767 a unit, read back at 32768: within two quanta
        assert np.abs(decoded - samples).max() <= 2 * QUANTUM
    else:  # lossy: still the same signal, roughly
        n = min(decoded.shape[0], samples.size)
        correlation = np.corrcoef(decoded[:n], samples[:n])[0, 1]
        assert correlation > 0.9


async def test_pcm16_and_wav_frames_follow_the_blocks() -> None:
    blocks, _ = await rendered(24_000)
    for fmt in ("pcm16", "wav"):
        assert FORMATS[fmt].exact_frames
        payloads = encode_all(fmt, 24_000, blocks, None)
        header = WAV_HEADER_BYTES if fmt == "wav" else 0
        assert len(payloads[0]) == header + 2 * blocks[0].size
        assert [len(p) for p in payloads[1:-1]] == [2 * b.size for b in blocks[1:]]
        assert payloads[-1] == b""
    assert not FORMATS["flac"].exact_frames
    assert not FORMATS["ogg"].exact_frames


def test_wav_header_sizes() -> None:
    exact = wav_header(24_000, 1_000)
    assert exact[:4] == b"RIFF"
    assert exact[8:16] == b"WAVEfmt "
    assert struct.unpack_from("<I", exact, 4)[0] == 36 + 2_000
    assert struct.unpack_from("<I", exact, 40)[0] == 2_000
    streaming = wav_header(24_000, None)
    assert struct.unpack_from("<I", streaming, 4)[0] == 0xFFFF_FFFF
    assert struct.unpack_from("<I", streaming, 40)[0] == 0xFFFF_FFFF
    assert len(exact) == len(streaming) == WAV_HEADER_BYTES


async def test_flac_streaminfo_carries_the_sample_count() -> None:
    blocks, samples = await rendered(24_000)
    payloads = encode_all("flac", 24_000, blocks, samples.size)
    data = b"".join(payloads)
    assert data[:4] == b"fLaC"
    total = int.from_bytes(data[21:26], "big") & ((1 << 36) - 1)
    assert total == samples.size
    # The header left with the first frames, before libFLAC knew the count.
    first = next(p for p in payloads if p)
    assert payloads.index(first) < len(payloads) - 1
    assert first[:4] == b"fLaC"


async def test_a_stream_is_held_to_its_announced_length() -> None:
    blocks, samples = await rendered(16_000)
    for fmt in ("pcm16", "wav", "flac", "ogg"):
        short = encode_all(fmt, 16_000, blocks[:-5], samples.size)
        long = encode_all(fmt, 16_000, [*blocks, blocks[-1]], samples.size)
        for payloads in (short, long):
            decoded, _, _ = decode(fmt, b"".join(payloads), 16_000)
            assert abs(decoded.shape[0] - samples.size) <= (0 if fmt != "ogg" else blocks[0].size)


def test_pcm16_clips_and_rounds() -> None:
    data = pcm16_bytes(np.array([0.0, 1.0, -1.0, 2.0, -7.0, np.nan, 0.5], dtype=np.float32))
    assert np.frombuffer(data, "<i2").tolist() == [0, 32767, -32767, 32767, -32767, 0, 16384]


def test_ogg_uses_opus_where_opus_can() -> None:
    assert [ogg_codec(r) for r in (8_000, 12_000, 16_000, 24_000, 48_000)] == ["opus"] * 5
    assert [ogg_codec(r) for r in (11_025, 22_050, 32_000, 44_100)] == ["vorbis"] * 4


def test_an_empty_stream_does_not_crash() -> None:
    codec = encoder("wav", 24_000, total_samples=0)
    with soundfile.SoundFile(io.BytesIO(codec.finish())) as f:
        assert (f.frames, f.samplerate, f.channels) == (0, 24_000, 1)
    # No audio: libsndfile reads neither of these, but they are well-formed headers.
    assert encoder("flac", 24_000, total_samples=0).finish()[:4] == b"fLaC"
    assert encoder("ogg", 24_000).finish()[:4] == b"OggS"


def test_unknown_formats_and_misuse_are_refused() -> None:
    with pytest.raises(ValueError, match="format"):
        encoder("mp3", 24_000)
    with pytest.raises(ValueError, match="rate"):
        encoder("wav", 0)
    codec = encoder("pcm16", 24_000)
    codec.finish()
    with pytest.raises(RuntimeError):
        codec.encode(np.zeros(4, dtype=np.float32))


def test_opus_pages_leave_often() -> None:
    # Pages of about OPUS_PAGE_MS, not libsndfile's default second: a live stream.
    codec = encoder("ogg", 24_000)
    block = np.full(480, 0.1, dtype=np.float32)  # 20 ms
    sent = [i for i in range(25) if codec.encode(block)]
    assert len(sent) >= 5


def test_ogg_opus_reads_the_same_in_a_second_decoder() -> None:
    # FFmpeg (through PyAV, a test dependency) is another Ogg and Opus reader than
    # libsndfile's: both must find every page (CRCs, granules) and trim to the samples
    # given.
    import av

    rate, count = 16_000, 16_000 + 123
    tone = (0.3 * np.sin(2 * np.pi * 330 * np.arange(count) / rate)).astype(np.float32)
    codec = encoder("ogg", rate)
    payloads = [codec.encode(tone[i : i + 320]) for i in range(0, count, 320)]
    data = b"".join([*payloads, codec.finish()])
    with av.open(io.BytesIO(data)) as container:
        frames = list(container.decode(audio=0))
    decoded_rate = frames[0].sample_rate
    assert sum(f.samples for f in frames) == count * decoded_rate // rate
    with soundfile.SoundFile(io.BytesIO(data)) as f:
        assert f.frames == count
