"""Error codes and the exception tree.

Every error that can reach the wire is a :class:`YamabikoError` carrying its JSON-RPC
code. The tree, drawn once::

    YamabikoError                 code, message, data
    ├── ParseError                -32700  the peer sent bytes that are not JSON
    ├── InvalidRequest            -32600  JSON, but not a JSON-RPC 2.0 message
    ├── MethodNotFound            -32601
    ├── InvalidParams             -32602  message names the field path
    ├── InternalError             -32603  ours; data.errorId matches the log line
    ├── Unauthorized              -32001
    ├── NotInitialized            -32002
    ├── Forbidden                 -32003  missing scope
    ├── NotFound                  -32004  also for another tenant's objects
    ├── Conflict                  -32009
    ├── EngineUnavailable         -32010
    ├── BudgetExceeded            -32011
    ├── RateLimited               -32029  data.retryAfterMs
    ├── RequestCancelled          -32800
    ├── ContentModified           -32801
    ├── RemoteError               any     an error response the peer sent us
    ├── RequestTimeout            -32603  the peer did not answer our request in time
    └── ConnectionClosed          -32603  the connection closed before the peer answered

Whose fault: the first block (-32700 .. -32602) and the server codes are the peer's;
InternalError is ours. Nothing but the session turns an exception into a wire error, and
anything that is not a YamabikoError becomes InternalError there.
"""

from __future__ import annotations

from typing import Any, ClassVar

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
UNAUTHORIZED = -32001
NOT_INITIALIZED = -32002
FORBIDDEN = -32003
NOT_FOUND = -32004
CONFLICT = -32009
ENGINE_UNAVAILABLE = -32010
BUDGET_EXCEEDED = -32011
RATE_LIMITED = -32029
REQUEST_CANCELLED = -32800
CONTENT_MODIFIED = -32801


class YamabikoError(Exception):
    """Base of every error that has a wire form."""

    code: ClassVar[int] = INTERNAL_ERROR
    default_message: ClassVar[str] = "internal error"

    def __init__(self, message: str | None = None, data: Any = None) -> None:
        self.message = message or self.default_message
        self.data = data
        super().__init__(self.message)


class ParseError(YamabikoError):
    code = PARSE_ERROR
    default_message = "parse error"


class InvalidRequest(YamabikoError):
    code = INVALID_REQUEST
    default_message = "invalid request"


class MethodNotFound(YamabikoError):
    code = METHOD_NOT_FOUND
    default_message = "method not found"


class InvalidParams(YamabikoError):
    code = INVALID_PARAMS
    default_message = "invalid params"


class InternalError(YamabikoError):
    code = INTERNAL_ERROR
    default_message = "internal error"


class Unauthorized(YamabikoError):
    code = UNAUTHORIZED
    default_message = "unauthorized"


class NotInitialized(YamabikoError):
    code = NOT_INITIALIZED
    default_message = "session not initialized: send initialize first"


class Forbidden(YamabikoError):
    code = FORBIDDEN
    default_message = "forbidden"


class NotFound(YamabikoError):
    code = NOT_FOUND
    default_message = "not found"


class Conflict(YamabikoError):
    code = CONFLICT
    default_message = "conflict"


class EngineUnavailable(YamabikoError):
    code = ENGINE_UNAVAILABLE
    default_message = "engine unavailable"


class BudgetExceeded(YamabikoError):
    code = BUDGET_EXCEEDED
    default_message = "budget exceeded"


class RateLimited(YamabikoError):
    code = RATE_LIMITED
    default_message = "rate limited"

    def __init__(self, retry_after_ms: int, message: str | None = None, **extra: Any) -> None:
        super().__init__(message, {"retryAfterMs": max(0, int(retry_after_ms)), **extra})
        self.retry_after_ms = max(0, int(retry_after_ms))


class RequestCancelled(YamabikoError):
    code = REQUEST_CANCELLED
    default_message = "request cancelled"


class ContentModified(YamabikoError):
    code = CONTENT_MODIFIED
    default_message = "content modified"


class RequestTimeout(YamabikoError):
    code = INTERNAL_ERROR
    default_message = "the peer did not answer in time"


class RemoteError(YamabikoError):
    """An error response the peer sent to one of our requests."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message, data)
        self.remote_code = code

    @property
    def wire_code(self) -> int:
        return self.remote_code


class ConnectionClosed(YamabikoError, ConnectionError):
    """The connection closed while a request of ours waited for the peer's answer.

    The outcome every such waiter gets, in the server and the client alike (never a bare
    ``CancelledError``): ``close_code`` is the WebSocket close code when one is known,
    ``local`` says whose side ended the connection (True: ours). Also a
    :class:`ConnectionError`, so code written for a lost connection still catches it.
    """

    default_message = "connection closed"

    def __init__(self, close_code: int | None = None, reason: str = "", *, local: bool) -> None:
        side = "closed by us" if local else "closed by the peer"
        detail = f" ({close_code}{': ' + reason if reason else ''})" if close_code else ""
        super().__init__(f"connection {side} before the answer{detail}")
        self.close_code = close_code
        self.reason = reason
        self.local = local


def wire_code(exc: YamabikoError) -> int:
    """The code to put on the wire for ``exc``."""
    if isinstance(exc, RemoteError):
        return exc.remote_code
    return exc.code
