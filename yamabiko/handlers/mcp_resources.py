"""MCP resources and prompts on the socket: the caller's conversations as resources
(``yamabiko://conversations/{id}``, read as JSON: the conversation and its messages,
oldest first, the newest 100) and the agent presets as prompts (``prompts/get`` gives
a preset's system prompt and personality as one user message to start from).
"""

from __future__ import annotations

from typing import Final

import msgspec

from yamabiko.handlers.common import found, owner_filter, tenant
from yamabiko.handlers.presets import PRESETS
from yamabiko.protocol import errors
from yamabiko.schema import mcp as schema
from yamabiko.schema.base import EmptyResult
from yamabiko.schema.mcp import (
    GetPromptParams,
    GetPromptResult,
    ListParams,
    ListPromptsResult,
    ListResourcesResult,
    PromptDescription,
    PromptMessage,
    ReadResourceParams,
    ReadResourceResult,
    Resource,
    ResourceContents,
)
from yamabiko.schema.objects import ConversationId
from yamabiko.services.container import services
from yamabiko.sessions.methods import Router
from yamabiko.sessions.session import Context

router = Router()

PREFIX: Final = "yamabiko://conversations/"
JSON: Final = "application/json"
MESSAGES_READ: Final = 100


def conversation_uri(conversation_id: str) -> str:
    return PREFIX + conversation_id


@router.method(schema.RESOURCES_LIST)
async def list_resources(ctx: Context, params: ListParams) -> ListResourcesResult:
    page = await services(ctx).store.conversations.list(
        tenant(ctx), owner=owner_filter(ctx), limit=100, cursor=params.cursor
    )
    return ListResourcesResult(
        resources=[
            Resource(
                uri=conversation_uri(c.id),
                name=c.id,
                title=c.title or None,
                mime_type=JSON,
            )
            for c in page.items
        ],
        next_cursor=page.next_cursor,
    )


@router.method(schema.RESOURCES_READ)
async def read_resource(ctx: Context, params: ReadResourceParams) -> ReadResourceResult:
    conversation_id = _conversation_id(params.uri)
    store = services(ctx).store
    conversation = found(
        await store.conversations.get(tenant(ctx), conversation_id, owner=owner_filter(ctx)),
        "resource",
        params.uri,
    )
    messages = await store.messages.recent(tenant(ctx), conversation_id, limit=MESSAGES_READ)
    body = msgspec.json.encode({"conversation": conversation, "messages": messages}).decode()
    return ReadResourceResult(
        contents=[ResourceContents(uri=params.uri, mime_type=JSON, text=body)]
    )


def _conversation_id(uri: str) -> ConversationId:
    if not uri.startswith(PREFIX):
        raise errors.NotFound(f"resource not found: {uri}")
    return ConversationId(uri[len(PREFIX) :])


@router.method(schema.RESOURCES_SUBSCRIBE)
async def subscribe(ctx: Context, params: ReadResourceParams) -> EmptyResult:
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


@router.method(schema.PROMPTS_LIST)
async def list_prompts(ctx: Context, params: ListParams) -> ListPromptsResult:
    return ListPromptsResult(
        prompts=[
            PromptDescription(name=p.id, title=p.name, description=p.description) for p in PRESETS
        ]
    )


@router.method(schema.PROMPTS_GET)
async def get_prompt(ctx: Context, params: GetPromptParams) -> GetPromptResult:
    preset = next((p for p in PRESETS if p.id == params.name), None)
    if preset is None:
        raise errors.InvalidParams(f"unknown prompt {params.name!r}: see prompts/list - at $.name")
    text = f"{preset.system_prompt}\n\n{preset.personality}"
    return GetPromptResult(
        description=preset.description,
        messages=[PromptMessage(role="user", content={"type": "text", "text": text})],
    )
