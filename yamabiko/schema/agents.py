"""The ``agents`` namespace (docs/api.md): agents, presets and their secrets.

Every method needs scope ``agent``. An agent belongs to the user who created it; a
tenant admin (scope ``admin``) reaches every agent of its tenant. Any other agent id,
another tenant's included, is -32004 ``agent not found: <id>``, never -32003.

Secrets are write-only: what comes back is :class:`~yamabiko.schema.objects.SecretInfo`
(name and dates), never a value, in no result, error or log line.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from msgspec import UNSET, Meta, UnsetType

from yamabiko.schema.base import SCOPE_AGENT, Empty, MethodSchema, PageParams, Params, Result
from yamabiko.schema.objects import Agent, Page, SecretInfo

AGENTS_CREATE: Final = "agents/create"
AGENTS_GET: Final = "agents/get"
AGENTS_UPDATE: Final = "agents/update"
AGENTS_DELETE: Final = "agents/delete"
AGENTS_LIST: Final = "agents/list"
AGENTS_PRESETS: Final = "agents/presets"
SECRETS_SET: Final = "agents/secrets/set"
SECRETS_LIST: Final = "agents/secrets/list"
SECRETS_DELETE: Final = "agents/secrets/delete"

ObjectId = Annotated[str, Meta(min_length=1, max_length=64)]
"""A server-generated id (a UUIDv7 string) given back by the caller."""
AgentIdParam = ObjectId
Name = Annotated[str, Meta(min_length=1, max_length=100)]
Personality = Annotated[str, Meta(max_length=4000)]
SystemPrompt = Annotated[str, Meta(max_length=20000)]
ModelName = Annotated[str, Meta(min_length=1, max_length=300)]
"""``engine/providerModel`` (``openai/gpt-4.1-mini``) or a catalogue alias (``sonnet``),
resolved when the agent runs."""
Temperature = Annotated[float, Meta(ge=0.0, le=2.0)]
Skill = Annotated[str, Meta(min_length=1, max_length=64)]
Skills = Annotated[list[Skill], Meta(max_length=32)]
McpServerIds = Annotated[list[ObjectId], Meta(max_length=32)]
FallbackModels = Annotated[list[ModelName], Meta(max_length=8)]
PresetId = Literal["music-producer", "mixing-engineer", "lyricist", "secretary"]
"""The presets ``agents/presets`` lists (their data: ``yamabiko.handlers.presets``)."""
SecretName = Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
"""Like an environment variable: ``OPENAI_API_KEY``."""
SecretValue = Annotated[str, Meta(min_length=1, max_length=8192)]
"""At most 8 KiB of text: a key, a token, a small credentials file."""


class AgentCreateParams(Params):
    """A new agent, owned by the caller. With ``preset`` it starts from that preset's
    personality, system prompt, skills and temperature; any field given here wins over
    the preset's. Fields left out are empty (``model`` and ``temperature``: the
    tenant's defaults). Every ``mcpServerIds`` entry must name an MCP server of the
    tenant (else -32004)."""

    name: Name
    preset: PresetId | None = None
    personality: Personality | UnsetType = UNSET
    system_prompt: SystemPrompt | UnsetType = UNSET
    model: ModelName | UnsetType | None = UNSET
    """Unset or null: the tenant's default model."""
    temperature: Temperature | UnsetType | None = UNSET
    """0..2; unset or null: the engine's default."""
    skills: Skills | UnsetType = UNSET
    """Tags saying what the agent is for (``music``, ``mixing``, ``lyrics``...)."""
    mcp_server_ids: McpServerIds | UnsetType = UNSET
    fallback_models: FallbackModels | UnsetType = UNSET
    """Tried in order when the agent's model is unavailable."""


class AgentRef(Params):
    """Names one agent the caller can see."""

    agent_id: AgentIdParam


class AgentUpdateParams(Params):
    """Changes the fields given and nothing else (``updatedAt`` moves); null clears
    ``model`` or ``temperature`` back to the defaults. Returns the agent as it now is."""

    agent_id: AgentIdParam
    name: Name | UnsetType = UNSET
    personality: Personality | UnsetType = UNSET
    system_prompt: SystemPrompt | UnsetType = UNSET
    model: ModelName | UnsetType | None = UNSET
    temperature: Temperature | UnsetType | None = UNSET
    skills: Skills | UnsetType = UNSET
    mcp_server_ids: McpServerIds | UnsetType = UNSET
    fallback_models: FallbackModels | UnsetType = UNSET


class Deleted(Result):
    """The object is gone (``deleted`` is always true: deleting something that is not
    there, or not the caller's, is -32004 instead). Not idempotent on purpose: a second
    delete says the object no longer exists."""

    deleted: bool


class Preset(Result):
    """A ready-made agent: pass its ``id`` as ``agents/create``'s ``preset``."""

    id: PresetId
    name: str
    description: str
    """One line, for a picker."""
    personality: str
    system_prompt: str
    skills: list[str]
    """Suggested skill tags."""
    temperature: float


class PresetList(Result):
    """Every preset, in a fixed order."""

    items: list[Preset]


class SecretSetParams(Params):
    """Creates or replaces an agent's secret ``name``. The value is encrypted at rest
    and never returned; engines use it (an agent's provider key before the server's).
    Audited as ``secret.set`` (target ``agentId/name``)."""

    agent_id: AgentIdParam
    name: SecretName
    value: SecretValue

    def __repr__(self) -> str:  # a value must not reach a traceback or a log line
        return f"SecretSetParams(agent_id={self.agent_id!r}, name={self.name!r}, value=...)"


class SecretRef(Params):
    """Names one secret of an agent the caller can see. Deleting it is audited as
    ``secret.delete``; a missing secret is -32004 ``secret not found: agentId/name``."""

    agent_id: AgentIdParam
    name: SecretName


class SecretList(Result):
    """An agent's secrets, by name: names and dates, never values."""

    items: list[SecretInfo]


METHODS: Final[tuple[MethodSchema, ...]] = (
    MethodSchema(
        AGENTS_CREATE, AgentCreateParams, Agent,
        "Create an agent owned by the caller, optionally from a preset.", scope=SCOPE_AGENT,
    ),
    MethodSchema(AGENTS_GET, AgentRef, Agent, "One agent by id.", scope=SCOPE_AGENT),
    MethodSchema(
        AGENTS_UPDATE, AgentUpdateParams, Agent, "Change some fields of an agent.",
        scope=SCOPE_AGENT,
    ),
    MethodSchema(
        AGENTS_DELETE, AgentRef, Deleted, "Delete an agent and its secrets.", scope=SCOPE_AGENT
    ),
    MethodSchema(
        AGENTS_LIST, PageParams, Page[Agent],
        "The caller's agents, oldest first (a tenant admin: all of the tenant's).",
        scope=SCOPE_AGENT,
    ),
    MethodSchema(
        AGENTS_PRESETS, Empty, PresetList, "Ready-made agents for a DAW to start from.",
        scope=SCOPE_AGENT,
    ),
    MethodSchema(
        SECRETS_SET, SecretSetParams, SecretInfo,
        "Store a secret of an agent (encrypted; the value is never returned).",
        scope=SCOPE_AGENT,
    ),
    MethodSchema(
        SECRETS_LIST, AgentRef, SecretList, "An agent's secrets: names and dates only.",
        scope=SCOPE_AGENT,
    ),
    MethodSchema(
        SECRETS_DELETE, SecretRef, Deleted, "Delete a secret of an agent.", scope=SCOPE_AGENT
    ),
)  # fmt: skip
