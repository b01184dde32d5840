"""MCP logging for one session: ``logging/setLevel`` sets the least severe
``notifications/message`` the session gets; handlers report with :func:`client_log`.

Nothing is sent until the client sets a level (a client that never asks for log
messages never pays for them). Messages say what a tool did (started, finished,
failed with which error id): never params, prompts or tokens (docs/mcp.md, Logging).
"""

from __future__ import annotations

from typing import Any, Final

from yamabiko.schema import mcp as schema
from yamabiko.schema.base import EmptyResult
from yamabiko.schema.mcp import LOG_LEVELS, LogLevel, LogMessageParams, SetLevelParams
from yamabiko.sessions.methods import Router
from yamabiko.sessions.session import Context

router = Router()

LOGGER: Final = "yamabiko"
_KEY: Final = "mcp.logLevel"
_RANK: Final = {level: rank for rank, level in enumerate(LOG_LEVELS)}


class _Level:
    """The session's level (a holder: :meth:`Session.local` keeps one object)."""

    __slots__ = ("rank",)

    def __init__(self) -> None:
        self.rank: int | None = None


def _level(ctx: Context) -> _Level:
    return ctx.session.local(_KEY, _Level)


@router.method(schema.LOGGING_SET_LEVEL)
async def set_level(ctx: Context, params: SetLevelParams) -> EmptyResult:
    _level(ctx).rank = _RANK[params.level]
    return EmptyResult()


def client_log(ctx: Context, level: LogLevel, data: Any) -> None:
    """Send ``data`` as ``notifications/message`` if the session asked for ``level``."""
    rank = _level(ctx).rank
    if rank is None or _RANK[level] < rank:
        return
    ctx.session.notify(
        schema.LOGGING_MESSAGE, LogMessageParams(level=level, logger=LOGGER, data=data)
    )
