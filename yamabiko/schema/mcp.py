"""MCP's methods (docs/mcp.md): ``tools/list`` and ``tools/call``, ``resources/*``
(conversations, agents, the model catalogue, generated music, synthesized audio),
``prompts/list|get`` (the agent presets), ``completion/complete`` and
``logging/setLevel``, served to every session (a client that negotiated subprotocol
``mcp`` and MCP's ``initialize`` uses them as any MCP server's) and, through the same
handlers, by the Streamable HTTP face and the stdio bridge. Tools are filtered by the
caller's scopes; a tool's failure is a result with ``isError``, never a JSON-RPC error.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from msgspec import Meta, field

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
RESOURCES_TEMPLATES_LIST: Final = "resources/templates/list"
COMPLETION_COMPLETE: Final = "completion/complete"
LOGGING_SET_LEVEL: Final = "logging/setLevel"
LOGGING_MESSAGE: Final = "notifications/message"

LogLevel = Literal["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]
LOG_LEVELS: Final[tuple[str, ...]] = (
    "debug", "info", "notice", "warning", "error", "critical", "alert", "emergency",
)  # fmt: skip
"""Least to most severe (RFC 5424's order, as MCP uses it)."""


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


MAX_URI: Final = 2048


class ReadResourceParams(Params):
    uri: Annotated[str, Meta(max_length=MAX_URI)]


class UpdatedParams(Params):
    uri: str


class ResourceContents(Result, kw_only=True):
    """One resource's contents: ``text``, or ``blob`` (base64) for binary forms (MIDI,
    WAV)."""

    uri: str
    mime_type: str
    text: str | None = None
    blob: str | None = None


class ResourceTemplate(Result, kw_only=True):
    uri_template: str
    """An RFC 6570 level-1 template: ``yamabiko://agents/{agentId}``."""
    name: str
    title: str | None = None
    description: str
    mime_type: str


class ListResourceTemplatesResult(Result):
    resource_templates: list[ResourceTemplate]
    next_cursor: str | None = None


class CompletionRef(Params):
    type: Literal["ref/prompt", "ref/resource"]
    name: Annotated[str, Meta(max_length=200)] | None = None
    """The prompt's name (``ref/prompt``)."""
    uri: Annotated[str, Meta(max_length=2000)] | None = None
    """The resource template (``ref/resource``)."""


class CompletionArgument(Params):
    name: Annotated[str, Meta(max_length=100)]
    value: Annotated[str, Meta(max_length=1000)] = ""


class CompletionContext(Params):
    arguments: Annotated[dict[str, str], Meta(max_length=20)] | None = None


class CompleteParams(Params):
    ref: CompletionRef
    argument: CompletionArgument
    context: CompletionContext | None = None


class Completion(Result, kw_only=True):
    values: list[str]
    """At most 100, best first."""
    total: int | None = None
    has_more: bool = False


class CompleteResult(Result):
    completion: Completion


class SetLevelParams(Params):
    level: LogLevel


class LogMessageParams(Params, kw_only=True):
    level: LogLevel
    logger: str | None = None
    data: Any


class ReadResourceResult(Result):
    contents: list[ResourceContents]


class PromptArgument(Result, kw_only=True):
    name: str
    description: str | None = None
    required: bool = False


class PromptDescription(Result, kw_only=True):
    name: str
    title: str
    description: str
    arguments: list[PromptArgument] | None = None


class ListPromptsResult(Result):
    prompts: list[PromptDescription]
    next_cursor: str | None = None


class GetPromptParams(Params):
    name: Annotated[str, Meta(max_length=200)]
    arguments: Annotated[dict[str, str], Meta(max_length=20)] = field(default_factory=dict)


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
        "MCP: the caller's conversations and agents, and the model catalogue.",
    ),
    MethodSchema(
        RESOURCES_READ, ReadResourceParams, ReadResourceResult,
        "MCP: a resource or a template's instance (JSON, MIDI or WAV).",
    ),
    MethodSchema(
        RESOURCES_SUBSCRIBE, ReadResourceParams, EmptyResult,
        "MCP: be told (notifications/resources/updated) when the resource changes.",
    ),
    MethodSchema(
        RESOURCES_UNSUBSCRIBE, ReadResourceParams, EmptyResult, "MCP: stop being told.",
    ),
    MethodSchema(
        RESOURCES_UPDATED, UpdatedParams, None,
        "MCP: a subscribed conversation has a new or finished message.", sender="server",
    ),
    MethodSchema(
        PROMPTS_LIST, ListParams, ListPromptsResult, "MCP: the agent presets and compose.",
    ),
    MethodSchema(PROMPTS_GET, GetPromptParams, GetPromptResult, "MCP: one preset's prompt."),
    MethodSchema(
        RESOURCES_TEMPLATES_LIST, ListParams, ListResourceTemplatesResult,
        "MCP: the resource templates (agents, models, music, audio, conversations).",
    ),
    MethodSchema(
        COMPLETION_COMPLETE, CompleteParams, CompleteResult,
        "MCP: values for a prompt argument or a resource template variable.",
    ),
    MethodSchema(
        LOGGING_SET_LEVEL, SetLevelParams, EmptyResult,
        "MCP: the least severe notifications/message this session gets.",
    ),
    MethodSchema(
        LOGGING_MESSAGE, LogMessageParams, None,
        "MCP: a log message for this session, at or above its level.", sender="server",
    ),
)  # fmt: skip
