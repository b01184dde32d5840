"""A fake OpenAI Chat Completions API: ``POST .../chat/completions`` with
``stream: true``.

Streams ``chat.completion.chunk`` objects as ``data:`` lines: a first chunk with the
role, one chunk per token, a chunk with the ``finish_reason``, then (when the request
asked for ``stream_options.include_usage``) a usage chunk with empty ``choices``, and
``data: [DONE]``. Errors are ``{"error": {...}}`` bodies, or an in-stream
``data: {"error": ...}`` line. Any path ending in ``/chat/completions`` is served, as
OpenAI-compatible servers (vLLM, Ollama) mount it under different prefixes.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.server import FakeProvider, RecordedRequest, Script, bearer_or_header, sse

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "server_error",
}


class FakeOpenAI(FakeProvider):
    """``send_usage=False`` plays a compatible server that ignores ``include_usage``."""

    base_path = "/v1"

    def __init__(
        self, script: Script | None = None, *, threaded: bool = False, send_usage: bool = True
    ) -> None:
        super().__init__(script, threaded=threaded)
        self.send_usage = send_usage

    def matches(self, request: RecordedRequest) -> bool:
        return request.method == "POST" and request.path.endswith("/chat/completions")

    def api_key(self, request: RecordedRequest) -> str | None:
        return bearer_or_header(request.headers, "api-key")

    def error_body(self, status: int, message: str) -> Any:
        kind = _ERROR_TYPES.get(status, "server_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}

    def _chunk(self, request: RecordedRequest, choices: list[Any], usage: Any = None) -> bytes:
        body = request.body if isinstance(request.body, dict) else {}
        chunk: dict[str, Any] = {
            "id": f"chatcmpl-fake{len(self.requests)}",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": str(body.get("model", "gpt-fake")),
            "system_fingerprint": "fp_fake",
            "choices": choices,
        }
        if self._usage_wanted(request):
            chunk["usage"] = usage
        return sse(chunk)

    @staticmethod
    def _include_usage(request: RecordedRequest) -> bool:
        body = request.body if isinstance(request.body, dict) else {}
        options = body.get("stream_options") or {}
        return bool(options.get("include_usage"))

    def _usage_wanted(self, request: RecordedRequest) -> bool:
        return self.send_usage and self._include_usage(request)

    def opening(self, request: RecordedRequest) -> list[bytes]:
        delta = {"role": "assistant", "content": ""}
        return [self._chunk(request, [{"index": 0, "delta": delta, "finish_reason": None}])]

    def token(self, request: RecordedRequest, index: int, text: str) -> bytes:
        return self._chunk(
            request, [{"index": 0, "delta": {"content": text}, "finish_reason": None}]
        )

    def closing(self, request: RecordedRequest, sent: int) -> list[bytes]:
        frames = [
            self._chunk(request, [{"index": 0, "delta": {}, "finish_reason": self.script.finish}])
        ]
        if self._usage_wanted(request):
            usage = {
                "prompt_tokens": self.script.input_tokens,
                "completion_tokens": sent,
                "total_tokens": self.script.input_tokens + sent,
            }
            frames.append(self._chunk(request, [], usage))
        frames.append(sse("[DONE]"))
        return frames

    def error_event(self) -> bytes:
        return sse(self.error_body(500, "The server had an error while processing your request."))
