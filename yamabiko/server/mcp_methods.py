"""The MCP methods the Streamable HTTP face and the stdio bridge serve, with the SDK's
params and result types for each: the socket's MCP methods (docs/mcp.md), one table for
both faces so that neither can drift from the other."""

from __future__ import annotations

from typing import Any, Final, NamedTuple

import mcp_types as types
from pydantic import BaseModel

from yamabiko.schema import mcp as schema


class SdkMethod(NamedTuple):
    params: type[BaseModel]
    result: type[BaseModel]


METHODS: Final[dict[str, SdkMethod]] = {
    schema.TOOLS_LIST: SdkMethod(types.PaginatedRequestParams, types.ListToolsResult),
    schema.TOOLS_CALL: SdkMethod(types.CallToolRequestParams, types.CallToolResult),
    schema.RESOURCES_LIST: SdkMethod(types.PaginatedRequestParams, types.ListResourcesResult),
    schema.RESOURCES_TEMPLATES_LIST: SdkMethod(
        types.PaginatedRequestParams, types.ListResourceTemplatesResult
    ),
    schema.RESOURCES_READ: SdkMethod(types.ReadResourceRequestParams, types.ReadResourceResult),
    schema.RESOURCES_SUBSCRIBE: SdkMethod(types.SubscribeRequestParams, types.EmptyResult),
    schema.RESOURCES_UNSUBSCRIBE: SdkMethod(types.UnsubscribeRequestParams, types.EmptyResult),
    schema.PROMPTS_LIST: SdkMethod(types.PaginatedRequestParams, types.ListPromptsResult),
    schema.PROMPTS_GET: SdkMethod(types.GetPromptRequestParams, types.GetPromptResult),
    schema.COMPLETION_COMPLETE: SdkMethod(types.CompleteRequestParams, types.CompleteResult),
    schema.LOGGING_SET_LEVEL: SdkMethod(types.SetLevelRequestParams, types.EmptyResult),
}


def as_result(method: str, result: dict[str, Any]) -> BaseModel:
    """The socket's result as the SDK's type (which fills what each protocol era needs,
    such as ``resultType`` in the stateless one); ``ValueError`` if it does not fit."""
    return METHODS[method].result.model_validate(result)
