"""The ``conversations`` namespace (DESIGN.md section 7).

A conversation belongs to the user who created it; a tenant admin sees all of the
tenant's. Scope ``chat``.
"""

from __future__ import annotations

from typing import Annotated, Final

from msgspec import Meta

from yamabiko.schema.agents import AgentIdParam, Deleted
from yamabiko.schema.base import SCOPE_CHAT, MethodSchema, PageParams, Params
from yamabiko.schema.objects import Conversation, Message, Page

CONVERSATIONS_CREATE: Final = "conversations/create"
CONVERSATIONS_GET: Final = "conversations/get"
CONVERSATIONS_LIST: Final = "conversations/list"
CONVERSATIONS_ARCHIVE: Final = "conversations/archive"
CONVERSATIONS_DELETE: Final = "conversations/delete"
CONVERSATIONS_MESSAGES: Final = "conversations/messages"

ConversationIdParam = Annotated[str, Meta(min_length=1, max_length=64)]


class ConversationCreateParams(Params):
    title: Annotated[str, Meta(max_length=200)] = ""
    agent_id: AgentIdParam | None = None
    """The agent that answers in it; must be one the caller can see."""


class ConversationRef(Params):
    conversation_id: ConversationIdParam


class ConversationListParams(PageParams):
    include_archived: bool = False


class ArchiveParams(ConversationRef):
    archived: bool = True
    """False restores an archived conversation."""


class MessagesParams(PageParams, kw_only=True):
    conversation_id: ConversationIdParam


METHODS: Final[tuple[MethodSchema, ...]] = (
    MethodSchema(
        CONVERSATIONS_CREATE, ConversationCreateParams, Conversation,
        "Start a conversation, optionally with an agent.", scope=SCOPE_CHAT,
    ),
    MethodSchema(
        CONVERSATIONS_GET, ConversationRef, Conversation, "One conversation by id.",
        scope=SCOPE_CHAT,
    ),
    MethodSchema(
        CONVERSATIONS_LIST, ConversationListParams, Page[Conversation],
        "The caller's conversations, newest first (a tenant admin: all).", scope=SCOPE_CHAT,
    ),
    MethodSchema(
        CONVERSATIONS_ARCHIVE, ArchiveParams, Conversation,
        "Archive (hide from lists) or restore a conversation.", scope=SCOPE_CHAT,
    ),
    MethodSchema(
        CONVERSATIONS_DELETE, ConversationRef, Deleted,
        "Delete a conversation and its messages.", scope=SCOPE_CHAT,
    ),
    MethodSchema(
        CONVERSATIONS_MESSAGES, MessagesParams, Page[Message],
        "A conversation's messages, oldest first.", scope=SCOPE_CHAT,
    ),
)  # fmt: skip
