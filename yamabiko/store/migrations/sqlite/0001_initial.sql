-- The initial schema. Timestamps are UTC text, fixed width ('2026-01-02T03:04:05.000006Z'),
-- so text order is time order; JSON columns are text; booleans are 0/1.
-- Tenant data carries tenant_id on every table, so every query can be scoped by it.
-- tenant_id '' in models and audit_events means "no tenant" (global / unattributed).

CREATE TABLE tenants (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    system_prompt      TEXT,
    default_model      TEXT,
    monthly_budget_usd REAL,
    rate_limits        TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);
CREATE INDEX tenants_by_created ON tenants (created_at, id);

CREATE TABLE agents (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    owner           TEXT NOT NULL,
    name            TEXT NOT NULL,
    personality     TEXT NOT NULL,
    system_prompt   TEXT NOT NULL,
    model           TEXT,
    temperature     REAL,
    skills          TEXT NOT NULL,
    mcp_server_ids  TEXT NOT NULL,
    fallback_models TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX agents_by_tenant ON agents (tenant_id, created_at, id);

CREATE TABLE agent_secrets (
    agent_id   TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    tenant_id  TEXT NOT NULL,
    ciphertext TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (agent_id, name)
);

CREATE TABLE conversations (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    owner      TEXT NOT NULL,
    title      TEXT NOT NULL,
    agent_id   TEXT,
    archived   INTEGER NOT NULL CHECK (archived IN (0, 1)),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX conversations_by_owner ON conversations (tenant_id, owner, created_at, id);
CREATE INDEX conversations_by_tenant ON conversations (tenant_id, created_at, id);

CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    tenant_id       TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    content         TEXT NOT NULL,
    model           TEXT,
    status          TEXT NOT NULL
                    CHECK (status IN ('streaming', 'complete', 'cancelled', 'error')),
    input_tokens    INTEGER NOT NULL,
    output_tokens   INTEGER NOT NULL,
    cost_usd        REAL NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, created_at, id);

CREATE TABLE usage_events (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    model         TEXT NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd      REAL NOT NULL,
    at            TEXT NOT NULL
);
CREATE INDEX usage_events_by_tenant ON usage_events (tenant_id, at);

CREATE TABLE models (
    tenant_id             TEXT NOT NULL,
    id                    TEXT NOT NULL,
    provider              TEXT NOT NULL,
    provider_model        TEXT NOT NULL,
    aliases               TEXT NOT NULL,
    input_price_per_mtok  REAL NOT NULL,
    output_price_per_mtok REAL NOT NULL,
    context_window        INTEGER NOT NULL,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE mcp_servers (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    name       TEXT NOT NULL,
    transport  TEXT NOT NULL CHECK (transport IN ('stdio', 'http')),
    command    TEXT,
    args       TEXT NOT NULL,
    url        TEXT,
    headers    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE INDEX mcp_servers_by_tenant ON mcp_servers (tenant_id, created_at, id);

CREATE TABLE revoked_tokens (
    tenant_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (tenant_id, jti)
);
CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires_at);

CREATE TABLE audit_events (
    id        TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    subject   TEXT,
    action    TEXT NOT NULL,
    target    TEXT,
    outcome   TEXT NOT NULL CHECK (outcome IN ('ok', 'refused', 'error')),
    detail    TEXT NOT NULL,
    at        TEXT NOT NULL
);
CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id, at, id);
CREATE INDEX audit_events_by_action ON audit_events (tenant_id, action, at, id);
