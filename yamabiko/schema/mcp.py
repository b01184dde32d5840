"""MCP's methods on the socket (docs/mcp.md): ``tools/list`` and ``tools/call``,
``resources/list|read`` (the caller's conversations) and ``prompts/list|get`` (the agent
presets), served to every session (a client that negotiated subprotocol ``mcp``
and MCP's ``initialize`` uses them as any MCP server's). Tools are filtered by the
caller's scopes; a tool's failure is a result with ``isError``, never a JSON-RPC error.
"""

from __future__ import annotations

from typing import Any, Final

from msgspec import field

from yamabiko.schema.base import EmptyResult, MethodSchema, Params, Result

TOOLS_LIST: Final = "tools/list"
TOOLS_CALL: Final = "tools/call"
RESOURCES_LIST: Final = "resources/list"
RESOURCES_READ: Final = "resources/read"
RESOURCES_SUBSCRIBE: Final = "resources/subscribe"
RESOURCES_UNSUBSCRIBE: Final = "resources/unsubscribe"
RESOURCES_UPDATED: Final = "notifications/resources/updated"
PROMPTS_LIST: Final = "prompts/list"
PROMPTS_GET: Final = "prompts/get"


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


class ListParams(Params):
    cursor: str | None = None


class Resource(Result, kw_only=True):
    uri: str
    name: str
    title: str | None = None
    mime_type: str


class ListResourcesResult(Result):
    resources: list[Resource]
    next_cursor: str | None = None


class ReadResourceParams(Params):
    uri: str


class UpdatedParams(Params):
    uri: str


class ResourceContents(Result, kw_only=True):
    uri: str
    mime_type: str
    text: str


class ReadResourceResult(Result):
    contents: list[ResourceContents]


class PromptDescription(Result, kw_only=True):
    name: str
    title: str
    description: str


class ListPromptsResult(Result):
    prompts: list[PromptDescription]
    next_cursor: str | None = None


class GetPromptParams(Params):
    name: str
    arguments: dict[str, str] = field(default_factory=dict)


class PromptMessage(Result):
    role: str
    content: dict[str, Any]


class GetPromptResult(Result, kw_only=True):
    description: str
    messages: list[PromptMessage]


METHODS: Final[tuple[MethodSchema, ...]] = (
    MethodSchema(
        TOOLS_LIST, ListToolsParams, ListToolsResult, "MCP: the tools this caller may use."
    ),
    MethodSchema(
        TOOLS_CALL, CallToolParams, CallToolResult, "MCP: call a tool (failures are isError)."
    ),
    MethodSchema(
        RESOURCES_LIST, ListParams, ListResourcesResult,
        "MCP: the caller's conversations as yamabiko://conversations/{id}.", scope="chat",
    ),
    MethodSchema(
        RESOURCES_READ, ReadResourceParams, ReadResourceResult,
        "MCP: a conversation and its messages, as JSON.", scope="chat",
    ),
    MethodSchema(
        RESOURCES_SUBSCRIBE, ReadResourceParams, EmptyResult,
        "MCP: be told (notifications/resources/updated) when the conversation changes.",
        scope="chat",
    ),
    MethodSchema(
        RESOURCES_UNSUBSCRIBE, ReadResourceParams, EmptyResult, "MCP: stop being told.",
        scope="chat",
    ),
    MethodSchema(
        RESOURCES_UPDATED, UpdatedParams, None,
        "MCP: a subscribed conversation has a new or finished message.", sender="server",
    ),
    MethodSchema(PROMPTS_LIST, ListParams, ListPromptsResult, "MCP: the agent presets as prompts."),
    MethodSchema(PROMPTS_GET, GetPromptParams, GetPromptResult, "MCP: one preset's prompt."),
)  # fmt: skip
