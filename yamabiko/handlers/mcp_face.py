"""The MCP tools: ``chat``, ``agent_run``, ``music_generate``, ``ghost_complete`` and
``audio_synthesize``, over the same handlers and engines as the socket's methods.

Each tool has an input schema and an output schema generated from its msgspec types,
and needs the scope of the namespace it fronts (tools a caller lacks the scope for are
not listed, and calling one is an ``isError`` result). Arguments are decoded with the
same types the methods use, so a bad argument is an ``isError`` result naming the
field; any failure is one too, never a JSON-RPC error or a traceback.

- ``chat`` sends the message and waits for the whole reply (progress notifications
  carry the text so far when the call has ``_meta.progressToken``), returning the text,
  usage and ids.
- ``ghost_complete`` takes ``{text, language?, kind?}`` and completes at its end.
- ``audio_synthesize`` renders at most :data:`MAX_AUDIO_S` seconds to one WAV, returned
  as MCP audio content (base64).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from yamabiko.engines.audio.base import AudioEngineError
from yamabiko.engines.ghost.base import GhostRequest
from yamabiko.handlers import agent as agent_handlers
from yamabiko.handlers import chat as chat_handlers
from yamabiko.handlers import music as music_handlers
from yamabiko.handlers.audio import notes_of
from yamabiko.handlers.common import tenant, user
from yamabiko.handlers.mcp_logging import client_log
from yamabiko.protocol import errors
from yamabiko.schema import mcp as schema
from yamabiko.schema.agent import RunParams, RunResult
from yamabiko.schema.audio import SynthesizeParams
from yamabiko.schema.base import SCOPE_AGENT, SCOPE_AUDIO, SCOPE_CHAT, SCOPE_GHOST, Params, Result
from yamabiko.schema.chat import ChatSendParams
from yamabiko.schema.ghost import Suggestion
from yamabiko.schema.mcp import (
    CallToolParams,
    CallToolResult,
    ListToolsParams,
    ListToolsResult,
    ToolDescription,
)
from yamabiko.schema.music import GenerateParams, GenerateResult
from yamabiko.schema.stream import DeltaParams, EndParams
from yamabiko.services.container import services
from yamabiko.services.items import KIND_DELTA, KIND_END
from yamabiko.sessions.methods import Router
from yamabiko.sessions.session import Context

router = Router()
log = logging.getLogger("yamabiko.mcp")

MAX_AUDIO_S: Final = 30.0


class ChatReply(Result, kw_only=True):
    text: str
    finish_reason: str
    conversation_id: str
    message_id: str
    model: str | None = None
    input_tokens: int
    output_tokens: int
    cost_usd: float


class GhostCompleteArgs(Params):
    text: str
    language: str | None = None
    kind: str = "chat"


class GhostItems(Result):
    items: list[Suggestion]


class AudioArgs(SynthesizeParams):
    """``audio/synthesize``'s params; the result is one WAV file (``format`` is not
    used)."""


class AudioInfo(Result, kw_only=True):
    duration_ms: int
    sample_rate: int
    sha256: str


Run = Callable[[Context, Any], Awaitable[tuple[Result, list[dict[str, Any]] | None]]]


@dataclass(frozen=True)
class Tool:
    name: str
    title: str
    description: str
    scope: str
    params: type[msgspec.Struct]
    result: type[msgspec.Struct]
    run: Run


@functools.cache
def _schema(kind: type[msgspec.Struct]) -> dict[str, Any]:
    """The JSON Schema of a type as one object: its own schema, the others in
    ``$defs`` (where msgspec's references point)."""
    (top,), components = msgspec.json.schema_components([kind])
    name = str(top.get("$ref", "")).rpartition("/")[2]
    out: dict[str, Any] = dict(components.get(name, top))
    others = {k: v for k, v in components.items() if k != name}
    if others:
        out["$defs"] = others
    return out


class _DeltaNote(msgspec.Struct):
    params: DeltaParams


class _EndNote(msgspec.Struct):
    params: EndParams


async def _chat(ctx: Context, params: ChatSendParams) -> tuple[Result, None]:
    svc = services(ctx)
    sent = await chat_handlers.send(ctx, params)
    ctx.session.subscriptions.stop(sent.stream_id)  # this call reads the stream itself
    parts: list[str] = []
    end: EndParams | None = None
    async with await svc.broker.subscribe(sent.stream_id, 0) as subscription:
        async for item in subscription:
            if item.kind == KIND_DELTA:
                delta = msgspec.json.decode(item.payload, type=_DeltaNote).params
                parts.append(delta.text)
                ctx.progress(len(parts), None, "".join(parts))
            elif item.kind == KIND_END:
                end = msgspec.json.decode(item.payload, type=_EndNote).params
    assert end is not None
    return ChatReply(
        text="".join(parts),
        finish_reason=end.finish_reason,
        conversation_id=sent.conversation_id,
        message_id=sent.message_id,
        model=end.model,
        input_tokens=end.usage.input_tokens,
        output_tokens=end.usage.output_tokens,
        cost_usd=end.usage.cost_usd,
    ), None


async def _agent_run(ctx: Context, params: RunParams) -> tuple[RunResult, None]:
    if params.apply == "client":
        raise errors.InvalidParams("apply: client is for DAW clients, not MCP tools")
    return await agent_handlers.run(ctx, params), None


async def _music(ctx: Context, params: GenerateParams) -> tuple[GenerateResult, None]:
    return await music_handlers.generate_part(ctx, params), None


async def _ghost(ctx: Context, params: GhostCompleteArgs) -> tuple[GhostItems, None]:
    models = services(ctx).ghost
    engine = models.engine(models.default)
    kind = params.kind if params.kind in ("lyrics", "chat", "prompt", "notes") else "chat"
    request = GhostRequest(
        text=params.text,
        cursor=len(params.text),
        language=params.language,
        kind=kind,  # type: ignore[arg-type]
    )
    personal = await models.personal(tenant(ctx), user(ctx), engine.name)
    found = await engine.suggest(request, personal)
    return GhostItems(
        items=[Suggestion(id=str(i), text=s.text, score=s.score) for i, s in enumerate(found)]
    ), None


async def render_wav(ctx: Context, params: SynthesizeParams) -> tuple[bytes, float]:
    """The audio as one WAV file and its duration in seconds; at most
    :data:`MAX_AUDIO_S` (longer audio is for ``audio/synthesize``'s stream)."""
    from yamabiko.engines.audio.base import AudioRequest
    from yamabiko.engines.audio.encode import encoder

    svc = services(ctx)
    name = params.engine or ("singer" if params.notes else svc.audio.speech_engine)
    engine = svc.audio.engines.get(name)
    if engine is None:
        raise errors.EngineUnavailable(f"audio engine {name!r} is not configured")
    request = AudioRequest(
        text=params.text,
        lyrics=params.lyrics,
        notes=notes_of(params),
        tempo=params.tempo,
        voice=params.voice,
        sample_rate=params.sample_rate,
    )
    try:
        duration = engine.duration_s(request)
    except AudioEngineError as exc:
        raise errors.InvalidParams(str(exc)) from None
    if duration > MAX_AUDIO_S:
        raise errors.InvalidParams(
            f"at most {MAX_AUDIO_S:g} s of audio here (this would be {duration:.1f} s):"
            " use audio/synthesize to stream longer audio"
        )
    total = round(duration * params.sample_rate)
    codec = encoder("wav", params.sample_rate, total_samples=total)
    chunks: list[bytes] = []
    async for block in engine.blocks(request, params.sample_rate // 10):
        chunks.append(codec.encode(block))
    chunks.append(codec.finish())
    return b"".join(chunks), duration


async def _audio(ctx: Context, params: AudioArgs) -> tuple[AudioInfo, list[dict[str, Any]]]:
    data, duration = await render_wav(ctx, params)
    info = AudioInfo(
        duration_ms=round(duration * 1000),
        sample_rate=params.sample_rate,
        sha256=hashlib.sha256(data).hexdigest(),
    )
    content = [
        {"type": "audio", "data": base64.b64encode(data).decode("ascii"), "mimeType": "audio/wav"}
    ]
    return info, content


TOOLS: Final = (
    Tool(
        "chat", "Chat", "Send a message to the assistant and get its whole reply.",
        SCOPE_CHAT, ChatSendParams, ChatReply, _chat,
    ),
    Tool(
        "agent_run", "Edit a DAW project",
        "Plan validated edit actions for a DAW project from a prompt.",
        SCOPE_AGENT, RunParams, RunResult, _agent_run,
    ),
    Tool(
        "music_generate", "Generate music",
        "A drum pattern, bassline, chord progression, melody or harmony, in key.",
        SCOPE_AGENT, GenerateParams, GenerateResult, _music,
    ),
    Tool(
        "ghost_complete", "Complete text", "Ranked continuations of a text (at its end).",
        SCOPE_GHOST, GhostCompleteArgs, GhostItems, _ghost,
    ),
    Tool(
        "audio_synthesize", "Synthesize audio",
        f"Sing notes or speak text; returns a WAV (at most {MAX_AUDIO_S:g} s).",
        SCOPE_AUDIO, AudioArgs, AudioInfo, _audio,
    ),
)  # fmt: skip
_BY_NAME: Final = {tool.name: tool for tool in TOOLS}


@router.method(schema.TOOLS_LIST)
async def list_tools(ctx: Context, params: ListToolsParams) -> ListToolsResult:
    scopes = ctx.identity.scopes
    return ListToolsResult(
        tools=[
            ToolDescription(
                name=tool.name,
                title=tool.title,
                description=tool.description,
                input_schema=_schema(tool.params),
                output_schema=_schema(tool.result),
            )
            for tool in TOOLS
            if tool.scope in scopes
        ]
    )


@router.method(schema.TOOLS_CALL)
async def call_tool(ctx: Context, params: CallToolParams) -> CallToolResult:
    tool = _BY_NAME.get(params.name)
    if tool is None:
        return _error(f"unknown tool {params.name!r}: see tools/list")
    if tool.scope not in ctx.identity.scopes:
        return _error(f"tool {tool.name} needs scope {tool.scope!r}")
    try:
        arguments = msgspec.convert(params.arguments, tool.params)
    except msgspec.ValidationError as exc:
        return _error(f"invalid arguments: {str(exc).replace('`', '')}")
    client_log(ctx, "debug", {"tool": tool.name, "event": "started"})
    try:
        result, content = await tool.run(ctx, arguments)
    except errors.YamabikoError as exc:
        client_log(ctx, "warning", {"tool": tool.name, "event": "failed", "code": exc.code})
        return _error(exc.message)
    except Exception:
        error_id = uuid.uuid4().hex
        log.exception("tool failed", extra={"tool": tool.name, "errorId": error_id})
        client_log(ctx, "error", {"tool": tool.name, "event": "failed", "errorId": error_id})
        return _error(f"internal error (errorId {error_id})")
    client_log(ctx, "info", {"tool": tool.name, "event": "finished"})
    structured = msgspec.to_builtins(result)
    if content is None:
        content = [{"type": "text", "text": msgspec.json.encode(structured).decode()}]
    return CallToolResult(content=content, structured_content=structured)


def _error(message: str) -> CallToolResult:
    return CallToolResult(content=[{"type": "text", "text": message}], is_error=True)
