"""MCP's tool methods on the socket (DESIGN.md section 11): ``tools/list`` and
``tools/call``, served to every session (a client that negotiated subprotocol ``mcp``
and MCP's ``initialize`` uses them as any MCP server's). Tools are filtered by the
caller's scopes; a tool's failure is a result with ``isError``, never a JSON-RPC error.
"""

from __future__ import annotations

from typing import Any, Final

from msgspec import field

from yamabiko.schema.base import MethodSchema, Params, Result

TOOLS_LIST: Final = "tools/list"
TOOLS_CALL: Final = "tools/call"


class ListToolsParams(Params):
    cursor: str | None = None


class ToolDescription(Result, kw_only=True):
    name: str
    title: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None = None


class ListToolsResult(Result):
    tools: list[ToolDescription]
    next_cursor: str | None = None


class CallToolParams(Params):
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


class CallToolResult(Result, kw_only=True):
    content: list[dict[str, Any]]
    structured_content: dict[str, Any] | None = None
    is_error: bool = False


METHODS: Final[tuple[MethodSchema, ...]] = (
    MethodSchema(
        TOOLS_LIST, ListToolsParams, ListToolsResult, "MCP: the tools this caller may use."
    ),
    MethodSchema(
        TOOLS_CALL, CallToolParams, CallToolResult, "MCP: call a tool (failures are isError)."
    ),
)
