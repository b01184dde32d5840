"""JSON log lines: one object per line on the ``yamabiko`` logger (docs/operations.md, Logs).

Each line has ``ts`` (RFC 3339, UTC, milliseconds), ``level``, ``logger``, ``msg``, every
field the caller passed with ``extra={...}`` (``session``, ``errorId``, ``method``,
``latencyMs``, ``traceId``, ...), and ``exc`` with the traceback when there is one.
Callers must not log secrets; as a second line of defence, fields named like secrets
(``token``, ``password``, ``authorization``, ...), at any depth, are written as
``[redacted]``.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

import msgspec

REDACTED = "[redacted]"
# Compared after lower-casing and dropping "_" and "-", so accessToken == access_token.
_SECRET_KEYS = frozenset(
    {"token", "accesstoken", "authorization", "password", "secret", "apikey", "value", "jwt"}
)
_SECRET_SUFFIXES = ("token", "secret", "password", "apikey")
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)
_encoder = msgspec.json.Encoder()


def _is_secret(key: str) -> bool:
    name = key.lower().replace("_", "").replace("-", "")
    return name in _SECRET_KEYS or name.endswith(_SECRET_SUFFIXES)


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if _is_secret(str(k)) else _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(item) for item in value]
    return value


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line; never raises on odd values."""

    def format(self, record: logging.LogRecord) -> str:
        created = time.gmtime(record.created)
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", created) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extras = {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS}
        # to_builtins first so Structs and dataclasses become dicts the redaction can see.
        try:
            builtins = msgspec.to_builtins(extras, enc_hook=str, str_keys=True)
        except (TypeError, ValueError):  # e.g. tuple dict keys: keep the line, lose detail
            builtins = {k: v if _is_secret(k) else str(v) for k, v in extras.items()}
        fields = _redact(builtins)
        for key, value in fields.items():
            line.setdefault(key, value)  # the fixed keys win over a colliding extra
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return _encoder.encode(line).decode()


class _JsonHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler as ours so a second configure_logging replaces it."""


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send ``yamabiko.*`` records at ``level`` and above to ``stream`` (stderr) as JSON.

    Idempotent: a handler from an earlier call is replaced, others are left alone. The
    root logger is not touched and records still propagate to it, so pytest's ``caplog``
    sees them; an application that gives the root its own handlers will get them twice.
    """
    logger = logging.getLogger("yamabiko")
    for handler in list(logger.handlers):
        if isinstance(handler, _JsonHandler):
            logger.removeHandler(handler)
            handler.close()
    handler = _JsonHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(level.upper())
