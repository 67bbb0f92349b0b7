-- +goose Up
-- Prices are data: operators change them with SQL or the admin API, and every logged call records
-- the price_version it was charged at. Late-2026 snapshot of the providers' published prices,
-- per 1M tokens: DeepSeek V3.2 $0.28 in / $0.42 out / $0.028 cached input;
-- Gemini 2.5 Flash-Lite $0.10 / $0.40 / $0.01 cached; Claude Haiku 4.5 $1 / $5 / $0.10 cached.
INSERT INTO ai_models (model_key, provider, api_model, display_name,
                       input_nano_per_mtok, output_nano_per_mtok, cached_input_nano_per_mtok,
                       price_version, enabled, is_emergency) VALUES
    ('deepseek',     'deepseek',  'deepseek-chat',         'DeepSeek V3.2',
        280000000,  420000000,  28000000, 'deepseek-v3.2@2026-11', true,  false),
    ('gemini_flash', 'gemini',    'gemini-2.5-flash-lite', 'Gemini 2.5 Flash-Lite',
        100000000,  400000000,  10000000, 'gemini-2.5-flash-lite@2026-11', true,  false),
    ('claude',       'anthropic', 'claude-haiku-4-5',      'Claude Haiku 4.5',
       1000000000, 5000000000, 100000000, 'claude-haiku-4.5@2026-11', true,  true),
    -- No provider serves speech yet: the model exists so the speech operations have a route,
    -- and both stay disabled until an operator points them at a real model.
    ('speech',       'none',      '',                      'Speech model (no provider configured)',
        0, 0, 0, 'unpriced', false, false);

INSERT INTO ai_model_routes (operation_id, operation_name, primary_model, fallback_model, enabled,
                             cost_criticality, requires_approval, max_output_tokens,
                             avg_input_tokens, avg_output_tokens, allow_emergency, notes) VALUES
    ('chat_message',        'Chat message',          'deepseek',     'gemini_flash', true,  'HIGH',   false, 2048, 1500, 400, true,  ''),
    ('agent_execution',     'Agent execution',       'deepseek',     'gemini_flash', true,  'HIGH',   false, 4096, 3000, 800, true,  ''),
    ('memory_synthesis',    'Memory synthesis',      'gemini_flash', 'deepseek',     true,  'MEDIUM', false, 2048, 4000, 600, true,  ''),
    ('sentiment_analysis',  'Sentiment analysis',    'gemini_flash', 'deepseek',     true,  'LOW',    false, 256,  400,  60,  true,  ''),
    ('video_understanding', 'Video understanding',   'gemini_flash', NULL,           true,  'MEDIUM', false, 2048, 8000, 500, false, 'only Gemini takes video input'),
    ('audio_transcription', 'Audio transcription',   'speech',       NULL,           false, 'MEDIUM', false, 4096, 2000, 1500, false, 'enable once a provider serves speech'),
    ('text_to_speech',      'Text to speech',        'speech',       NULL,           false, 'LOW',    false, 4096, 500,  0,   false, 'enable once a provider serves speech'),
    ('email_analysis',      'Email analysis',        'gemini_flash', 'deepseek',     false, 'LOW',    false, 1024, 1200, 250, true,  'seeded disabled'),
    ('email-compose',       'Email compose',         'deepseek',     'gemini_flash', true,  'LOW',    false, 1024, 300,  350, true,  ''),
    ('email-classify',      'Email classify',        'deepseek',     'gemini_flash', true,  'LOW',    false, 256,  800,  80,  true,  ''),
    ('email-respond',       'Email respond',         'deepseek',     'gemini_flash', true,  'LOW',    false, 1024, 900,  300, true,  ''),
    ('calendar-prep',       'Calendar meeting prep', 'deepseek',     'gemini_flash', true,  'LOW',    false, 1024, 700,  400, true,  ''),
    ('calendar-time',       'Calendar time finding', 'gemini_flash', 'deepseek',     true,  'LOW',    false, 512,  600,  150, true,  ''),
    ('task-prioritize',     'Task prioritize',       'deepseek',     'gemini_flash', true,  'LOW',    false, 1024, 600,  300, true,  ''),
    ('task-breakdown',      'Task breakdown',        'deepseek',     'gemini_flash', true,  'LOW',    false, 1024, 300,  400, true,  ''),
    ('analytics-summary',   'Analytics summary',     'gemini_flash', 'deepseek',     true,  'MEDIUM', false, 1024, 2000, 400, true,  ''),
    ('analytics-anomaly',   'Analytics anomaly',     'deepseek',     'gemini_flash', true,  'LOW',    false, 1024, 1500, 300, true,  '');

-- +goose Down
DELETE FROM ai_model_routes;
DELETE FROM ai_models;
