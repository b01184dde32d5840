"""What handlers reach beyond their params: the store and the services built on it.

The server builds one :class:`Services` per node and hands it to every session; the
session carries it as an opaque ``object`` (sessions sit below the store and may not
import it), and handlers get it back, typed and checked, with :func:`services`.
"""

from __future__ import annotations

from dataclasses import dataclass

from yamabiko.engines.llm import EngineRegistry
from yamabiko.engines.tools.mcp import McpClients
from yamabiko.services.generation import Generations
from yamabiko.services.ghost_models import GhostModels
from yamabiko.services.orphans import Orphans
from yamabiko.services.synthesis import AudioEngines, Syntheses
from yamabiko.services.watch import ConversationWatch
from yamabiko.sessions.session import Context
from yamabiko.store import Store
from yamabiko.store.broker import Broker
from yamabiko.store.budget import Budget
from yamabiko.store.catalogue import CachedCatalogue
from yamabiko.store.locks import Locks
from yamabiko.store.ratelimit import TenantRateLimits
from yamabiko.store.revocations import RevokedTokens


@dataclass(frozen=True)
class Services:
    store: Store
    budget: Budget
    """Checked before each generation (-32011); records usage."""
    revocations: RevokedTokens
    """The list the handshake and the sweeper read: revocations must go here."""
    tenant_limits: TenantRateLimits
    """Tenants' own rate limits, cached; forget a tenant when its row changes."""
    engines: EngineRegistry
    """Model name -> engine, with the server's provider keys."""
    broker: Broker
    """Streams: in process, or Redis when configured."""
    locks: Locks
    """One generation per conversation (in process, or Redis)."""
    generations: Generations
    """The generations running on this node."""
    ghost: GhostModels
    """Ghost-text engines and each user's personal model."""
    catalogue: CachedCatalogue
    """The model catalogue, cached; forget a tenant when its entries change."""
    audio: AudioEngines
    """Audio engines by name, and the duration limit."""
    syntheses: Syntheses
    """The audio syntheses running on this node."""
    mcp: McpClients
    """Live sessions with the tenants' MCP servers (agents' tools)."""
    watch: ConversationWatch
    """Sessions watching conversations (MCP resources/subscribe)."""
    orphans: Orphans
    """Ends streams whose producing node died, and finishes their messages."""


def services(ctx: Context) -> Services:
    """The node's services, for a handler. A session built without them (a test of
    the session alone) gets a clear error, not an ``AttributeError`` deep in a
    handler."""
    found = ctx.services
    if type(found) is not Services:
        raise RuntimeError("this session was built without the node's services")
    return found
