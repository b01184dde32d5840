"""The SQL :class:`~yamabiko.store.repositories.Store`, and opening one by URL."""

from __future__ import annotations

from collections.abc import Sequence

from yamabiko.store.crypto import SecretBox
from yamabiko.store.migrations import apply_migrations
from yamabiko.store.repositories import (
    AgentRepository,
    AuditRepository,
    ConversationRepository,
    GhostCountRepository,
    McpServerRepository,
    MessageRepository,
    ModelRepository,
    SecretRepository,
    Store,
    TenantRepository,
    UsageRepository,
)
from yamabiko.store.revocations import RevokedTokens
from yamabiko.store.sql.agents import SqlAgents
from yamabiko.store.sql.audit import SqlAudit
from yamabiko.store.sql.conversations import SqlConversations, SqlMessages
from yamabiko.store.sql.database import Database, connect
from yamabiko.store.sql.ghost import SqlGhostCounts
from yamabiko.store.sql.mcp_servers import SqlMcpServers
from yamabiko.store.sql.models import SqlModels
from yamabiko.store.sql.revocations import SqlRevokedTokens
from yamabiko.store.sql.secrets import SqlSecrets
from yamabiko.store.sql.tenants import SqlTenants
from yamabiko.store.sql.usage import SqlUsage


class SqlStore:
    """Every repository over one :class:`~.database.Database`. The attributes are typed
    as the Protocols, so the type checker proves each implementation keeps its contract."""

    def __init__(self, db: Database, box: SecretBox) -> None:
        self._db = db
        self.tenants: TenantRepository = SqlTenants(db)
        self.agents: AgentRepository = SqlAgents(db)
        self.secrets: SecretRepository = SqlSecrets(db, box)
        self.conversations: ConversationRepository = SqlConversations(db)
        self.messages: MessageRepository = SqlMessages(db)
        self.usage: UsageRepository = SqlUsage(db)
        self.models: ModelRepository = SqlModels(db)
        self.mcp_servers: McpServerRepository = SqlMcpServers(db, box)
        self.revocations: RevokedTokens = SqlRevokedTokens(db)
        self.audit: AuditRepository = SqlAudit(db)
        self.ghost_counts: GhostCountRepository = SqlGhostCounts(db)

    def __repr__(self) -> str:
        return f"SqlStore({self._db.dialect.name})"

    async def ping(self) -> None:
        await self._db.ping()

    async def close(self) -> None:
        await self._db.close()


async def open_store(
    database_url: str, *, encryption_keys: Sequence[str], migrate: bool = True
) -> Store:
    """Opens the store a URL names (see :func:`~.database.connect` for the forms) with
    the given Fernet keys (the first encrypts), applying pending migrations first unless
    ``migrate`` is False (when an operator runs ``yamabiko migrate`` separately). Migrating
    also encrypts MCP server header values still stored in plaintext (older rows); until
    then such rows are read as they are.

    Raises StoreConfigError for a bad URL or key before connecting to anything.
    """
    box = SecretBox(encryption_keys)
    db = await connect(database_url)
    try:
        if migrate:
            await apply_migrations(db)
            # Part of migrating, in Python because encrypting needs the keys (0005
            # added the column). Cheap when nothing is left to seal.
            await SqlMcpServers(db, box).seal_plaintext_headers()
    except BaseException:
        await db.close()
        raise
    return SqlStore(db, box)
