"""A fake Gemini API: ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``
(``/v1/`` too, the SDK's default version).

Streams ``GenerateContentResponse`` objects as ``data:`` lines, one per token, each with
``candidates[0].content.parts[0].text``; the last carries ``finishReason`` and the full
``usageMetadata``. Errors are ``{"error": {"code", "message", "status"}}`` bodies, or
the same object as an in-stream ``data:`` line. The key comes as ``x-goog-api-key`` (or
the ``key`` query parameter).
"""

from __future__ import annotations

import re
from typing import Any

from tests.fakes.server import FakeProvider, RecordedRequest, sse

_PATH = re.compile(r"^/(?P<version>v1beta|v1)/models/(?P<model>[^/:]+):streamGenerateContent$")
_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class FakeGemini(FakeProvider):
    base_path = "/"

    def matches(self, request: RecordedRequest) -> bool:
        return (
            request.method == "POST"
            and _PATH.match(request.path) is not None
            and request.query.get("alt") == "sse"
        )

    def api_key(self, request: RecordedRequest) -> str | None:
        return request.headers.get("x-goog-api-key") or request.query.get("key")

    def error_body(self, status: int, message: str) -> Any:
        return {
            "error": {
                "code": status,
                "message": message,
                "status": _STATUSES.get(status, "UNKNOWN"),
            }
        }

    def model(self, request: RecordedRequest) -> str:
        match = _PATH.match(request.path)
        return match.group("model") if match else ""

    def _response(
        self, request: RecordedRequest, text: str, finish: str | None, usage: dict[str, int]
    ) -> bytes:
        candidate: dict[str, Any] = {
            "content": {"parts": [{"text": text}], "role": "model"},
            "index": 0,
        }
        if finish is not None:
            candidate["finishReason"] = finish
        return sse(
            {
                "candidates": [candidate],
                "usageMetadata": usage,
                "modelVersion": self.model(request),
                "responseId": f"fake{len(self.requests)}",
            }
        )

    def token(self, request: RecordedRequest, index: int, text: str) -> bytes:
        usage = {
            "promptTokenCount": self.script.input_tokens,
            "totalTokenCount": self.script.input_tokens,
        }
        return self._response(request, text, None, usage)

    def closing(self, request: RecordedRequest, sent: int) -> list[bytes]:
        finish = "STOP" if self.script.finish == "stop" else "MAX_TOKENS"
        usage = {
            "promptTokenCount": self.script.input_tokens,
            "candidatesTokenCount": sent,
            "totalTokenCount": self.script.input_tokens + sent,
        }
        return [self._response(request, "", finish, usage)]

    def error_event(self) -> bytes:
        return sse(self.error_body(500, "An internal error has occurred."))
