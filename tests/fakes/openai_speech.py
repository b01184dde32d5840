"""A fake OpenAI speech API: ``POST .../audio/speech`` answering raw PCM.

The body is what OpenAI sends for ``response_format: "pcm"``: 16-bit signed
little-endian mono samples at 24 kHz, chunked. The audio is a deterministic tone
(:attr:`FakeSpeech.frequency`, 220 Hz by default) lasting :attr:`FakeSpeech.seconds_per_char`
seconds per character of ``input``, so a test knows the exact sample count
(:meth:`FakeSpeech.samples_for`) and the frequency to find. Chunks are
:attr:`FakeSpeech.chunk_bytes` long, by default an odd number so that samples straddle
chunks, as they may over a real connection.

The :class:`~tests.fakes.server.Script` steers it as it does the other fakes:
``fail_status``/``fail_times`` answer an error body instead, ``first_delay`` waits before
the first chunk, ``delay`` before each chunk, ``fail_after`` drops the connection after
that many chunks, ``expect_key`` wants that bearer key. ``tokens_sent`` on a recorded
request counts the chunks sent. Formats other than ``pcm`` (the API's default is mp3)
get 400, as do requests without ``model``, ``input`` or ``voice``.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from tests.fakes.server import (
    FakeProvider,
    RecordedRequest,
    ResponseWriter,
    Script,
    bearer_or_header,
)

SAMPLE_RATE: Final = 24_000
"""OpenAI's PCM rate."""
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    429: "rate_limit_exceeded",
}


class FakeSpeech(FakeProvider):
    """``frequency``, ``seconds_per_char`` and ``chunk_bytes`` shape the answer."""

    base_path = "/v1"

    def __init__(
        self,
        script: Script | None = None,
        *,
        threaded: bool = False,
        frequency: float = 220.0,
        seconds_per_char: float = 0.01,
        chunk_bytes: int = 4801,
    ) -> None:
        super().__init__(script, threaded=threaded)
        self.frequency = frequency
        self.seconds_per_char = seconds_per_char
        self.chunk_bytes = chunk_bytes

    # -- what it says ----------------------------------------------------------------

    def samples_for(self, text: str) -> int:
        """How many 24 kHz samples the answer to ``text`` has."""
        return round(len(text) * self.seconds_per_char * SAMPLE_RATE)

    def pcm(self, text: str) -> bytes:
        """The whole answer to ``text``: a sine at half scale, as int16 LE bytes."""
        t = np.arange(self.samples_for(text)) / SAMPLE_RATE
        tone = 0.5 * np.sin(2 * np.pi * self.frequency * t)
        return (tone * 32767).round().astype("<i2").tobytes()

    # -- FakeProvider hooks ----------------------------------------------------------

    def matches(self, request: RecordedRequest) -> bool:
        return request.method == "POST" and request.path.endswith("/audio/speech")

    def api_key(self, request: RecordedRequest) -> str | None:
        return bearer_or_header(request.headers, "api-key")

    def error_body(self, status: int, message: str) -> Any:
        kind = _ERROR_TYPES.get(status, "server_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}

    def check(self, request: RecordedRequest) -> tuple[int, str] | None:
        body = request.body if isinstance(request.body, dict) else {}
        for name in ("model", "input", "voice"):
            if not body.get(name):
                return 400, f"missing required parameter: '{name}'"
        fmt = body.get("response_format", "mp3")
        if fmt != "pcm":
            return 400, f"this fake serves response_format 'pcm' only, not {fmt!r}"
        return None

    async def _stream(self, request: RecordedRequest, response: ResponseWriter) -> None:
        script = self.script
        body = request.body if isinstance(request.body, dict) else {}
        data = self.pcm(str(body["input"]))
        # The base writer's start_stream() announces an event stream; speech is audio.
        head = response._head(
            200, [("content-type", "audio/pcm"), ("transfer-encoding", "chunked")]
        )
        await response._write(head)
        await response.sleep(script.first_delay)
        for index, start in enumerate(range(0, len(data), self.chunk_bytes)):
            if script.fail_after is not None and index >= script.fail_after:
                response.drop()
                return
            await response.sleep(script.delay)
            await response.event(data[start : start + self.chunk_bytes])
            request.tokens_sent += 1
        await response.end_stream()
