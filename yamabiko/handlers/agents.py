"""Handlers of the ``agents`` namespace: agents, presets, secrets.

A user reaches their own agents; a tenant admin reaches all of the tenant's
(:func:`~yamabiko.handlers.common.owner_filter`). Any other id is "not found" (-32004),
never "forbidden". Secret values go from the params straight to the store: they are
never returned, logged or put in an audit event.

Only an agent's owner attaches MCP servers to it (``mcpServerIds``): the agent's secrets
may be sent to the servers attached to it (``docs/mcp.md``, "Secret substitution"), so a
tenant admin changing another user's list would choose where that user's keys go. An
admin's update that changes the list of someone else's agent is -32003.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from msgspec import UNSET

from yamabiko.handlers.common import audit, found, owner_filter, tenant, user
from yamabiko.handlers.presets import BY_ID, PRESETS
from yamabiko.protocol import errors
from yamabiko.schema import agents as schema
from yamabiko.schema.agents import (
    AgentCreateParams,
    AgentRef,
    AgentUpdateParams,
    Deleted,
    PresetList,
    SecretList,
    SecretRef,
    SecretSetParams,
)
from yamabiko.schema.base import Empty, PageParams
from yamabiko.schema.objects import Agent, AgentId, McpServerId, Page, SecretInfo
from yamabiko.services.container import services
from yamabiko.sessions.methods import Router
from yamabiko.sessions.session import Context

router = Router()

_FIELDS: tuple[str, ...] = (
    "personality", "system_prompt", "model", "temperature", "skills", "mcp_server_ids",
    "fallback_models",
)  # fmt: skip
"""The optional fields of an agent, named alike in the params and the store."""


def _given(params: AgentCreateParams | AgentUpdateParams) -> dict[str, Any]:
    """The optional fields the caller gave (null included), by store argument name."""
    return {name: value for name in _FIELDS if (value := getattr(params, name)) is not UNSET}


async def _mcp_server_ids(ctx: Context, ids: Sequence[str]) -> list[McpServerId]:
    """``ids``, each checked to be an MCP server of the caller's tenant (else -32004)."""
    checked = [McpServerId(i) for i in dict.fromkeys(ids)]  # once each, in order
    for server_id in checked:
        server = await services(ctx).store.mcp_servers.get(tenant(ctx), server_id)
        found(server, "MCP server", server_id)
    return checked


@router.method(schema.AGENTS_CREATE)
async def create(ctx: Context, params: AgentCreateParams) -> Agent:
    """The new agent: the preset's fields (if any), then the caller's on top."""
    fields: dict[str, Any] = {}
    if params.preset is not None:
        preset = BY_ID[params.preset]  # the schema admits known ids only
        fields = {
            "personality": preset.personality,
            "system_prompt": preset.system_prompt,
            "skills": list(preset.skills),
            "temperature": preset.temperature,
        }
    fields.update(_given(params))
    if "mcp_server_ids" in fields:
        fields["mcp_server_ids"] = await _mcp_server_ids(ctx, fields["mcp_server_ids"])
    return await services(ctx).store.agents.create(
        tenant(ctx), user(ctx), name=params.name, **fields
    )


@router.method(schema.AGENTS_GET)
async def get(ctx: Context, params: AgentRef) -> Agent:
    agent = await services(ctx).store.agents.get(
        tenant(ctx), AgentId(params.agent_id), owner=owner_filter(ctx)
    )
    return found(agent, "agent", params.agent_id)


@router.method(schema.AGENTS_UPDATE)
async def update(ctx: Context, params: AgentUpdateParams) -> Agent:
    changes = _given(params)
    if params.name is not UNSET:
        changes["name"] = params.name
    if "mcp_server_ids" in changes:
        # Only for an agent the caller can see, so that an unknown agent is "agent not
        # found" whatever the ids: the lookup below costs one query.
        current = await get(ctx, AgentRef(agent_id=params.agent_id))
        changes["mcp_server_ids"] = await _mcp_server_ids(ctx, changes["mcp_server_ids"])
        if current.owner != user(ctx) and changes["mcp_server_ids"] != current.mcp_server_ids:
            raise errors.Forbidden(
                "forbidden: only the agent's owner attaches MCP servers to it - at $.mcpServerIds"
            )
    agent = await services(ctx).store.agents.update(
        tenant(ctx), AgentId(params.agent_id), owner=owner_filter(ctx), **changes
    )
    return found(agent, "agent", params.agent_id)


@router.method(schema.AGENTS_DELETE)
async def delete(ctx: Context, params: AgentRef) -> Deleted:
    """Deletes the agent and its secrets; its conversations stay."""
    done = await services(ctx).store.agents.delete(
        tenant(ctx), AgentId(params.agent_id), owner=owner_filter(ctx)
    )
    found(done, "agent", params.agent_id)
    return Deleted(deleted=True)


@router.method(schema.AGENTS_LIST)
async def list_agents(ctx: Context, params: PageParams) -> Page[Agent]:
    return await services(ctx).store.agents.list(
        tenant(ctx), owner=owner_filter(ctx), limit=params.limit, cursor=params.cursor
    )


@router.method(schema.AGENTS_PRESETS)
async def presets(ctx: Context, params: Empty) -> PresetList:
    return PresetList(items=list(PRESETS))


@router.method(schema.SECRETS_SET)
async def set_secret(ctx: Context, params: SecretSetParams) -> SecretInfo:
    info = await services(ctx).store.secrets.set(
        tenant(ctx), AgentId(params.agent_id), params.name, params.value, owner=owner_filter(ctx)
    )
    info = found(info, "agent", params.agent_id)
    await audit(ctx, "secret.set", target=f"{params.agent_id}/{params.name}")
    return info


@router.method(schema.SECRETS_LIST)
async def list_secrets(ctx: Context, params: AgentRef) -> SecretList:
    items = await services(ctx).store.secrets.list(
        tenant(ctx), AgentId(params.agent_id), owner=owner_filter(ctx)
    )
    return SecretList(items=found(items, "agent", params.agent_id))


@router.method(schema.SECRETS_DELETE)
async def delete_secret(ctx: Context, params: SecretRef) -> Deleted:
    """-32004 ``agent not found`` for an agent the caller cannot see, ``secret not
    found`` for a name the agent has no secret by."""
    target = f"{params.agent_id}/{params.name}"
    done = await services(ctx).store.secrets.delete(
        tenant(ctx), AgentId(params.agent_id), params.name, owner=owner_filter(ctx)
    )
    if not done:
        await get(ctx, AgentRef(agent_id=params.agent_id))  # -32004 agent not found
        found(done, "secret", target)
    await audit(ctx, "secret.delete", target=target)
    return Deleted(deleted=True)
