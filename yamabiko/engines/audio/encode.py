"""Incremental encoders: float32 sample blocks in, frame payloads out.

Theory of operation. The audio handler makes one :class:`Encoder` per stream with
:func:`encoder`, feeds it the engine's blocks in order (:meth:`Encoder.encode`, one
payload per block, one frame per payload) and ends with :meth:`Encoder.finish` (the
tail: one last payload). The concatenation of every payload, in order, is a complete
file of the format: ``soundfile.read(io.BytesIO(b"".join(payloads)))`` gives back the
samples, mono, at the stream's rate.

Formats (:data:`FORMATS`):

- ``pcm16``: raw little-endian int16 mono, clipped to [-1, 1]; no header (decode it as
  RAW, PCM_16, little-endian). A block of ``n`` samples is exactly ``2 n`` bytes.
- ``wav``: RIFF/WAVE PCM16. The 44-byte header leads the *first* payload; with
  ``total_samples`` known it carries the exact sizes, otherwise the streaming sizes
  ``0xFFFFFFFF`` (readers take the data up to the end of the file). Then as ``pcm16``.
- ``flac``: FLAC (16 bit) by libsndfile/libFLAC. libFLAC emits a frame once it has a
  block of 4096 samples, so most payloads are empty and the rest carry one or more FLAC
  frames; the tail flushes the last one. libFLAC rewrites STREAMINFO (sample count,
  frame sizes, MD5) when it closes, but those bytes have left already: the encoder
  writes the sample count into STREAMINFO itself before the first payload leaves, and
  the frame sizes and MD5 stay "unknown" (zeros), which the format allows. Give
  ``total_samples`` for FLAC: without it STREAMINFO says "length unknown" (as a FLAC
  encoder writing to a pipe does); ffmpeg and libFLAC decode that, but libsndfile (hence
  ``soundfile``) cannot read such a stream.
- ``ogg``: Ogg Opus at the rates Opus supports (8, 12, 16, 24, 48 kHz), Ogg Vorbis at
  any other rate (see :func:`ogg_codec`). Opus packets come from libopus through
  ``opuslib_next`` and are paged here (:class:`_OggPager`), a page every
  :data:`OPUS_PAGE_MS` or so: libsndfile's Opus writer holds a page for a second and
  does not offer its page latency through soundfile's public API. Vorbis goes through
  libsndfile; its pages leave when libogg fills one (about 4 KiB), so a short Vorbis
  stream arrives mostly in the tail.

Only ``pcm16`` and ``wav`` payloads follow the blocks exactly (a ``frameMs`` block is a
``frameMs`` payload, :attr:`FormatInfo.exact_frames`); a ``flac`` or ``ogg`` payload is
whatever the codec produced for its block, possibly ``b""``.

Length. With ``total_samples`` the stream has exactly that many samples: a shorter
input is padded with silence at :meth:`Encoder.finish` and samples past the count are
dropped (the WAV and FLAC headers announced the count before the samples came). An
empty stream is a lone header; libsndfile reads it back for ``wav`` only (FLAC's 0 means
"unknown length", and an Ogg stream without an audio page is malformed to it).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

import numpy as np
import numpy.typing as npt
import soundfile  # type: ignore[import-untyped]

from yamabiko.engines.audio.base import Samples

AudioFormat = Literal["pcm16", "wav", "flac", "ogg"]


@dataclass(frozen=True, slots=True)
class FormatInfo:
    name: AudioFormat
    mime_type: str
    extension: str
    exact_frames: bool
    """Each payload is exactly its block's samples (``pcm16``, ``wav`` after the header);
    otherwise a payload is what the codec produced (possibly nothing)."""


FORMATS: Final[dict[str, FormatInfo]] = {
    "pcm16": FormatInfo("pcm16", "audio/pcm", "pcm", exact_frames=True),
    "wav": FormatInfo("wav", "audio/wav", "wav", exact_frames=True),
    "flac": FormatInfo("flac", "audio/flac", "flac", exact_frames=False),
    "ogg": FormatInfo("ogg", "audio/ogg", "ogg", exact_frames=False),
}

OPUS_SAMPLE_RATES: Final = frozenset({8_000, 12_000, 16_000, 24_000, 48_000})
OPUS_PAGE_MS: Final = 40.0
"""How often an Ogg Opus page leaves (libsndfile's default, 1 s, is too laggy for a live
stream; a page costs about 30 bytes)."""

WAV_HEADER_BYTES: Final = 44
_STREAMING_SIZE: Final = 0xFFFF_FFFF


class Encoder(Protocol):
    format: AudioFormat
    sample_rate: int

    def encode(self, block: Samples) -> bytes:
        """The payload for this block (``b""`` while a codec buffers)."""
        ...

    def finish(self) -> bytes:
        """The tail: whatever the codec still holds. Call once, after the last block."""
        ...


def ogg_codec(sample_rate: int) -> Literal["opus", "vorbis"]:
    """The codec in an ``ogg`` stream at this rate: Opus where it can, else Vorbis."""
    return "opus" if sample_rate in OPUS_SAMPLE_RATES else "vorbis"


def encoder(format: str, sample_rate: int, total_samples: int | None = None) -> Encoder:
    """A fresh encoder for one mono stream; ``total_samples`` when the length is known
    up front (exact WAV and FLAC headers). Raises ValueError for an unknown format or a
    rate outside 1 .. 655350 Hz."""
    if not 1 <= sample_rate <= 655_350:
        raise ValueError(f"unsupported sample rate {sample_rate}")
    if total_samples is not None and total_samples < 0:
        raise ValueError("total_samples must be >= 0")
    if format == "pcm16":
        return _Pcm16Encoder(sample_rate, total_samples)
    if format == "wav":
        return _WavEncoder(sample_rate, total_samples)
    if format == "flac":
        return _SoundFileEncoder("flac", sample_rate, total_samples)
    if format == "ogg":
        if ogg_codec(sample_rate) == "opus":
            return _OpusEncoder(sample_rate, total_samples)
        return _SoundFileEncoder("ogg", sample_rate, total_samples)
    raise ValueError(f"unknown audio format {format!r}")


def pcm16_bytes(block: npt.ArrayLike) -> bytes:
    """Little-endian int16 of a float block, clipped to [-1, 1] (NaN as 0)."""
    samples = np.nan_to_num(np.asarray(block, dtype=np.float32).reshape(-1))
    ints = np.rint(np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    return bytes(ints.tobytes())


def wav_header(sample_rate: int, total_samples: int | None) -> bytes:
    """The 44-byte RIFF/WAVE PCM16 mono header; streaming sizes for an unknown length
    (or one too long for RIFF's 32-bit sizes)."""
    data = None if total_samples is None else 2 * total_samples
    if data is None or data + 36 > _STREAMING_SIZE:
        riff_size = data_size = _STREAMING_SIZE
    else:
        riff_size, data_size = data + 36, data
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        riff_size,
        b"WAVE",
        b"fmt ",
        16,  # fmt chunk size
        1,  # PCM
        1,  # mono
        sample_rate,
        sample_rate * 2,  # bytes a second
        2,  # block align
        16,  # bits a sample
        b"data",
        data_size,
    )


class _Counted:
    """Holds a stream to its announced length: drops samples past it and tells
    :meth:`finish` how much silence is missing."""

    def __init__(self, total_samples: int | None) -> None:
        self.total_samples = total_samples
        self.samples = 0
        self.finished = False

    def take(self, block: Samples) -> npt.NDArray[np.float32]:
        if self.finished:
            raise RuntimeError("encode() after finish()")
        samples = np.asarray(block, dtype=np.float32).reshape(-1)
        if self.total_samples is not None:
            samples = samples[: max(0, self.total_samples - self.samples)]
        self.samples += samples.size
        return samples

    def missing(self) -> npt.NDArray[np.float32]:
        if self.finished:
            raise RuntimeError("finish() called twice")
        self.finished = True
        short = 0 if self.total_samples is None else self.total_samples - self.samples
        self.samples += short
        return np.zeros(short, dtype=np.float32)


class _Pcm16Encoder:
    format: AudioFormat = "pcm16"

    def __init__(self, sample_rate: int, total_samples: int | None) -> None:
        self.sample_rate = sample_rate
        self._count = _Counted(total_samples)

    def encode(self, block: Samples) -> bytes:
        return pcm16_bytes(self._count.take(block))

    def finish(self) -> bytes:
        return pcm16_bytes(self._count.missing())


class _WavEncoder(_Pcm16Encoder):
    format: AudioFormat = "wav"

    def __init__(self, sample_rate: int, total_samples: int | None) -> None:
        super().__init__(sample_rate, total_samples)
        self._header: bytes | None = wav_header(sample_rate, total_samples)

    def _with_header(self, payload: bytes) -> bytes:
        header, self._header = self._header, None
        return payload if header is None else header + payload

    def encode(self, block: Samples) -> bytes:
        return self._with_header(super().encode(block))

    def finish(self) -> bytes:
        return self._with_header(super().finish())


class _Sink:
    """The write-only file libsndfile writes into. Bytes are handed out as payloads by
    :meth:`take` and can no longer change, so libsndfile's late rewrites of a header
    (it seeks back on close) are dropped; bytes not yet taken can be rewritten."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self._taken = 0  # bytes before _pending, already handed out
        self._position = 0

    @property
    def size(self) -> int:
        return self._taken + len(self._pending)

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        start, end = self._position, self._position + len(chunk)
        self._position = end
        if end <= self._taken:
            return len(chunk)  # a rewrite of bytes gone: dropped
        if start < self._taken:
            chunk, start = chunk[self._taken - start :], self._taken
        offset = start - self._taken
        if offset > len(self._pending):
            self._pending.extend(bytes(offset - len(self._pending)))
        self._pending[offset : offset + len(chunk)] = chunk
        return len(chunk)

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._position, 2: self.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position

    def read(self, size: int = -1) -> bytes:
        return b""  # write-only: libsndfile does not read what it writes

    def pending(self) -> bytearray:
        return self._pending

    def take(self) -> bytes:
        out = bytes(self._pending)
        self._taken += len(out)
        self._pending.clear()
        return out


class _SoundFileEncoder:
    """FLAC or Ogg Vorbis through a :class:`soundfile.SoundFile` writing into a :class:`_Sink`."""

    def __init__(
        self, format: Literal["flac", "ogg"], sample_rate: int, total_samples: int | None
    ) -> None:
        self.format: AudioFormat = format
        self.sample_rate = sample_rate
        self._count = _Counted(total_samples)
        self._sink = _Sink()
        major, subtype = ("FLAC", "PCM_16") if format == "flac" else ("OGG", "VORBIS")
        self._file = soundfile.SoundFile(
            self._sink, "w", samplerate=sample_rate, channels=1, format=major, subtype=subtype
        )
        self._header_done = format != "flac" or total_samples is None

    def encode(self, block: Samples) -> bytes:
        samples = self._count.take(block)
        if samples.size:
            self._file.write(np.clip(samples, -1.0, 1.0))
        return self._take()

    def finish(self) -> bytes:
        silence = self._count.missing()
        if silence.size:
            self._file.write(silence)
        self._file.close()
        return self._take(final=True)

    def _take(self, final: bool = False) -> bytes:
        if not self._header_done:
            pending = self._sink.pending()
            if len(pending) < _FLAC_HEADER_BYTES:
                if not final:
                    return b""  # hold the header until STREAMINFO is complete
                if self._sink.size == 0:  # no samples at all: libsndfile writes nothing
                    self._header_done = True
                    return flac_header(self.sample_rate, 0)
                raise RuntimeError("libsndfile wrote a truncated FLAC header")
            _set_flac_total(pending, self._count.total_samples or 0)
            self._header_done = True
        return self._sink.take()


_FLAC_HEADER_BYTES: Final = 42  # "fLaC", a metadata block header, STREAMINFO


def flac_header(sample_rate: int, total_samples: int) -> bytes:
    """ "fLaC" and a lone STREAMINFO (16-bit mono, frame sizes and MD5 unknown): the
    whole of an empty stream."""
    fields = (sample_rate << 44) | (0 << 41) | (15 << 36) | total_samples
    info = struct.pack(">HH", 4096, 4096) + bytes(6) + fields.to_bytes(8, "big") + bytes(16)
    return b"fLaC" + bytes((0x80, 0, 0, len(info))) + info


def _set_flac_total(header: bytearray, total_samples: int) -> None:
    """Write the 36-bit total sample count into STREAMINFO (which libFLAC writes as 0,
    "unknown", until it seeks back on close)."""
    if header[:4] != b"fLaC" or header[4] & 0x7F != 0:
        raise RuntimeError("libsndfile wrote an unexpected FLAC header")
    if total_samples >= 1 << 36:
        return  # STREAMINFO cannot say it: leave "unknown"
    header[21] = (header[21] & 0xF0) | (total_samples >> 32)
    header[22:26] = (total_samples & 0xFFFF_FFFF).to_bytes(4, "big")


_OPUS_RATE: Final = 48_000
"""Ogg Opus counts granule positions at 48 kHz whatever the input rate (RFC 7845)."""
_OPUS_VENDOR: Final = b"yamabiko"
_OGG_BOS: Final = 0x02
_OGG_EOS: Final = 0x04
_OGG_CRC: Final = [0] * 256


def _ogg_crc_table() -> None:
    # Ogg's CRC-32: polynomial 0x04C11DB7, not reflected, initial 0 (not zlib's).
    for n in range(256):
        r = n << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C1_1DB7) if r & 0x8000_0000 else r << 1
        _OGG_CRC[n] = r & 0xFFFF_FFFF


_ogg_crc_table()


def _ogg_crc(data: bytes) -> int:
    crc = 0
    table = _OGG_CRC
    for byte in data:
        crc = ((crc << 8) & 0xFFFF_FFFF) ^ table[(crc >> 24) ^ byte]
    return crc


class _OggPager:
    """Ogg pages of one logical stream: packets in, whole pages out (RFC 3533). A page
    ends where the caller says (:meth:`page`); a packet never spans two pages here, so
    a page is at most 255 lacing values (:meth:`fits`)."""

    def __init__(self, serial: int) -> None:
        self._serial = serial
        self._sequence = 0
        self._lacing = bytearray()
        self._body = bytearray()

    def fits(self, packet: bytes) -> bool:
        return len(self._lacing) + len(packet) // 255 + 1 <= 255

    @property
    def empty(self) -> bool:
        return not self._lacing

    def add(self, packet: bytes) -> None:
        self._lacing.extend(b"\xff" * (len(packet) // 255))
        self._lacing.append(len(packet) % 255)
        self._body.extend(packet)

    def page(self, granule: int, flags: int = 0) -> bytes:
        header = struct.pack(
            "<4sBBqIIIB",
            b"OggS",
            0,  # version
            flags,
            granule,
            self._serial,
            self._sequence,
            0,  # CRC, filled in below
            len(self._lacing),
        )
        page = bytearray(header + self._lacing + self._body)
        struct.pack_into("<I", page, 22, _ogg_crc(bytes(page)))
        self._sequence += 1
        self._lacing.clear()
        self._body.clear()
        return bytes(page)


class _OpusEncoder:
    """Ogg Opus: libopus through ``opuslib_next``'s public ``Encoder``, paged by
    :class:`_OggPager`.

    libopus takes frames of exactly 20 ms, so blocks are buffered to whole frames. The
    encoder's look-ahead is the OpusHead's pre-skip; at the end, silence pads the last
    frame and covers the look-ahead, and the last page's granule position tells decoders
    where the audio ends (RFC 7845 end trimming)."""

    format: AudioFormat = "ogg"

    def __init__(self, sample_rate: int, total_samples: int | None) -> None:
        # Imported on first use: ctypes loads the libopus the package ships.
        import opuslib_next

        self.sample_rate = sample_rate
        self._count = _Counted(total_samples)
        self._codec = opuslib_next.Encoder(sample_rate, 1, "audio")
        self._frame = sample_rate // 50  # 20 ms
        self._lookahead = int(self._codec.lookahead)
        self._scale = _OPUS_RATE // sample_rate
        self._pre_skip = self._lookahead * self._scale
        self._pending: list[npt.NDArray[np.float32]] = []
        self._pending_samples = 0
        self._encoded = 0  # input samples encoded, padding included
        self._page_start = 0
        self._page_samples = round(_OPUS_RATE * OPUS_PAGE_MS / 1000)
        self._pager = _OggPager(serial=0x59414D41)  # "YAMA"
        head = struct.pack("<8sBBHIhB", b"OpusHead", 1, 1, self._pre_skip, sample_rate, 0, 0)
        self._pager.add(head)
        tags = b"OpusTags" + struct.pack("<I", len(_OPUS_VENDOR)) + _OPUS_VENDOR + bytes(4)
        headers = self._pager.page(0, _OGG_BOS)
        self._pager.add(tags)
        self._headers: bytes | None = headers + self._pager.page(0)

    def encode(self, block: Samples) -> bytes:
        samples = self._count.take(block)
        out = bytearray(self._take_headers())
        if samples.size:
            self._pending.append(np.clip(samples, -1.0, 1.0))
            self._pending_samples += samples.size
        if self._pending_samples >= self._frame:
            joined = np.concatenate(self._pending)
            whole = joined.size - joined.size % self._frame
            rest = joined[whole:]
            self._pending = [rest] if rest.size else []
            self._pending_samples = rest.size
            for start in range(0, whole, self._frame):
                out += self._packet(joined[start : start + self._frame], page=True)
        return bytes(out)

    def finish(self) -> bytes:
        silence = self._count.missing()
        out = bytearray(self._take_headers())
        tail = np.concatenate([*self._pending, silence]) if self._pending else silence
        self._pending, self._pending_samples = [], 0
        # Enough frames that the decoder, skipping the look-ahead, gets every sample.
        needed = self._count.samples + self._lookahead - self._encoded
        frames = -(-needed // self._frame)
        padded = np.zeros(frames * self._frame, dtype=np.float32)
        padded[: tail.size] = tail
        for start in range(0, padded.size, self._frame):
            # Not paged early: the padding must share the last page, whose granule trims it.
            out += self._packet(padded[start : start + self._frame], page=False)
        out += self._pager.page(self._pre_skip + self._count.samples * self._scale, _OGG_EOS)
        return bytes(out)

    def _take_headers(self) -> bytes:
        headers, self._headers = self._headers, None
        return headers or b""

    def _packet(self, frame: npt.NDArray[np.float32], *, page: bool) -> bytes:
        """Encode one 20 ms frame into the current page; ``page``: close the page once it
        holds :data:`OPUS_PAGE_MS`."""
        data = bytes(self._codec.encode_float(frame.astype("<f4").tobytes(), self._frame))
        out = b""
        if not self._pager.fits(data):
            out = self._pager.page(self._encoded * self._scale)
            self._page_start = self._encoded
        self._pager.add(data)
        self._encoded += self._frame
        if page and (self._encoded - self._page_start) * self._scale >= self._page_samples:
            out += self._pager.page(self._encoded * self._scale)
            self._page_start = self._encoded
        return out
