"""The ``chat`` namespace (docs/streams.md): a message in, a token stream out.

``chat/send`` needs scope ``chat``. It stores the user's message, starts the generation
and returns at once; the reply arrives as ``stream/*`` notifications on the returned
``streamId``, to which the sender is already subscribed (:mod:`yamabiko.schema.stream`).
"""

from __future__ import annotations

from typing import Annotated, Final

from msgspec import Meta

from yamabiko.schema.agents import AgentIdParam, ModelName, Temperature
from yamabiko.schema.base import SCOPE_CHAT, MethodSchema, Params, Result
from yamabiko.schema.conversations import ConversationIdParam

CHAT_SEND: Final = "chat/send"

MessageText = Annotated[str, Meta(min_length=1, max_length=100_000)]
MaxTokens = Annotated[int, Meta(ge=1, le=32_768)]


class ChatSendParams(Params):
    """Send a user message and stream the reply.

    Without ``conversationId`` a new conversation is created (with ``agentId``, if
    given). With one, ``agentId`` defaults to the conversation's agent. The model is,
    in order: ``model``, the agent's, the tenant's default, the first provider with a
    key on the server, ``local/default``.
    """

    message: MessageText
    conversation_id: ConversationIdParam | None = None
    agent_id: AgentIdParam | None = None
    model: ModelName | None = None
    """``engine/providerModel`` or a catalogue alias."""
    temperature: Temperature | None = None
    """Overrides the agent's temperature for this reply."""
    max_tokens: MaxTokens | None = None
    """The longest reply, in tokens (default 1024)."""


class ChatSendResult(Result):
    conversation_id: str
    message_id: str
    """The assistant message being generated (``streaming`` until the stream ends)."""
    stream_id: str
    model: str
    """The model that was asked first (a fallback may answer instead)."""


METHODS: Final[tuple[MethodSchema, ...]] = (
    MethodSchema(
        CHAT_SEND, ChatSendParams, ChatSendResult,
        "Send a message; the reply streams as stream/delta, then stream/end.",
        scope=SCOPE_CHAT,
    ),
)  # fmt: skip
