-- When each token was revoked, so that every node can find revocations since its last
-- look (one query per sweep) and close the open sessions that use them.
ALTER TABLE revoked_tokens ADD COLUMN revoked_at REAL NOT NULL DEFAULT 0;
CREATE INDEX revoked_tokens_by_revoked_at ON revoked_tokens (revoked_at);
