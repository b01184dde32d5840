"""Tools agents may call. :mod:`.mcp`: other MCP servers' tools, through the ``mcp`` SDK's
client (stdio and Streamable HTTP), behind a bounded pool of live sessions."""
