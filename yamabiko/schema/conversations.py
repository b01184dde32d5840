"""The ``conversations`` namespace (docs/api.md).

Every method needs scope ``chat``: a conversation is what ``chat/send`` writes to, so
whoever may chat may keep and read their conversations (scope ``agent`` is not needed
to use an agent in one). A conversation belongs to the user who created it; a tenant
admin (scope ``admin``) reaches all of its tenant's. Any other conversation id, another
tenant's included, is -32004 ``conversation not found: <id>``, never -32003.
"""

from __future__ import annotations

from typing import Annotated, Final

from msgspec import Meta

from yamabiko.schema.agents import AgentIdParam, Deleted, ObjectId
from yamabiko.schema.base import SCOPE_CHAT, MethodSchema, PageParams, Params
from yamabiko.schema.objects import Conversation, Message, Page

CONVERSATIONS_CREATE: Final = "conversations/create"
CONVERSATIONS_GET: Final = "conversations/get"
CONVERSATIONS_LIST: Final = "conversations/list"
CONVERSATIONS_ARCHIVE: Final = "conversations/archive"
CONVERSATIONS_DELETE: Final = "conversations/delete"
CONVERSATIONS_MESSAGES: Final = "conversations/messages"

ConversationIdParam = ObjectId
Title = Annotated[str, Meta(max_length=200)]


class ConversationCreateParams(Params):
    """A new, empty conversation owned by the caller."""

    title: Title = ""
    agent_id: AgentIdParam | None = None
    """The agent that answers in it: one the caller can see (else -32004 ``agent not
    found``). Deleting the agent later leaves the conversation, naming nothing."""


class ConversationRef(Params):
    """Names one conversation the caller can see."""

    conversation_id: ConversationIdParam


class ConversationListParams(PageParams):
    """The caller's conversations (a tenant admin: all of the tenant's), newest first
    by creation, so that paging is stable while new ones are added."""

    include_archived: bool = False
    """Archived conversations are left out unless this is true."""


class ArchiveParams(ConversationRef):
    """Archives a conversation (hides it from ``conversations/list``; it keeps its
    messages and can still be read) or, with ``archived: false``, restores it.
    Idempotent. Returns the conversation as it now is."""

    archived: bool = True


class MessagesParams(PageParams, kw_only=True):
    """A conversation's messages, oldest first (in the order they were appended).
    An assistant message still being generated is listed with status ``streaming``."""

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
