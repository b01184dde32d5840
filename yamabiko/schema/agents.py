"""The ``agents`` namespace (DESIGN.md section 7): agents, presets and their secrets.

An agent belongs to the user who created it; a tenant admin sees every agent of the
tenant. Secrets are write-only: no result here ever carries a value.
"""

from __future__ import annotations

from typing import Annotated, Final

from msgspec import UNSET, Meta, UnsetType

from yamabiko.schema.base import SCOPE_AGENT, MethodSchema, PageParams, Params, Result
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

Name = Annotated[str, Meta(min_length=1, max_length=100)]
Personality = Annotated[str, Meta(max_length=4000)]
SystemPrompt = Annotated[str, Meta(max_length=20000)]
ModelName = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_-]*/.+$", max_length=300)]
Temperature = Annotated[float, Meta(ge=0.0, le=2.0)]
Skill = Annotated[str, Meta(min_length=1, max_length=64)]
Skills = Annotated[list[Skill], Meta(max_length=32)]
Ids = Annotated[list[Annotated[str, Meta(min_length=1, max_length=64)]], Meta(max_length=32)]
Models = Annotated[list[ModelName], Meta(max_length=8)]
SecretName = Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
"""Like an environment variable: ``OPENAI_API_KEY``."""
SecretValue = Annotated[str, Meta(min_length=1, max_length=8192)]
AgentIdParam = Annotated[str, Meta(min_length=1, max_length=64)]


class AgentCreateParams(Params):
    name: Name
    personality: Personality = ""
    system_prompt: SystemPrompt = ""
    model: ModelName | None = None
    """``engine/providerModel``; unset: the tenant's default model."""
    temperature: Temperature | None = None
    skills: Skills = []
    mcp_server_ids: Ids = []
    fallback_models: Models = []
    preset: Annotated[str, Meta(max_length=64)] | None = None
    """Start from a preset (``agents/presets``): its fields, overridden by those given."""


class AgentRef(Params):
    agent_id: AgentIdParam


class AgentUpdateParams(Params):
    """Fields left out stay as they are; ``model: null`` returns to the default."""

    agent_id: AgentIdParam
    name: Name | UnsetType = UNSET
    personality: Personality | UnsetType = UNSET
    system_prompt: SystemPrompt | UnsetType = UNSET
    model: ModelName | UnsetType | None = UNSET
    temperature: Temperature | UnsetType | None = UNSET
    skills: Skills | UnsetType = UNSET
    mcp_server_ids: Ids | UnsetType = UNSET
    fallback_models: Models | UnsetType = UNSET


class Deleted(Result):
    deleted: bool


class Preset(Result):
    id: str
    name: str
    personality: str
    system_prompt: str
    skills: list[str]
    temperature: float


class PresetList(Result):
    items: list[Preset]


class SecretSetParams(Params):
    agent_id: AgentIdParam
    name: SecretName
    value: SecretValue

    def __repr__(self) -> str:  # never let a value reach a traceback or log
        return f"SecretSetParams(agent_id={self.agent_id!r}, name={self.name!r})"


class SecretRef(Params):
    agent_id: AgentIdParam
    name: SecretName


class SecretList(Result):
    items: list[SecretInfo]


METHODS: Final[tuple[MethodSchema, ...]] = (
    MethodSchema(AGENTS_CREATE, AgentCreateParams, Agent, "Create an agent.", scope=SCOPE_AGENT),
    MethodSchema(AGENTS_GET, AgentRef, Agent, "One agent by id.", scope=SCOPE_AGENT),
    MethodSchema(
        AGENTS_UPDATE, AgentUpdateParams, Agent, "Change some fields of an agent.",
        scope=SCOPE_AGENT,
    ),
    MethodSchema(
        AGENTS_DELETE, AgentRef, Deleted, "Delete an agent and its secrets.", scope=SCOPE_AGENT
    ),
    MethodSchema(
        AGENTS_LIST, PageParams, Page[Agent], "The caller's agents (a tenant admin: all).",
        scope=SCOPE_AGENT,
    ),
    MethodSchema(
        AGENTS_PRESETS, Params, PresetList, "Ready-made agents to start from.",
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
