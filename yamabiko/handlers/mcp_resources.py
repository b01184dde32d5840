"""MCP resources, resource templates, prompts and completions (docs/mcp.md, Resources).

Resources are URIs under ``yamabiko://``, one kind per first path segment, each with
the scope it needs:

- ``conversations/{conversationId}`` (chat): the conversation and its newest 100
  messages, JSON; subscribable (``notifications/resources/updated`` when a message is
  added or a reply ends, on any node: :mod:`yamabiko.handlers.watch`);
- ``agents/{agentId}`` (agent): the agent, JSON;
- ``models`` and ``models/{model}`` (chat): the model catalogue, or one entry (by id or
  alias), JSON;
- ``music/{kind}/{key}/{style}/{seed}.json`` and ``.mid`` (agent): the part
  ``music/generate`` writes for those arguments (the same seed gives the same notes),
  as its JSON result or as a MIDI file (``audio/midi``, base64 ``blob``);
- ``audio/{engine}/{voice}/{text}.wav`` (audio): ``text`` spoken (``voice`` ``default``
  for the engine's own), at most 30 s, a WAV file (``audio/wav`` blob).

Path segments are percent-encoded (``A%20minor``). Another user's conversation or
agent is "not found", as one that does not exist. ``completion/complete`` offers
values for every template variable and prompt argument, filtered by prefix, at most
100, from what the caller may read.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import quote, unquote

import msgspec

from yamabiko.engines.music import DEFAULT_TEMPO, STYLES
from yamabiko.engines.music.midi import to_midi
from yamabiko.handlers import mcp_face
from yamabiko.handlers import music as music_handlers
from yamabiko.handlers.common import found, owner_filter, tenant
from yamabiko.handlers.presets import PRESETS
from yamabiko.protocol import errors
from yamabiko.schema import mcp as schema
from yamabiko.schema.audio import SynthesizeParams
from yamabiko.schema.base import SCOPE_AGENT, SCOPE_AUDIO, SCOPE_CHAT, EmptyResult
from yamabiko.schema.mcp import (
    CompleteParams,
    CompleteResult,
    Completion,
    GetPromptParams,
    GetPromptResult,
    ListParams,
    ListPromptsResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    PromptArgument,
    PromptDescription,
    PromptMessage,
    ReadResourceParams,
    ReadResourceResult,
    Resource,
    ResourceContents,
    ResourceTemplate,
)
from yamabiko.schema.music import GenerateParams
from yamabiko.schema.objects import AgentId, ConversationId
from yamabiko.services.container import services
from yamabiko.sessions.methods import Router
from yamabiko.sessions.session import Context

router = Router()

SCHEME: Final = "yamabiko://"
PREFIX: Final = SCHEME + "conversations/"
JSON: Final = "application/json"
MIDI: Final = "audio/midi"
WAV: Final = "audio/wav"
MESSAGES_READ: Final = 100
MAX_VALUES: Final = 100
"""Completion values in one answer (MCP's own limit)."""
MAX_SPOKEN_CHARS: Final = 500
MUSIC_KINDS: Final = ("drum_pattern", "bassline", "chord_progression", "melody", "harmony")
KEYS: Final = tuple(
    f"{tonic} {mode}"
    for mode in ("major", "minor")
    for tonic in ("C", "C#", "Db", "D", "Eb", "E", "F", "F#", "Gb", "G", "Ab", "A", "Bb", "B")
)

TEMPLATES: Final = (
    ResourceTemplate(
        uri_template=PREFIX + "{conversationId}", name="conversation", title="Conversation",
        description="A conversation and its newest 100 messages (scope chat).", mime_type=JSON,
    ),
    ResourceTemplate(
        uri_template=SCHEME + "agents/{agentId}", name="agent", title="Agent",
        description="An agent: model, personality, system prompt, skills (scope agent).",
        mime_type=JSON,
    ),
    ResourceTemplate(
        uri_template=SCHEME + "models/{model}", name="model", title="Model",
        description="A model catalogue entry, by id or alias (scope chat).", mime_type=JSON,
    ),
    ResourceTemplate(
        uri_template=SCHEME + "music/{kind}/{key}/{style}/{seed}.json", name="music",
        title="Generated music",
        description="A generated part (music/generate's result) for these arguments (scope agent).",
        mime_type=JSON,
    ),
    ResourceTemplate(
        uri_template=SCHEME + "music/{kind}/{key}/{style}/{seed}.mid", name="music-midi",
        title="Generated music (MIDI)",
        description="The same part as a MIDI file (scope agent).", mime_type=MIDI,
    ),
    ResourceTemplate(
        uri_template=SCHEME + "audio/{engine}/{voice}/{text}.wav", name="speech",
        title="Synthesized speech",
        description="The text spoken, at most 30 s, as a WAV file; voice 'default' for the"
        " engine's own (scope audio).",
        mime_type=WAV,
    ),
)  # fmt: skip


class ModelView(msgspec.Struct, kw_only=True, rename="camel"):
    """What a chat user may know of a catalogue entry (what ``model`` to pass)."""

    id: str
    provider: str
    aliases: list[str]
    context_window: int
    input_price_per_mtok: float
    output_price_per_mtok: float


def conversation_uri(conversation_id: str) -> str:
    return PREFIX + conversation_id


def _segments(uri: str) -> tuple[str, list[str]]:
    """The kind and the decoded path segments after it; not-found if not ours."""
    if not uri.startswith(SCHEME):
        raise errors.NotFound(f"resource not found: {uri}")
    kind, _, rest = uri[len(SCHEME) :].partition("/")
    return kind, [unquote(part) for part in rest.split("/")] if rest else []


def _need(ctx: Context, scope: str, uri: str) -> None:
    if scope not in ctx.identity.scopes:
        raise errors.Forbidden(f"forbidden: {uri} needs scope {scope!r}")


def _json(uri: str, value: Any) -> ReadResourceResult:
    text = msgspec.json.encode(value).decode()
    return ReadResourceResult(contents=[ResourceContents(uri=uri, mime_type=JSON, text=text)])


def _blob(uri: str, mime_type: str, data: bytes) -> ReadResourceResult:
    blob = base64.b64encode(data).decode("ascii")
    return ReadResourceResult(contents=[ResourceContents(uri=uri, mime_type=mime_type, blob=blob)])


# Listing


@router.method(schema.RESOURCES_LIST)
async def list_resources(ctx: Context, params: ListParams) -> ListResourcesResult:
    """First page: the model catalogue, the caller's agents (100 at most: the template
    reaches the others), then conversations; later pages continue the conversations."""
    store = services(ctx).store
    scopes = ctx.identity.scopes
    resources: list[Resource] = []
    if params.cursor is None:
        if SCOPE_CHAT in scopes:
            resources.append(
                Resource(uri=SCHEME + "models", name="models", title="Models", mime_type=JSON)
            )
        if SCOPE_AGENT in scopes:
            agents = await store.agents.list(tenant(ctx), owner=owner_filter(ctx), limit=100)
            resources += [
                Resource(uri=f"{SCHEME}agents/{a.id}", name=a.id, title=a.name, mime_type=JSON)
                for a in agents.items
            ]
    next_cursor: str | None = None
    if SCOPE_CHAT in scopes:
        page = await store.conversations.list(
            tenant(ctx), owner=owner_filter(ctx), limit=100, cursor=params.cursor
        )
        resources += [
            Resource(uri=conversation_uri(c.id), name=c.id, title=c.title or None, mime_type=JSON)
            for c in page.items
        ]
        next_cursor = page.next_cursor
    return ListResourcesResult(resources=resources, next_cursor=next_cursor)


@router.method(schema.RESOURCES_TEMPLATES_LIST)
async def list_templates(ctx: Context, params: ListParams) -> ListResourceTemplatesResult:
    return ListResourceTemplatesResult(resource_templates=list(TEMPLATES))


# Reading


@router.method(schema.RESOURCES_READ)
async def read_resource(ctx: Context, params: ReadResourceParams) -> ReadResourceResult:
    uri = params.uri
    kind, parts = _segments(uri)
    reader = _READERS.get(kind)
    if reader is None:
        raise errors.NotFound(f"resource not found: {uri}")
    return await reader(ctx, uri, parts)


async def _read_conversation(ctx: Context, uri: str, parts: list[str]) -> ReadResourceResult:
    _need(ctx, SCOPE_CHAT, uri)
    conversation_id = _conversation_id(uri)
    store = services(ctx).store
    conversation = found(
        await store.conversations.get(tenant(ctx), conversation_id, owner=owner_filter(ctx)),
        "resource",
        uri,
    )
    messages = await store.messages.recent(tenant(ctx), conversation_id, limit=MESSAGES_READ)
    return _json(uri, {"conversation": conversation, "messages": messages})


async def _read_agent(ctx: Context, uri: str, parts: list[str]) -> ReadResourceResult:
    _need(ctx, SCOPE_AGENT, uri)
    if len(parts) != 1 or not parts[0]:
        raise errors.NotFound(f"resource not found: {uri}")
    agent = await services(ctx).store.agents.get(
        tenant(ctx), AgentId(parts[0]), owner=owner_filter(ctx)
    )
    return _json(uri, found(agent, "resource", uri))


async def _read_models(ctx: Context, uri: str, parts: list[str]) -> ReadResourceResult:
    _need(ctx, SCOPE_CHAT, uri)
    store = services(ctx).store
    if not parts:
        page = await store.models.list(tenant(ctx), limit=100)
        return _json(uri, {"models": [_model_view(m) for m in page.items]})
    if len(parts) != 1:
        raise errors.NotFound(f"resource not found: {uri}")
    entry = found(await store.models.get(tenant(ctx), parts[0]), "resource", uri)
    return _json(uri, _model_view(entry))


def _model_view(entry: Any) -> ModelView:
    return ModelView(
        id=entry.id,
        provider=entry.provider,
        aliases=list(entry.aliases),
        context_window=entry.context_window,
        input_price_per_mtok=entry.input_price_per_mtok,
        output_price_per_mtok=entry.output_price_per_mtok,
    )


async def _read_music(ctx: Context, uri: str, parts: list[str]) -> ReadResourceResult:
    _need(ctx, SCOPE_AGENT, uri)
    if len(parts) != 4:
        raise errors.NotFound(f"resource not found: {uri}")
    kind, key, style, last = parts
    seed_text, dot, extension = last.rpartition(".")
    if not dot or extension not in ("json", "mid") or not seed_text.isdigit():
        raise errors.NotFound(f"resource not found: {uri} (the last segment is SEED.json or .mid)")
    try:
        params = msgspec.convert(
            {"kind": kind, "key": key, "style": style, "seed": int(seed_text)}, GenerateParams
        )
    except msgspec.ValidationError as exc:
        raise errors.InvalidParams(f"{uri}: {str(exc).replace('`', '')}") from None
    part = await music_handlers.generate_part(ctx, params)
    if extension == "json":
        return _json(uri, part)
    data = to_midi(part.notes, tempo=DEFAULT_TEMPO, drums=kind == "drum_pattern", name=kind)
    return _blob(uri, MIDI, data)


async def _read_audio(ctx: Context, uri: str, parts: list[str]) -> ReadResourceResult:
    _need(ctx, SCOPE_AUDIO, uri)
    if len(parts) != 3 or not parts[2].endswith(".wav"):
        raise errors.NotFound(f"resource not found: {uri} (the last segment is TEXT.wav)")
    engine, voice, text = parts[0], parts[1], parts[2][: -len(".wav")]
    if not text or len(text) > MAX_SPOKEN_CHARS:
        raise errors.InvalidParams(f"{uri}: the text is 1 to {MAX_SPOKEN_CHARS} characters")
    try:
        params = msgspec.convert(
            {"text": text, "engine": engine, "voice": None if voice == "default" else voice},
            SynthesizeParams,
        )
    except msgspec.ValidationError as exc:
        raise errors.InvalidParams(f"{uri}: {str(exc).replace('`', '')}") from None
    data, _ = await mcp_face.render_wav(ctx, params)
    return _blob(uri, WAV, data)


Reader = Callable[[Context, str, list[str]], Awaitable[ReadResourceResult]]
_READERS: Final[dict[str, Reader]] = {
    "conversations": _read_conversation,
    "agents": _read_agent,
    "models": _read_models,
    "music": _read_music,
    "audio": _read_audio,
}


def _conversation_id(uri: str) -> ConversationId:
    if not uri.startswith(PREFIX) or len(uri) == len(PREFIX):
        raise errors.NotFound(f"resource not found: {uri}")
    return ConversationId(uri[len(PREFIX) :])


# Subscriptions


@router.method(schema.RESOURCES_SUBSCRIBE)
async def subscribe(ctx: Context, params: ReadResourceParams) -> EmptyResult:
    """Conversations only: they are what changes (agents change by their owner's hand,
    the other resources are functions of their URI)."""
    if not params.uri.startswith(PREFIX):
        kind, _ = _segments(params.uri)  # not-found for URIs that are not ours
        if kind not in _READERS:
            raise errors.NotFound(f"resource not found: {params.uri}")
        raise errors.InvalidParams(
            f"only conversations can be subscribed to ({PREFIX}ID) - at $.uri"
        )
    _need(ctx, SCOPE_CHAT, params.uri)
    conversation_id = _conversation_id(params.uri)
    found(
        await services(ctx).store.conversations.get(
            tenant(ctx), conversation_id, owner=owner_filter(ctx)
        ),
        "resource",
        params.uri,
    )
    services(ctx).watch.watch(ctx.session, conversation_id)
    return EmptyResult()


@router.method(schema.RESOURCES_UNSUBSCRIBE)
async def unsubscribe(ctx: Context, params: ReadResourceParams) -> EmptyResult:
    services(ctx).watch.unwatch(ctx.session, _conversation_id(params.uri))
    return EmptyResult()


# Prompts

COMPOSE: Final = "compose"
_PROMPT_MODEL: Final = PromptArgument(name="model", description="The model to run it on.")


@router.method(schema.PROMPTS_LIST)
async def list_prompts(ctx: Context, params: ListParams) -> ListPromptsResult:
    prompts = [
        PromptDescription(
            name=p.id, title=p.name, description=p.description, arguments=[_PROMPT_MODEL]
        )
        for p in PRESETS
    ]
    prompts.append(
        PromptDescription(
            name=COMPOSE,
            title="Compose",
            description="Ask for a part in a key and style (music_generate's arguments).",
            arguments=[
                PromptArgument(name="kind", description=", ".join(MUSIC_KINDS), required=True),
                PromptArgument(name="key", description="A key: 'A minor', 'F# major'..."),
                PromptArgument(name="style", description="A style: " + ", ".join(STYLES)),
            ],
        )
    )
    return ListPromptsResult(prompts=prompts)


@router.method(schema.PROMPTS_GET)
async def get_prompt(ctx: Context, params: GetPromptParams) -> GetPromptResult:
    arguments = params.arguments
    if params.name == COMPOSE:
        kind = arguments.get("kind")
        if kind not in MUSIC_KINDS:
            raise errors.InvalidParams(
                f"argument kind is one of {', '.join(MUSIC_KINDS)} - at $.arguments.kind"
            )
        text = f"Write a {kind.replace('_', ' ')}"
        if arguments.get("key"):
            text += f" in {arguments['key'][:40]}"
        if arguments.get("style"):
            text += f", {arguments['style'][:40]} style"
        return GetPromptResult(
            description="A request for music_generate.",
            messages=[PromptMessage(role="user", content={"type": "text", "text": text + "."})],
        )
    preset = next((p for p in PRESETS if p.id == params.name), None)
    if preset is None:
        raise errors.InvalidParams(f"unknown prompt {params.name!r}: see prompts/list - at $.name")
    text = f"{preset.system_prompt}\n\n{preset.personality}"
    if arguments.get("model"):
        text += f"\n\n(Model: {arguments['model'][:100]})"
    return GetPromptResult(
        description=preset.description,
        messages=[PromptMessage(role="user", content={"type": "text", "text": text})],
    )


# Completion


@router.method(schema.COMPLETION_COMPLETE)
async def complete(ctx: Context, params: CompleteParams) -> CompleteResult:
    """Values for one argument, by prefix (any case). An argument or reference we do not
    know gets no values, not an error: completion is a hint."""
    name = params.argument.name
    ref = params.ref
    if ref.type == "ref/prompt":
        source = _PROMPT_ARGUMENTS.get(name) if ref.name in _PROMPT_NAMES else None
    else:
        template = ref.uri or ""
        known = any(t.uri_template == template for t in TEMPLATES)
        source = _TEMPLATE_VARIABLES.get(name) if known else None
    if source is None:
        return CompleteResult(completion=Completion(values=[], total=0))
    prefix = params.argument.value.casefold()
    values = [v for v in await source(ctx) if v.casefold().startswith(prefix)]
    return CompleteResult(
        completion=Completion(
            values=values[:MAX_VALUES], total=len(values), has_more=len(values) > MAX_VALUES
        )
    )


async def _conversation_ids(ctx: Context) -> list[str]:
    if SCOPE_CHAT not in ctx.identity.scopes:
        return []
    page = await services(ctx).store.conversations.list(
        tenant(ctx), owner=owner_filter(ctx), limit=100
    )
    return [c.id for c in page.items]


async def _agent_ids(ctx: Context) -> list[str]:
    if SCOPE_AGENT not in ctx.identity.scopes:
        return []
    page = await services(ctx).store.agents.list(tenant(ctx), owner=owner_filter(ctx), limit=100)
    return [a.id for a in page.items]


async def _model_names(ctx: Context) -> list[str]:
    page = await services(ctx).store.models.list(tenant(ctx), limit=100)
    names: list[str] = []
    for entry in page.items:
        names.append(entry.id)
        names += entry.aliases
    return names


async def _kinds(ctx: Context) -> list[str]:
    return list(MUSIC_KINDS)


async def _keys(ctx: Context) -> list[str]:
    # Percent-encoding is the client's to do when it builds the URI; the value is a key.
    return list(KEYS)


async def _styles(ctx: Context) -> list[str]:
    return list(STYLES)


async def _engines(ctx: Context) -> list[str]:
    return sorted(services(ctx).audio.engines)


Source = Callable[[Context], Awaitable[list[str]]]
_PROMPT_NAMES: Final = frozenset({*(p.id for p in PRESETS), COMPOSE})
_PROMPT_ARGUMENTS: Final[dict[str, Source]] = {
    "model": _model_names,
    "kind": _kinds,
    "key": _keys,
    "style": _styles,
}
_TEMPLATE_VARIABLES: Final[dict[str, Source]] = {
    "conversationId": _conversation_ids,
    "agentId": _agent_ids,
    "model": _model_names,
    "kind": _kinds,
    "key": _keys,
    "style": _styles,
    "engine": _engines,
}


def music_uri(kind: str, key: str, style: str, seed: int, extension: str) -> str:
    """The URI of a generated part (the key percent-encoded: ``A%20minor``)."""
    return f"{SCHEME}music/{quote(kind)}/{quote(key)}/{quote(style)}/{seed}.{extension}"
