"""The trace store's tables, named as the existing ecosystem reads them, on either engine.

`{ID}`, `{INT}` and `{REAL}` are filled per engine (BIGINT and DOUBLE PRECISION on PostgreSQL,
the very DDL of the unversioned SQLite files on SQLite). Step 1 only creates what is missing,
so a trace file made before schemas were versioned opens as version 1 unchanged.
"""

from __future__ import annotations

from synth_ai.storage import Step

COMPONENT = "traces"

CREATE_TABLES = """
CREATE TABLE IF NOT EXISTS session_traces (
    session_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    num_timesteps {INT} NOT NULL DEFAULT 0,
    num_events {INT} NOT NULL DEFAULT 0,
    num_messages {INT} NOT NULL DEFAULT 0,
    metadata TEXT
);
CREATE TABLE IF NOT EXISTS session_timesteps (
    id {ID},
    session_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    step_index {INT} NOT NULL,
    turn_number {INT},
    started_at TEXT,
    completed_at TEXT,
    num_events {INT},
    num_messages {INT},
    step_metadata TEXT
);
CREATE TABLE IF NOT EXISTS events (
    id {ID},
    session_id TEXT NOT NULL,
    timestep_id {INT},
    event_type TEXT NOT NULL,
    system_instance_id TEXT,
    event_time {REAL},
    message_time {INT},
    model_name TEXT,
    provider TEXT,
    input_tokens {INT},
    output_tokens {INT},
    total_tokens {INT},
    cost_usd {REAL},
    latency_ms {REAL},
    span_id TEXT,
    trace_id TEXT,
    reward {REAL},
    terminated {INT},
    truncated {INT},
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id {ID},
    session_id TEXT NOT NULL,
    timestep_id {INT},
    message_type TEXT NOT NULL,
    content TEXT,
    event_time {REAL},
    message_time {INT},
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outcome_rewards (
    id {ID},
    session_id TEXT NOT NULL,
    total_reward {REAL} NOT NULL,
    achievements_count {INT},
    total_steps {INT},
    reward_metadata TEXT,
    created_at TEXT
);
CREATE TABLE IF NOT EXISTS event_rewards (
    id {ID},
    event_id {INT},
    session_id TEXT NOT NULL,
    turn_number {INT},
    reward_value {REAL} NOT NULL,
    reward_type TEXT,
    key TEXT,
    annotation TEXT,
    source TEXT,
    created_at TEXT
);
CREATE INDEX IF NOT EXISTS idx_session_traces_created ON session_traces(created_at);
CREATE INDEX IF NOT EXISTS idx_timesteps_session ON session_timesteps(session_id, step_index);
CREATE INDEX IF NOT EXISTS idx_events_session ON events(session_id);
CREATE INDEX IF NOT EXISTS idx_events_type ON events(event_type);
CREATE INDEX IF NOT EXISTS idx_events_model ON events(model_name);
CREATE INDEX IF NOT EXISTS idx_messages_session ON messages(session_id);
CREATE INDEX IF NOT EXISTS idx_outcome_rewards_session ON outcome_rewards(session_id);
CREATE INDEX IF NOT EXISTS idx_outcome_rewards_reward ON outcome_rewards(total_reward);
CREATE INDEX IF NOT EXISTS idx_event_rewards_session ON event_rewards(session_id);
"""

STEPS: list[Step] = [CREATE_TABLES]
