"""Handlers of the ``conversations`` namespace.

A user reaches their own conversations; a tenant admin reaches all of the tenant's.
Any other id is "not found" (-32004), never "forbidden".
"""

from __future__ import annotations

from yamabiko.handlers.common import found, owner_filter, tenant, user
from yamabiko.schema import conversations as schema
from yamabiko.schema.agents import Deleted
from yamabiko.schema.conversations import (
    ArchiveParams,
    ConversationCreateParams,
    ConversationListParams,
    ConversationRef,
    MessagesParams,
)
from yamabiko.schema.objects import AgentId, Conversation, ConversationId, Message, Page
from yamabiko.services.container import services
from yamabiko.sessions.methods import Router
from yamabiko.sessions.session import Context

router = Router()


@router.method(schema.CONVERSATIONS_CREATE)
async def create(ctx: Context, params: ConversationCreateParams) -> Conversation:
    store = services(ctx).store
    agent_id = None
    if params.agent_id is not None:
        agent = await store.agents.get(
            tenant(ctx), AgentId(params.agent_id), owner=owner_filter(ctx)
        )
        agent_id = found(agent, "agent", params.agent_id).id
    return await store.conversations.create(
        tenant(ctx), user(ctx), title=params.title, agent_id=agent_id
    )


@router.method(schema.CONVERSATIONS_GET)
async def get(ctx: Context, params: ConversationRef) -> Conversation:
    conversation = await services(ctx).store.conversations.get(
        tenant(ctx), ConversationId(params.conversation_id), owner=owner_filter(ctx)
    )
    return found(conversation, "conversation", params.conversation_id)


@router.method(schema.CONVERSATIONS_LIST)
async def list_conversations(ctx: Context, params: ConversationListParams) -> Page[Conversation]:
    return await services(ctx).store.conversations.list(
        tenant(ctx),
        owner=owner_filter(ctx),
        include_archived=params.include_archived,
        limit=params.limit,
        cursor=params.cursor,
    )


@router.method(schema.CONVERSATIONS_ARCHIVE)
async def archive(ctx: Context, params: ArchiveParams) -> Conversation:
    conversation = await services(ctx).store.conversations.archive(
        tenant(ctx),
        ConversationId(params.conversation_id),
        owner=owner_filter(ctx),
        archived=params.archived,
    )
    return found(conversation, "conversation", params.conversation_id)


@router.method(schema.CONVERSATIONS_DELETE)
async def delete(ctx: Context, params: ConversationRef) -> Deleted:
    done = await services(ctx).store.conversations.delete(
        tenant(ctx), ConversationId(params.conversation_id), owner=owner_filter(ctx)
    )
    found(done, "conversation", params.conversation_id)
    return Deleted(deleted=True)


@router.method(schema.CONVERSATIONS_MESSAGES)
async def messages(ctx: Context, params: MessagesParams) -> Page[Message]:
    page = await services(ctx).store.messages.list(
        tenant(ctx),
        ConversationId(params.conversation_id),
        owner=owner_filter(ctx),
        limit=params.limit,
        cursor=params.cursor,
    )
    return found(page, "conversation", params.conversation_id)
