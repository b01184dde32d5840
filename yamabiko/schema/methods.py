"""The method table: every method of the contract, by name."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from yamabiko.schema import (
    admin,
    agent,
    agents,
    audio,
    chat,
    conversations,
    ghost,
    mcp,
    mcp_servers,
    music,
    session,
    stream,
)
from yamabiko.schema.base import MethodSchema


def build_table(*groups: Iterable[MethodSchema]) -> Mapping[str, MethodSchema]:
    """Index method schemas by name; a name defined twice is an error."""
    table: dict[str, MethodSchema] = {}
    for group in groups:
        for schema in group:
            if schema.name in table:
                raise ValueError(f"method {schema.name!r} is defined twice")
            table[schema.name] = schema
    return MappingProxyType(table)


METHODS: Mapping[str, MethodSchema] = build_table(
    session.METHODS,
    agents.METHODS,
    conversations.METHODS,
    chat.METHODS,
    stream.METHODS,
    ghost.METHODS,
    audio.METHODS,
    agent.METHODS,
    music.METHODS,
    mcp_servers.METHODS,
    mcp.METHODS,
    admin.METHODS,
)
