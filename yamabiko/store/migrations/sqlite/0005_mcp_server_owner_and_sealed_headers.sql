-- Who added each MCP server (secrets of that user's agents may go to it), and header
-- values encrypted at rest: each value of `headers` becomes a Fernet token once
-- `headers_sealed` is 1. Encrypting needs the server's keys, which SQL has not: the
-- store seals the rows left at 0 when it opens (SqlMcpServers.seal_plaintext_headers).
-- Servers added before this migration have no known creator (NULL).
ALTER TABLE mcp_servers ADD COLUMN created_by TEXT;
ALTER TABLE mcp_servers ADD COLUMN headers_sealed INTEGER NOT NULL DEFAULT 0;
