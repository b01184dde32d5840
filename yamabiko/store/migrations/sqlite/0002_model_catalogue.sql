-- The default global model catalogue (tenant_id ''): public list prices in USD per
-- million tokens, standard tier, as published when this catalogue was written.
-- Operators change them with models/update; a tenant overrides one by registering
-- its own entry with the same id.

INSERT INTO models (tenant_id, id, provider, provider_model, aliases, input_price_per_mtok,
                    output_price_per_mtok, context_window, created_at, updated_at) VALUES
    ('', 'openai/gpt-4.1-mini', 'openai', 'gpt-4.1-mini', '["gpt-4.1-mini"]',
     0.40, 1.60, 1047576, '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z'),
    ('', 'openai/gpt-4.1', 'openai', 'gpt-4.1', '["gpt-4.1"]',
     2.00, 8.00, 1047576, '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z'),
    ('', 'anthropic/claude-sonnet-4-5', 'anthropic', 'claude-sonnet-4-5',
     '["claude-sonnet-4-5", "sonnet"]',
     3.00, 15.00, 200000, '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z'),
    ('', 'anthropic/claude-haiku-4-5', 'anthropic', 'claude-haiku-4-5',
     '["claude-haiku-4-5", "haiku"]',
     1.00, 5.00, 200000, '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z'),
    ('', 'gemini/gemini-2.5-flash', 'gemini', 'gemini-2.5-flash', '["gemini-2.5-flash", "flash"]',
     0.30, 2.50, 1048576, '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z'),
    ('', 'gemini/gemini-2.5-pro', 'gemini', 'gemini-2.5-pro', '["gemini-2.5-pro"]',
     1.25, 10.00, 1048576, '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z'),
    ('', 'local/default', 'local', 'default', '["local"]',
     0.00, 0.00, 8192, '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z');
