"""The MCP client side: the pool of sessions to other MCP servers, over stdio and HTTP."""
