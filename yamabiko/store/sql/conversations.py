"""Conversations and their messages in SQL."""

# ruff: noqa: S608 - SQL text is built from this module's constants; values are parameters.

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Literal

from msgspec import UNSET, UnsetType

from yamabiko.schema.objects import (
    AgentId,
    Conversation,
    ConversationId,
    Message,
    MessageId,
    MessageRole,
    MessageStatus,
    Page,
    TenantId,
    UserId,
)
from yamabiko.store.ids import new_id, utc_now
from yamabiko.store.pagination import DEFAULT_LIMIT
from yamabiko.store.sql.database import Database, Executor
from yamabiko.store.sql.rows import fetch_page, owner_filter, provided, set_clause, to_object

_CONVERSATION = "id, tenant_id, owner, title, agent_id, archived, created_at, updated_at"
_MESSAGE = (
    "id, conversation_id, role, content, model, status, input_tokens, output_tokens, cost_usd,"
    " created_at, updated_at"
)


# $1 user id, $2 tenant, $3 conversation, $4 content, $5 asked at, $6 assistant id,
# $7 model, $8 answered at.
_TURN_SQLITE = (
    "INSERT INTO messages (id, tenant_id, conversation_id, role, content, model, status,"
    " input_tokens, output_tokens, cost_usd, created_at, updated_at)"
    " SELECT $1, $2, $3, 'user', $4, NULL, 'complete', 0, 0, 0.0, $5, $5"
    " FROM conversations WHERE id = $3 AND tenant_id = $2"
    " UNION ALL SELECT $6, $2, $3, 'assistant', '', $7, 'streaming', 0, 0, 0.0, $8, $8"
    " FROM conversations WHERE id = $3 AND tenant_id = $2"
    f" RETURNING {_MESSAGE}"
)
_TURN_POSTGRES = (
    "WITH touched AS (UPDATE conversations SET updated_at = $5::timestamptz"
    " WHERE id = $3::text AND tenant_id = $2::text RETURNING id)"
    " INSERT INTO messages (id, tenant_id, conversation_id, role, content, model, status,"
    " input_tokens, output_tokens, cost_usd, created_at, updated_at)"
    " SELECT $1::text, $2::text, $3::text, 'user', $4::text, NULL, 'complete', 0, 0, 0.0,"
    " $5::timestamptz, $5::timestamptz FROM touched"
    " UNION ALL SELECT $6::text, $2::text, $3::text, 'assistant', '', $7::text, 'streaming',"
    " 0, 0, 0.0, $8::timestamptz, $8::timestamptz FROM touched"
    f" RETURNING {_MESSAGE}"
)


class SqlConversations:
    """:class:`~yamabiko.store.repositories.ConversationRepository` in SQL."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        tenant_id: TenantId,
        owner: UserId,
        *,
        title: str = "",
        agent_id: AgentId | None = None,
    ) -> Conversation:
        row = await self._db.fetchrow(
            "INSERT INTO conversations (id, tenant_id, owner, title, agent_id, archived,"
            " created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)"
            f" RETURNING {_CONVERSATION}",
            new_id(),
            tenant_id,
            owner,
            title,
            agent_id,
            False,
            utc_now(),
        )
        assert row is not None  # an INSERT without conflict handling returns its row
        return to_object(self._db.dialect, row, Conversation)

    async def get(
        self, tenant_id: TenantId, conversation_id: ConversationId, *, owner: UserId | None
    ) -> Conversation | None:
        row = await self._db.fetchrow(
            f"SELECT {_CONVERSATION} FROM conversations"
            f" WHERE id = $1 AND tenant_id = $2 AND {owner_filter(3)}",
            conversation_id,
            tenant_id,
            owner,
        )
        return None if row is None else to_object(self._db.dialect, row, Conversation)

    async def list(
        self,
        tenant_id: TenantId,
        *,
        owner: UserId | None,
        include_archived: bool = False,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[Conversation]:
        # $3 true: every conversation; false: only those not archived.
        return await fetch_page(
            self._db,
            Conversation,
            select=f"SELECT {_CONVERSATION} FROM conversations",
            where=f"tenant_id = $1 AND {owner_filter(2)} AND ($3 OR NOT archived)",
            args=(tenant_id, owner, include_archived),
            limit=limit,
            cursor=cursor,
            order="desc",
        )

    async def archive(
        self,
        tenant_id: TenantId,
        conversation_id: ConversationId,
        *,
        owner: UserId | None,
        archived: bool = True,
    ) -> Conversation | None:
        row = await self._db.fetchrow(
            "UPDATE conversations SET archived = $4, updated_at = $5"
            f" WHERE id = $1 AND tenant_id = $2 AND {owner_filter(3)} RETURNING {_CONVERSATION}",
            conversation_id,
            tenant_id,
            owner,
            archived,
            utc_now(),
        )
        return None if row is None else to_object(self._db.dialect, row, Conversation)

    async def delete(
        self, tenant_id: TenantId, conversation_id: ConversationId, *, owner: UserId | None
    ) -> bool:
        # Its messages go with it: messages references conversations ON DELETE CASCADE.
        deleted = await self._db.execute(
            f"DELETE FROM conversations WHERE id = $1 AND tenant_id = $2 AND {owner_filter(3)}",
            conversation_id,
            tenant_id,
            owner,
        )
        return deleted > 0


def storable(text: str) -> str:
    """``text`` with U+0000 replaced by U+FFFD. Clients' strings with NUL are refused at
    decoding (docs/protocol.md); a model's output is ours to store, and PostgreSQL cannot
    hold NUL, so a reply that contains one is kept, marked, rather than lost."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


class SqlMessages:
    """:class:`~yamabiko.store.repositories.MessageRepository` in SQL."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def append(
        self,
        tenant_id: TenantId,
        conversation_id: ConversationId,
        *,
        role: MessageRole,
        content: str,
        model: str | None = None,
        status: MessageStatus = "complete",
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost_usd: float = 0.0,
    ) -> Message | None:
        now = utc_now()
        content = storable(content)
        async with self._db.transaction() as tx:
            if not await _touch(tx, tenant_id, conversation_id, now):
                return None
            return await _insert(
                tx, tenant_id, conversation_id, role, content, model, status, now,
                input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=cost_usd,
            )  # fmt: skip

    async def append_turn(
        self,
        tenant_id: TenantId,
        conversation_id: ConversationId,
        *,
        content: str,
        model: str | None,
    ) -> tuple[Message, Message] | None:
        # The turn is on the path to the first token: one statement where the dialect
        # allows (PostgreSQL: the conversation's update and both inserts in one
        # statement), two on SQLite (both inserts, guarded by the conversation, then
        # its updatedAt; a crash between them leaves only a stale updatedAt).
        asked, answered = utc_now(), utc_now()
        args = (new_id(), tenant_id, conversation_id, content, asked, new_id(), model, answered)
        if self._db.dialect.name == "postgres":
            rows = await self._db.fetch(_TURN_POSTGRES, *args)
        else:
            rows = await self._db.fetch(_TURN_SQLITE, *args)
            if rows:
                await _touch(self._db, tenant_id, conversation_id, asked)
        if not rows:
            return None
        user, assistant = sorted(
            (to_object(self._db.dialect, row, Message) for row in rows),
            key=lambda m: m.created_at,
        )
        return user, assistant

    async def list(
        self,
        tenant_id: TenantId,
        conversation_id: ConversationId,
        *,
        owner: UserId | None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[Message] | None:
        visible = await self._db.fetchrow(
            "SELECT 1 AS found FROM conversations"
            f" WHERE id = $1 AND tenant_id = $2 AND {owner_filter(3)}",
            conversation_id,
            tenant_id,
            owner,
        )
        if visible is None:
            return None
        return await self._page(tenant_id, conversation_id, limit, cursor, "asc")

    async def recent(
        self, tenant_id: TenantId, conversation_id: ConversationId, *, limit: int = DEFAULT_LIMIT
    ) -> builtins.list[Message]:
        page = await self._page(tenant_id, conversation_id, limit, None, "desc")
        return page.items[::-1]

    async def _page(
        self,
        tenant_id: TenantId,
        conversation_id: ConversationId,
        limit: int,
        cursor: str | None,
        order: Literal["asc", "desc"],
    ) -> Page[Message]:
        return await fetch_page(
            self._db,
            Message,
            select=f"SELECT {_MESSAGE} FROM messages",
            where="conversation_id = $1 AND tenant_id = $2",
            args=(conversation_id, tenant_id),
            limit=limit,
            cursor=cursor,
            order=order,
        )

    async def update(
        self,
        tenant_id: TenantId,
        message_id: MessageId,
        *,
        content: str | UnsetType = UNSET,
        status: MessageStatus | UnsetType = UNSET,
        model: str | UnsetType | None = UNSET,
        input_tokens: int | UnsetType = UNSET,
        output_tokens: int | UnsetType = UNSET,
        cost_usd: float | UnsetType = UNSET,
    ) -> Message | None:
        changes = provided(
            content=content if isinstance(content, UnsetType) else storable(content),
            status=status,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost_usd,
            updated_at=utc_now(),
        )
        assignments, values = set_clause(changes, first=3)
        row = await self._db.fetchrow(
            f"UPDATE messages SET {assignments} WHERE id = $1 AND tenant_id = $2"
            f" RETURNING {_MESSAGE}",
            message_id,
            tenant_id,
            *values,
        )
        return None if row is None else to_object(self._db.dialect, row, Message)

    async def streaming(
        self, *, before: datetime, limit: int = 500
    ) -> builtins.list[tuple[TenantId, MessageId]]:
        rows = await self._db.fetch(
            "SELECT tenant_id, id FROM messages WHERE status = 'streaming' AND created_at < $1"
            " ORDER BY created_at LIMIT $2",
            before,
            limit,
        )
        return [(TenantId(row["tenant_id"]), MessageId(row["id"])) for row in rows]


async def _touch(
    tx: Executor, tenant_id: TenantId, conversation_id: ConversationId, now: datetime
) -> bool:
    """Move a conversation's ``updatedAt`` (a message was added); False if it is not in
    the tenant."""
    return bool(
        await tx.execute(
            "UPDATE conversations SET updated_at = $3 WHERE id = $1 AND tenant_id = $2",
            conversation_id,
            tenant_id,
            now,
        )
    )


async def _insert(
    tx: Executor,
    tenant_id: TenantId,
    conversation_id: ConversationId,
    role: MessageRole,
    content: str,
    model: str | None,
    status: MessageStatus,
    now: datetime,
    *,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cost_usd: float = 0.0,
) -> Message:
    row = await tx.fetchrow(
        "INSERT INTO messages (id, tenant_id, conversation_id, role, content, model,"
        " status, input_tokens, output_tokens, cost_usd, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)"
        f" RETURNING {_MESSAGE}",
        new_id(),
        tenant_id,
        conversation_id,
        role,
        content,
        model,
        status,
        input_tokens,
        output_tokens,
        cost_usd,
        now,
    )
    assert row is not None  # an INSERT without conflict handling returns its row
    return to_object(tx.dialect, row, Message)
