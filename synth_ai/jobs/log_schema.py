"""The job event log's tables, as versioned steps (`synth_ai.storage.ensure_schema`): a database
made by an earlier version gains what it lacks, in order, once."""

from __future__ import annotations

from synth_ai.storage import Connection, Database, Step

FIRST_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at {REAL} NOT NULL,
    updated_at {REAL} NOT NULL,
    last_seq {INT} NOT NULL DEFAULT 0,
    config TEXT,
    metadata TEXT
);
CREATE TABLE IF NOT EXISTS job_events (
    job_id TEXT NOT NULL,
    seq {INT} NOT NULL,
    type TEXT NOT NULL,
    sse_name TEXT NOT NULL,
    level TEXT,
    message TEXT,
    data TEXT,
    ts {REAL} NOT NULL,
    PRIMARY KEY (job_id, seq)
);
CREATE TABLE IF NOT EXISTS server_secrets (
    name TEXT PRIMARY KEY,
    value {BLOB} NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_jobs_created ON jobs(created_at);
CREATE INDEX IF NOT EXISTS idx_job_events_name ON job_events(job_id, sse_name, seq)
"""


def _add_tenant(connection: Connection, database: Database) -> None:
    """Files made before tenants existed lack the column; files made since already have it."""
    try:
        with connection.savepoint():
            connection.query("SELECT tenant FROM jobs WHERE 1 = 0")
    except database.errors:
        connection.execute("ALTER TABLE jobs ADD COLUMN tenant TEXT")


STEPS: list[Step] = [
    FIRST_SCHEMA,
    _add_tenant,
    "ALTER TABLE jobs ADD COLUMN lease_owner TEXT;"
    "ALTER TABLE jobs ADD COLUMN lease_expires_at {REAL}",
    # single-use tokens (the dashboard's login links) spent on any replica, kept until expiry
    "CREATE TABLE IF NOT EXISTS spent_tokens (token_id TEXT PRIMARY KEY, "
    "expires_at {REAL} NOT NULL)",
    # a producer's idempotency keys, once per job: a retried post is answered its first seqs
    "CREATE TABLE IF NOT EXISTS job_posts (job_id TEXT NOT NULL, post_key TEXT NOT NULL, "
    "first_seq {INT} NOT NULL, count {INT} NOT NULL, digest TEXT NOT NULL, "
    "PRIMARY KEY (job_id, post_key))",
]
