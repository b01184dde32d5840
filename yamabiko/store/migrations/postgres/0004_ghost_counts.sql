-- Each user's personal ghost-text model: how often a token followed a context in the
-- suggestions they accepted (the engine defines both strings). Added up on write.
CREATE TABLE ghost_counts (
    tenant_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    engine     TEXT NOT NULL,
    context    TEXT NOT NULL,
    token      TEXT NOT NULL,
    count      BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, user_id, engine, context, token)
);
