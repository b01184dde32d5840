"""The store's contract: one Protocol per repository, and the :class:`Store` bundling them.

Guarantees common to every repository:

- **Tenant scoping.** Every method that touches a tenant's data takes the tenant id as
  a required argument and scopes its query by it. An object of another tenant is
  indistinguishable from a missing one: ``get``/``update`` return None, ``delete``
  returns False, lists leave it out. Handlers map None/False to -32004, never -32003.
- **Owner scoping.** Methods on a user's objects (agents, their secrets,
  conversations, messages) take a keyword ``owner``, required so that it cannot be
  forgotten: a user id limits the method to that user's objects (another user's object
  is "not found", as above); ``owner=None`` means any owner in the tenant, for callers
  holding ``admin`` in that tenant.
- **Ids and times.** Ids are generated here (UUIDv7). Timestamps are UTC; ``createdAt``
  never changes, ``updatedAt`` moves on every change.
- **Pagination.** Lists take ``limit`` (1..100; anything else raises
  :class:`~yamabiko.store.errors.InvalidLimit`, -32602) and ``cursor`` (None for the
  first page, else a ``nextCursor`` from the same list; a cursor we did not make raises
  :class:`~yamabiko.store.errors.InvalidCursor`, -32602). A page's ``nextCursor`` is None
  when no item follows it. Paging is stable under inserts: positions, not offsets.
- **Partial updates.** ``update`` methods change only the fields given; a field left
  ``UNSET`` keeps its value, and None (where the field allows it) clears it.
- **Secrets.** No method returns, raises or logs a secret's value, except
  :meth:`SecretRepository.get_value`, which is for engines only.

A method either completes or changes nothing: multi-statement writes run in one
transaction.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from msgspec import UNSET, UnsetType

from yamabiko.schema.objects import (
    Agent,
    AgentId,
    AuditEvent,
    AuditOutcome,
    Conversation,
    ConversationId,
    McpServer,
    McpServerId,
    McpTransport,
    Message,
    MessageId,
    MessageRole,
    MessageStatus,
    ModelEntry,
    ModelId,
    Page,
    RateLimits,
    SecretInfo,
    Tenant,
    TenantId,
    UsageEvent,
    UsageGroupBy,
    UsageRow,
    UserId,
)
from yamabiko.store.pagination import DEFAULT_LIMIT
from yamabiko.store.revocations import RevokedTokens

__all__ = [
    "AgentRepository",
    "AuditRepository",
    "ConversationRepository",
    "GhostCountRepository",
    "McpServerRepository",
    "MessageRepository",
    "ModelRepository",
    "RevokedTokens",
    "SecretRepository",
    "Store",
    "TenantRepository",
    "UsageRepository",
]


class TenantRepository(Protocol):
    """Tenants: their settings. A tenant need not have a row for its users to work (a
    token's ``tid`` is enough); the row carries the system prompt, default model, budget
    and rate limits. Listed oldest first."""

    async def create(
        self,
        *,
        tenant_id: TenantId | None = None,
        name: str,
        system_prompt: str | None = None,
        default_model: str | None = None,
        monthly_budget_usd: float | None = None,
        rate_limits: RateLimits | None = None,
    ) -> Tenant:
        """A new tenant. ``tenant_id`` may be chosen (to match the ``tid`` claim of
        existing tokens) or left to the server. Raises AlreadyExists if it is taken."""
        ...

    async def get(self, tenant_id: TenantId) -> Tenant | None: ...

    async def update(
        self,
        tenant_id: TenantId,
        *,
        name: str | UnsetType = UNSET,
        system_prompt: str | UnsetType | None = UNSET,
        default_model: str | UnsetType | None = UNSET,
        monthly_budget_usd: float | UnsetType | None = UNSET,
        rate_limits: RateLimits | UnsetType | None = UNSET,
    ) -> Tenant | None: ...

    async def delete(self, tenant_id: TenantId) -> bool:
        """Deletes the tenant and its data: agents and their secrets, conversations and
        their messages, MCP servers, its own models, revoked tokens. Usage and audit
        events stay, as history. False (and nothing deleted) if there is no such tenant."""
        ...

    async def list(
        self, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None
    ) -> Page[Tenant]: ...


class AgentRepository(Protocol):
    """Agents, each owned by a user of a tenant. Listed oldest first."""

    async def create(
        self,
        tenant_id: TenantId,
        owner: UserId,
        *,
        name: str,
        personality: str = "",
        system_prompt: str = "",
        model: str | None = None,
        temperature: float | None = None,
        skills: Sequence[str] = (),
        mcp_server_ids: Sequence[McpServerId] = (),
        fallback_models: Sequence[str] = (),
    ) -> Agent: ...

    async def get(
        self, tenant_id: TenantId, agent_id: AgentId, *, owner: UserId | None
    ) -> Agent | None: ...

    async def update(
        self,
        tenant_id: TenantId,
        agent_id: AgentId,
        *,
        owner: UserId | None,
        name: str | UnsetType = UNSET,
        personality: str | UnsetType = UNSET,
        system_prompt: str | UnsetType = UNSET,
        model: str | UnsetType | None = UNSET,
        temperature: float | UnsetType | None = UNSET,
        skills: Sequence[str] | UnsetType = UNSET,
        mcp_server_ids: Sequence[McpServerId] | UnsetType = UNSET,
        fallback_models: Sequence[str] | UnsetType = UNSET,
    ) -> Agent | None: ...

    async def delete(self, tenant_id: TenantId, agent_id: AgentId, *, owner: UserId | None) -> bool:
        """Deletes the agent and its secrets. Its conversations stay (their ``agentId``
        then names nothing)."""
        ...

    async def list(
        self,
        tenant_id: TenantId,
        *,
        owner: UserId | None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[Agent]: ...


class SecretRepository(Protocol):
    """An agent's secrets (provider keys and the like), encrypted at rest with the
    store's keys; stored as ciphertext only. Write-only: what comes back is
    :class:`SecretInfo`, never a value, except through :meth:`get_value`. The agent must
    be visible to ``owner`` in the tenant, as for :meth:`AgentRepository.get`."""

    async def set(
        self, tenant_id: TenantId, agent_id: AgentId, name: str, value: str, *, owner: UserId | None
    ) -> SecretInfo | None:
        """Creates or replaces the secret ``name``. None if the agent is not found."""
        ...

    async def list(
        self, tenant_id: TenantId, agent_id: AgentId, *, owner: UserId | None
    ) -> builtins.list[SecretInfo] | None:
        """The agent's secrets by name (all of them: an agent has few). None if the agent
        is not found."""
        ...

    async def delete(
        self, tenant_id: TenantId, agent_id: AgentId, name: str, *, owner: UserId | None
    ) -> bool: ...

    async def get_value(self, tenant_id: TenantId, agent_id: AgentId, name: str) -> str | None:
        """The decrypted value, for engines only: never put it in a result, log line,
        error or audit event. None if there is no such secret. Raises
        SecretDecryptError if no configured key opens it."""
        ...

    async def reencrypt_all(self) -> int:
        """Re-encrypts every stored secret of every tenant with the first key (an
        operator's command, ``yamabiko rotate-keys``, hence unscoped), in one
        transaction; the number of secrets. Afterwards the other keys can be dropped.
        Raises SecretDecryptError, changing nothing, if some secret opens with no key."""
        ...


class ConversationRepository(Protocol):
    """Conversations, each owned by a user. Listed newest first (by creation: a
    conversation's place in the list does not move while one pages through it)."""

    async def create(
        self,
        tenant_id: TenantId,
        owner: UserId,
        *,
        title: str = "",
        agent_id: AgentId | None = None,
    ) -> Conversation:
        """A new conversation. ``agent_id`` is stored as given: the caller checks that the
        agent is one the user may use."""
        ...

    async def get(
        self, tenant_id: TenantId, conversation_id: ConversationId, *, owner: UserId | None
    ) -> Conversation | None: ...

    async def list(
        self,
        tenant_id: TenantId,
        *,
        owner: UserId | None,
        include_archived: bool = False,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[Conversation]: ...

    async def archive(
        self,
        tenant_id: TenantId,
        conversation_id: ConversationId,
        *,
        owner: UserId | None,
        archived: bool = True,
    ) -> Conversation | None:
        """Archives (or with ``archived=False`` restores) it. Idempotent."""
        ...

    async def delete(
        self, tenant_id: TenantId, conversation_id: ConversationId, *, owner: UserId | None
    ) -> bool:
        """Deletes the conversation and all its messages."""
        ...


class MessageRepository(Protocol):
    """The messages of conversations, listed in the order they were appended."""

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
        """Appends a message and moves the conversation's ``updatedAt``. The caller has
        checked the user may write to it. None if the conversation is not in the tenant.
        An assistant message being generated is appended ``streaming`` and finished
        with :meth:`update`."""
        ...

    async def append_turn(
        self,
        tenant_id: TenantId,
        conversation_id: ConversationId,
        *,
        content: str,
        model: str | None,
    ) -> tuple[Message, Message] | None:
        """Appends, in one transaction, a user message (``complete``) and the assistant
        message that answers it (empty, ``streaming``, naming ``model``): one chat turn,
        stored in one round of writes. None if the conversation is not in the tenant."""
        ...

    async def list(
        self,
        tenant_id: TenantId,
        conversation_id: ConversationId,
        *,
        owner: UserId | None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[Message] | None:
        """Oldest first. None if the conversation is not found for ``owner``."""
        ...

    async def recent(
        self, tenant_id: TenantId, conversation_id: ConversationId, *, limit: int = DEFAULT_LIMIT
    ) -> builtins.list[Message]:
        """The newest ``limit`` messages (1..100), oldest first: a prompt's history. The
        caller has checked the user may read the conversation; one of another tenant
        has none."""
        ...

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
        """Changes a message: finishing an assistant message (content, status, usage)."""
        ...

    async def streaming(
        self, *, before: datetime, limit: int = 500
    ) -> builtins.list[tuple[TenantId, MessageId]]:
        """Assistant messages of every tenant still ``streaming`` that were created
        before ``before``, oldest first, at most ``limit``: what a node that died left
        unfinished (the startup sweep finishes those whose stream has no producer)."""
        ...


class UsageRepository(Protocol):
    """Usage events, one per generation, and reports over them. Time ranges are
    half-open: ``start <= at < end``."""

    async def record(
        self,
        tenant_id: TenantId,
        user: UserId,
        model: str,
        *,
        input_tokens: int,
        output_tokens: int,
        cost_usd: float,
        at: datetime | None = None,
    ) -> UsageEvent:
        """Records one event, at ``at`` (now when None)."""
        ...

    async def report(
        self, tenant_id: TenantId, *, start: datetime, end: datetime, group_by: UsageGroupBy
    ) -> builtins.list[UsageRow]:
        """Sums per day (UTC), model or user, ordered by key. Groups with no events are
        absent."""
        ...

    async def total_cost(self, tenant_id: TenantId, *, start: datetime, end: datetime) -> float:
        """The tenant's spend over the range, in USD (0.0 with no events): the budget check."""
        ...


class ModelRepository(Protocol):
    """The model catalogue: global entries (``tenant_id=None``, seeded by a migration) and
    each tenant's own. A tenant sees its own entries and the global ones it does not
    override (same id): an override hides the global entry entirely, aliases included,
    so it repeats the aliases it wants. Writes take ``tenant_id=None`` to change the
    global catalogue: the caller decides who may."""

    async def register(
        self,
        tenant_id: TenantId | None,
        model_id: ModelId,
        *,
        provider: str,
        provider_model: str,
        aliases: Sequence[str] = (),
        input_price_per_mtok: float,
        output_price_per_mtok: float,
        context_window: int,
    ) -> ModelEntry:
        """Adds an entry. Raises AlreadyExists if the id is taken in that scope."""
        ...

    async def get(self, tenant_id: TenantId, model: str) -> ModelEntry | None:
        """The entry a name means to the tenant, among those it sees: by id or alias; the
        tenant's own before the global ones; an id before an alias. None if nothing
        matches."""
        ...

    async def list(
        self, tenant_id: TenantId | None, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None
    ) -> Page[ModelEntry]:
        """The tenant's catalogue (None: the global one), oldest first, then by id."""
        ...

    async def update(
        self,
        tenant_id: TenantId | None,
        model_id: ModelId,
        *,
        provider: str | UnsetType = UNSET,
        provider_model: str | UnsetType = UNSET,
        aliases: Sequence[str] | UnsetType = UNSET,
        input_price_per_mtok: float | UnsetType = UNSET,
        output_price_per_mtok: float | UnsetType = UNSET,
        context_window: int | UnsetType = UNSET,
    ) -> ModelEntry | None:
        """Changes the entry in exactly that scope: a tenant cannot change a global
        entry this way (it registers its own with the same id instead)."""
        ...

    async def delete(self, tenant_id: TenantId | None, model_id: ModelId) -> bool:
        """Deletes the entry in exactly that scope."""
        ...


class McpServerRepository(Protocol):
    """A tenant's MCP servers, by unique name. Listed oldest first."""

    async def add(
        self,
        tenant_id: TenantId,
        *,
        name: str,
        transport: McpTransport,
        command: str | None = None,
        args: Sequence[str] = (),
        url: str | None = None,
        headers: Mapping[str, str] | None = None,
        created_by: UserId | None = None,
    ) -> McpServer:
        """Adds a server: ``stdio`` needs ``command``, ``http`` needs ``url`` (else
        InvalidParams). Raises AlreadyExists if the tenant has one by that name. Header
        values are stored encrypted and come back decrypted (from every method)."""
        ...

    async def get(self, tenant_id: TenantId, server_id: McpServerId) -> McpServer | None: ...

    async def list(
        self, tenant_id: TenantId, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None
    ) -> Page[McpServer]: ...

    async def remove(self, tenant_id: TenantId, server_id: McpServerId) -> bool: ...

    async def seal_plaintext_headers(self) -> int:
        """Encrypts header values stored in plaintext (older rows); the rows sealed."""
        ...

    async def reencrypt_all(self) -> int:
        """Re-encrypts every header value with the first key (``yamabiko rotate-keys``),
        in one transaction; the number of servers. Raises SecretDecryptError, changing
        nothing, if a value opens with no configured key."""
        ...


class AuditRepository(Protocol):
    """The audit trail: append-only, listed newest first. ``tenant_id=None`` is for
    events no tenant can be named for (a token that did not verify)."""

    async def record(
        self,
        tenant_id: TenantId | None,
        *,
        subject: str | None,
        action: str,
        outcome: AuditOutcome,
        target: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """Records an event now. ``detail`` must hold no secret, token or prompt."""
        ...

    async def list(
        self,
        tenant_id: TenantId | None,
        *,
        action: str | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page[AuditEvent]:
        """The tenant's events (None: the unattributed ones), optionally of one action."""
        ...

    async def delete_before(self, cutoff: datetime, *, limit: int = 1000) -> int:
        """Deletes up to ``limit`` events older than ``cutoff`` (oldest first), of every
        tenant; returns how many. Call again while it returns ``limit``."""
        ...


class GhostCountRepository(Protocol):
    """Each user's personal ghost-text model, as ``(context, token, count)`` rows per
    engine (the engine defines the strings; the store only adds counts up)."""

    async def add(
        self,
        tenant_id: TenantId,
        user: UserId,
        engine: str,
        rows: Sequence[tuple[str, str, int]],
    ) -> None:
        """Adds each row's count to the user's (a new row starts at it), in one
        transaction."""
        ...

    async def load(
        self, tenant_id: TenantId, user: UserId, engine: str, *, limit: int = 100_000
    ) -> builtins.list[tuple[str, str, int]]:
        """The user's rows for ``engine``, the most recently changed first, at most
        ``limit``."""
        ...


class Store(Protocol):
    """Every repository over one database. Open one with
    :func:`yamabiko.store.open_store`; share it between sessions; close it once."""

    tenants: TenantRepository
    agents: AgentRepository
    secrets: SecretRepository
    conversations: ConversationRepository
    messages: MessageRepository
    usage: UsageRepository
    models: ModelRepository
    mcp_servers: McpServerRepository
    revocations: RevokedTokens
    audit: AuditRepository
    ghost_counts: GhostCountRepository

    async def ping(self) -> None:
        """Returns when the database answers (``/health/ready``); raises otherwise."""
        ...

    async def close(self) -> None:
        """Closes the database. Idempotent."""
        ...
