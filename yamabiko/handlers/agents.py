"""Handlers of the ``agents`` namespace: agents, presets, secrets.

A user reaches their own agents; a tenant admin reaches all of the tenant's. Any other
id is "not found" (-32004), never "forbidden".
"""

from __future__ import annotations

from typing import Any

import msgspec

from yamabiko.handlers.common import audit, found, owner_filter, tenant, user
from yamabiko.handlers.presets import BY_ID, PRESETS
from yamabiko.handlers.services import services
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
from yamabiko.schema.base import PageParams, Params
from yamabiko.schema.objects import Agent, AgentId, McpServerId, Page, SecretInfo
from yamabiko.sessions.methods import Router
from yamabiko.sessions.session import Context

router = Router()

_UPDATABLE = (
    "name", "personality", "system_prompt", "model", "temperature", "skills",
    "mcp_server_ids", "fallback_models",
)  # fmt: skip


@router.method(schema.AGENTS_CREATE)
async def create(ctx: Context, params: AgentCreateParams) -> Agent:
    fields: dict[str, Any] = {}
    if params.preset is not None:
        preset = BY_ID.get(params.preset)
        if preset is None:
            raise errors.InvalidParams(f"unknown preset {params.preset!r} - at $.preset")
        fields = {
            "personality": preset.personality,
            "system_prompt": preset.system_prompt,
            "skills": list(preset.skills),
            "temperature": preset.temperature,
        }
    given = msgspec.structs.asdict(params)
    defaults = AgentCreateParams(name=params.name)
    for name in _UPDATABLE:
        value = given[name]
        if name not in fields or value != getattr(defaults, name):
            fields[name] = value
    fields.pop("name", None)
    fields["mcp_server_ids"] = [McpServerId(i) for i in fields["mcp_server_ids"]]
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
    changes = {
        name: getattr(params, name)
        for name in _UPDATABLE
        if getattr(params, name) is not msgspec.UNSET
    }
    if "mcp_server_ids" in changes:
        changes["mcp_server_ids"] = [McpServerId(i) for i in changes["mcp_server_ids"]]
    agent = await services(ctx).store.agents.update(
        tenant(ctx), AgentId(params.agent_id), owner=owner_filter(ctx), **changes
    )
    return found(agent, "agent", params.agent_id)


@router.method(schema.AGENTS_DELETE)
async def delete(ctx: Context, params: AgentRef) -> Deleted:
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
async def presets(ctx: Context, params: Params) -> PresetList:
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
    done = await services(ctx).store.secrets.delete(
        tenant(ctx), AgentId(params.agent_id), params.name, owner=owner_filter(ctx)
    )
    found(done, "secret", f"{params.agent_id}/{params.name}")
    await audit(ctx, "secret.delete", target=f"{params.agent_id}/{params.name}")
    return Deleted(deleted=True)
