"""A fake Anthropic Messages API: ``POST /v1/messages`` with ``stream: true``.

Speaks the SSE event sequence of the real API: ``message_start``,
``content_block_start``, a ``ping``, one ``content_block_delta`` (``text_delta``) per
token, ``content_block_stop``, ``message_delta`` (stop reason and usage) and
``message_stop``; errors as ``{"type": "error", "error": {...}}`` bodies or an ``error``
event. Accepts the key as ``x-api-key`` or ``Authorization: Bearer`` (SDK 2.x sends the
latter) and requires an ``anthropic-version`` header.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.server import FakeProvider, RecordedRequest, bearer_or_header, sse

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


class FakeAnthropic(FakeProvider):
    base_path = ""

    def matches(self, request: RecordedRequest) -> bool:
        return request.method == "POST" and request.path == "/v1/messages"

    def api_key(self, request: RecordedRequest) -> str | None:
        return bearer_or_header(request.headers, "x-api-key")

    def error_body(self, status: int, message: str) -> Any:
        kind = _ERROR_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}

    def check(self, request: RecordedRequest) -> tuple[int, str] | None:
        if "anthropic-version" not in request.headers:
            return (400, "anthropic-version header is required")
        if self.api_key(request) is None:
            return (401, "x-api-key or authorization header is required")
        return None

    def _model(self, request: RecordedRequest) -> str:
        body = request.body if isinstance(request.body, dict) else {}
        return str(body.get("model", "claude-fake"))

    def opening(self, request: RecordedRequest) -> list[bytes]:
        message = {
            "id": f"msg_fake_{len(self.requests)}",
            "type": "message",
            "role": "assistant",
            "model": self._model(request),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.script.input_tokens, "output_tokens": 1},
        }
        return [
            sse({"type": "message_start", "message": message}, "message_start"),
            sse(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            ),
            sse({"type": "ping"}, "ping"),
        ]

    def token(self, request: RecordedRequest, index: int, text: str) -> bytes:
        delta = {"type": "text_delta", "text": text}
        return sse(
            {"type": "content_block_delta", "index": 0, "delta": delta}, "content_block_delta"
        )

    def closing(self, request: RecordedRequest, sent: int) -> list[bytes]:
        reason = "end_turn" if self.script.finish == "stop" else "max_tokens"
        return [
            sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": None},
                    "usage": {"output_tokens": sent},
                },
                "message_delta",
            ),
            sse({"type": "message_stop"}, "message_stop"),
        ]

    def error_event(self) -> bytes:
        return sse(self.error_body(529, "Overloaded"), "error")
