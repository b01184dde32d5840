"""Handlers of the ``mcp/servers`` namespace: the MCP servers agents may use.

``add`` and ``remove`` need scope ``admin``, ``list`` and ``test`` scope ``agent`` (the
session checks them from the schema). Everything acts within the caller's tenant;
another tenant's server ids are -32004. ``add`` and ``remove`` are audit events
(``mcp_server.add``, ``mcp_server.remove``), and so is an ``add`` refused because its
stdio command is not on the allowlist or its URL is refused by the egress policy, and a
``test`` refused because the agent's secrets may not go to the server (``mcp_server.test``)
(outcome ``refused``; ``docs/mcp.md``, "Egress policy": a literal private address or a
loopback name is refused here, a name that resolves to one when connecting). Header
values never reach a result, an error or an audit event: results show
``${secret:NAME}`` references as written and other values as ``***``.

Sessions to the servers are the node's :class:`~yamabiko.engines.tools.mcp.McpClients`
pool (``services(ctx).mcp``); removing a server closes its sessions on this node (other
nodes' sessions of it age out of their pools).
"""

from __future__ import annotations

from typing import Any

import msgspec

from yamabiko.engines.tools.egress import EgressRefused
from yamabiko.engines.tools.mcp import (
    SECRET_REF,
    McpClients,
    McpConfigError,
    McpServerSpec,
    secret_names,
    spec_from_server,
)
from yamabiko.handlers.common import audit, found, owner_filter, tenant, user
from yamabiko.protocol import errors
from yamabiko.schema import mcp_servers as schema
from yamabiko.schema.admin import Done
from yamabiko.schema.base import PageParams
from yamabiko.schema.mcp_servers import (
    REDACTED,
    McpServerAddParams,
    McpServerRef,
    McpServerTestParams,
    McpServerTestResult,
    McpToolSummary,
)
from yamabiko.schema.objects import Agent, AgentId, McpServer, McpServerId, Page
from yamabiko.services.container import services
from yamabiko.sessions.methods import Router
from yamabiko.sessions.session import Context

router = Router()


def _pool(ctx: Context) -> McpClients:
    return services(ctx).mcp


def redacted(server: McpServer) -> McpServer:
    """``server`` as results show it: header values other than secret references
    replaced by ``***``."""
    if not server.headers:
        return server
    headers = {
        name: value if _shows_nothing(value) else REDACTED for name, value in server.headers.items()
    }
    return msgspec.structs.replace(server, headers=headers)


_SCHEMES = frozenset({"", "bearer", "basic", "token"})


def _shows_nothing(value: str) -> bool:
    """Whether the value is secret references, optionally after an auth scheme
    (``Bearer ${secret:TOKEN}``): shown as written, it reveals nothing."""
    if SECRET_REF.search(value) is None:
        return False
    return SECRET_REF.sub("", value).strip().lower() in _SCHEMES


def _check_add(params: McpServerAddParams) -> None:
    def refuse(message: str, path: str) -> None:
        raise errors.InvalidParams(f"{message} - at $.{path}")

    if params.transport == "stdio":
        if params.command is None:
            refuse("a stdio server needs a command", "command")
        if params.url is not None:
            refuse("url is for http servers", "url")
        if params.headers:
            refuse("headers are for http servers", "headers")
    else:
        if params.url is None:
            refuse("an http server needs a url", "url")
        if params.command is not None:
            refuse("command is for stdio servers", "command")
        if params.args:
            refuse("args are for stdio servers", "args")
    for name, value in params.headers.items():
        if "${secret:" in SECRET_REF.sub("", value):
            refuse("a secret reference is ${secret:NAME}, NAME like an environment variable",
                   f"headers.{name}")  # fmt: skip


# methods


@router.method(schema.MCP_SERVERS_ADD)
async def add(ctx: Context, params: McpServerAddParams) -> McpServer:
    _check_add(params)
    command = params.command if params.transport == "stdio" else None
    if command is not None and not _pool(ctx).allows(command):
        await audit(
            ctx, "mcp_server.add", outcome="refused",
            detail={"name": params.name, "reason": "command not on the stdio allowlist"},
        )  # fmt: skip
        raise errors.InvalidParams(
            f"command not allowed: {command!r} is not on the server's stdio allowlist"
            " - at $.command"
        )
    if params.url is not None:
        try:
            _pool(ctx).egress.check_url(params.url)
        except EgressRefused as exc:
            await audit(
                ctx, "mcp_server.add", outcome="refused",
                detail={"name": params.name, "reason": "url refused by the egress policy"},
            )  # fmt: skip
            raise errors.InvalidParams(f"url not allowed: {exc.message} - at $.url") from None
    server = await services(ctx).store.mcp_servers.add(
        tenant(ctx),
        name=params.name,
        transport=params.transport,
        command=params.command,
        args=params.args,
        url=params.url,
        headers=params.headers,
        created_by=user(ctx),
    )
    detail: dict[str, Any] = {"name": server.name, "transport": server.transport}
    await audit(ctx, "mcp_server.add", target=server.id, detail=detail)
    return redacted(server)


@router.method(schema.MCP_SERVERS_LIST)
async def list_servers(ctx: Context, params: PageParams) -> Page[McpServer]:
    page = await services(ctx).store.mcp_servers.list(
        tenant(ctx), limit=params.limit, cursor=params.cursor
    )
    return Page(items=[redacted(s) for s in page.items], next_cursor=page.next_cursor)


@router.method(schema.MCP_SERVERS_REMOVE)
async def remove(ctx: Context, params: McpServerRef) -> Done:
    removed = await services(ctx).store.mcp_servers.remove(
        tenant(ctx), McpServerId(params.server_id)
    )
    found(removed, "MCP server", params.server_id)
    await _pool(ctx).forget(params.server_id)
    await audit(ctx, "mcp_server.remove", target=params.server_id)
    return Done(ok=True)


@router.method(schema.MCP_SERVERS_TEST)
async def test(ctx: Context, params: McpServerTestParams) -> McpServerTestResult:
    server = found(
        await services(ctx).store.mcp_servers.get(tenant(ctx), McpServerId(params.server_id)),
        "MCP server",
        params.server_id,
    )
    agent: Agent | None = None
    if params.agent_id is not None:
        agent = found(
            await services(ctx).store.agents.get(
                tenant(ctx), AgentId(params.agent_id), owner=owner_filter(ctx)
            ),
            "agent",
            params.agent_id,
        )
    if (
        agent is not None
        and secret_names(server.headers)
        and not may_receive_secrets(server, agent)
    ):
        # Someone asking for another user's secrets to go to a server: worth a record.
        await audit(
            ctx, "mcp_server.test", target=server.id, outcome="refused",
            detail={"agentId": agent.id, "reason": "the agent's secrets may not go to this server"},
        )  # fmt: skip
    try:
        spec = await server_spec(ctx, server, agent)
    except McpConfigError as exc:
        return McpServerTestResult(ok=False, tools=[], latency_ms=0.0, error=exc.message)
    probe = await _pool(ctx).test(spec)
    return McpServerTestResult(
        ok=probe.ok,
        tools=[McpToolSummary(name=t.name, description=t.description) for t in probe.tools],
        latency_ms=probe.latency_ms,
        error=probe.error,
    )


def may_receive_secrets(server: McpServer, agent: Agent) -> bool:
    """Whether ``agent``'s secrets may be sent to ``server``: its owner attached the
    server to it (only the owner can: see :mod:`yamabiko.handlers.agents`), or its
    owner added the server. Naming someone else's agent never suffices."""
    return server.id in agent.mcp_server_ids or server.created_by == agent.owner


async def server_spec(ctx: Context, server: McpServer, agent: Agent | None) -> McpServerSpec:
    """The spec to connect to ``server`` with, its header references resolved from the
    secrets of ``agent`` (which the caller has checked the user may see). Raises
    McpConfigError naming a referenced secret that is not set, or when there is no
    agent or the agent's secrets may not go to this server (:func:`may_receive_secrets`),
    before anything is sent. For agent runs as well as ``test``."""
    secrets: dict[str, str] = {}
    names = secret_names(server.headers)
    if names and agent is None:
        missing = sorted(names)[0]
        raise McpConfigError(
            f"MCP server {server.id}: headers reference the agent secret {missing!r}: "
            "give agentId to test with an agent's secrets"
        )
    if names and agent is not None:
        if not may_receive_secrets(server, agent):
            raise McpConfigError(
                f"MCP server {server.id}: the secrets of agent {agent.id} go only to MCP"
                " servers its owner attached to it or added"
            )
        store = services(ctx).store
        for name in sorted(names):
            value = await store.secrets.get_value(tenant(ctx), agent.id, name)
            if value is not None:
                secrets[name] = value
    return spec_from_server(server, secrets=secrets)
