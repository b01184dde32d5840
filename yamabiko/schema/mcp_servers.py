"""The ``mcp/servers`` namespace (docs/mcp.md): MCP servers whose tools agents
may call, reached through the ``mcp`` SDK's client.

Scopes: ``mcp/servers/add`` and ``mcp/servers/remove`` need ``admin`` (a stdio server is
a process the server starts); ``mcp/servers/list`` and ``mcp/servers/test`` need
``agent`` (whoever builds agents picks their servers, and ``test`` only connects to a
server an admin added). Servers belong to the caller's tenant; another tenant's ids are
-32004 ``MCP server not found: <id>``.

- ``stdio``: ``command`` and ``args``; the command must be on the server's allowlist
  (``YAMABIKO_MCP_STDIO_ALLOWLIST``: exact command names or absolute paths), else
  -32602 at ``$.command``. The process gets a minimal environment (``HOME``, ``PATH``,
  ...), never the server's provider keys.
- ``http``: the Streamable HTTP transport at ``url`` (``http://`` or ``https://``), with
  ``headers`` sent on every request.

Header values may reference a secret of the agent that uses the server:
``"Authorization": "Bearer ${secret:GITHUB_TOKEN}"``. References are stored as written
and resolved when connecting, from the agent's secrets (``agents/secrets/set``): during
an agent's run from that agent's, in ``mcp/servers/test`` from the secrets of the
``agentId`` given (without one, a server whose headers reference secrets fails the test,
saying which secret it needs). Header values are write-only in results: a reference is
shown as written, any other value as ``***``.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from msgspec import Meta

from yamabiko.schema.admin import Done
from yamabiko.schema.agents import AgentIdParam, ObjectId
from yamabiko.schema.base import (
    SCOPE_ADMIN,
    SCOPE_AGENT,
    MethodSchema,
    PageParams,
    Params,
    Result,
)
from yamabiko.schema.objects import McpServer, Page

MCP_SERVERS_ADD: Final = "mcp/servers/add"
MCP_SERVERS_LIST: Final = "mcp/servers/list"
MCP_SERVERS_REMOVE: Final = "mcp/servers/remove"
MCP_SERVERS_TEST: Final = "mcp/servers/test"

REDACTED: Final = "***"
"""What a header value that is not a secret reference looks like in results."""

ServerIdParam = ObjectId
ServerName = Annotated[str, Meta(min_length=1, max_length=100)]
Command = Annotated[str, Meta(min_length=1, max_length=1000)]
Arg = Annotated[str, Meta(max_length=4000)]
Args = Annotated[list[Arg], Meta(max_length=64)]
Url = Annotated[str, Meta(pattern=r"^https?://[^\s]+$", max_length=2000)]
HeaderName = Annotated[str, Meta(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")]
"""An HTTP header name (an RFC 9110 token)."""
HeaderValue = Annotated[str, Meta(pattern=r"^[^\r\n]*$", max_length=8192)]
"""One line; may hold ``${secret:NAME}`` references to the agent's secrets."""
Headers = Annotated[dict[HeaderName, HeaderValue], Meta(max_length=32)]


class McpServerAddParams(Params, kw_only=True):
    """A new MCP server of the caller's tenant, by a name unique in the tenant (else
    -32009). ``stdio`` needs ``command`` (on the allowlist) and takes ``args``; ``http``
    needs ``url`` and takes ``headers``. A field of the other transport is -32602.
    Audited as ``mcp_server.add``."""

    name: ServerName
    transport: Literal["stdio", "http"]
    command: Command | None = None
    args: Args = []
    url: Url | None = None
    headers: Headers = {}


class McpServerRef(Params, kw_only=True):
    """Names one MCP server of the caller's tenant. Removing it is audited as
    ``mcp_server.remove`` and closes its live sessions; agents that list its id keep
    the id (it names nothing any more)."""

    server_id: ServerIdParam


class McpServerTestParams(McpServerRef, kw_only=True):
    """Connects to the server afresh, initializes and lists its tools. ``agentId``: an
    agent the caller can see (else -32004), whose secrets resolve the header
    references."""

    agent_id: AgentIdParam | None = None


class McpToolSummary(Result):
    name: str
    description: str


class McpServerTestResult(Result):
    """``ok``: the server answered ``initialize`` and ``tools/list``; ``latencyMs``
    covers starting or reaching it, both requests and the answers. When ``ok`` is false,
    ``error`` says why (not allowed, not reachable, timed out, an MCP error) and
    ``tools`` is empty. A failing server is a result, not an error."""

    ok: bool
    tools: list[McpToolSummary]
    latency_ms: float
    error: str | None = None


METHODS: Final[tuple[MethodSchema, ...]] = (
    MethodSchema(
        MCP_SERVERS_ADD, McpServerAddParams, McpServer,
        "Add an MCP server (stdio from the allowlist, or Streamable HTTP) for agents.",
        scope=SCOPE_ADMIN,
    ),
    MethodSchema(
        MCP_SERVERS_LIST, PageParams, Page[McpServer],
        "The tenant's MCP servers, oldest first (header values redacted).",
        scope=SCOPE_AGENT,
    ),
    MethodSchema(
        MCP_SERVERS_REMOVE, McpServerRef, Done, "Remove an MCP server.", scope=SCOPE_ADMIN
    ),
    MethodSchema(
        MCP_SERVERS_TEST, McpServerTestParams, McpServerTestResult,
        "Connect to an MCP server and list its tools, with the latency.", scope=SCOPE_AGENT,
    ),
)  # fmt: skip
