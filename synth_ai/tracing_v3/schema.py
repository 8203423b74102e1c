"""The trace store's tables, named as the existing ecosystem reads them."""

from __future__ import annotations

SCHEMA = """
CREATE TABLE IF NOT EXISTS session_traces (
    session_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    num_timesteps INTEGER NOT NULL DEFAULT 0,
    num_events INTEGER NOT NULL DEFAULT 0,
    num_messages INTEGER NOT NULL DEFAULT 0,
    metadata TEXT
);
CREATE TABLE IF NOT EXISTS session_timesteps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    step_index INTEGER NOT NULL,
    turn_number INTEGER,
    started_at TEXT,
    completed_at TEXT,
    num_events INTEGER,
    num_messages INTEGER,
    step_metadata TEXT
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    timestep_id INTEGER,
    event_type TEXT NOT NULL,
    system_instance_id TEXT,
    event_time REAL,
    message_time INTEGER,
    model_name TEXT,
    provider TEXT,
    input_tokens INTEGER,
    output_tokens INTEGER,
    total_tokens INTEGER,
    cost_usd REAL,
    latency_ms REAL,
    span_id TEXT,
    trace_id TEXT,
    reward REAL,
    terminated INTEGER,
    truncated INTEGER,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    timestep_id INTEGER,
    message_type TEXT NOT NULL,
    content TEXT,
    event_time REAL,
    message_time INTEGER,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outcome_rewards (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    total_reward REAL NOT NULL,
    achievements_count INTEGER,
    total_steps INTEGER,
    reward_metadata TEXT,
    created_at TEXT
);
CREATE TABLE IF NOT EXISTS event_rewards (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id INTEGER,
    session_id TEXT NOT NULL,
    turn_number INTEGER,
    reward_value REAL NOT NULL,
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
