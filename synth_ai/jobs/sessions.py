"""The jobs server's browser sessions, in the job database (`ui_sessions`), so a session ended
at one replica is ended at all of them (see `synth_ai.ui.sessions`)."""

from __future__ import annotations

import time

from synth_ai.storage import Database, Step, ensure_schema
from synth_ai.ui.sessions import StoredSession

STEPS: list[Step] = [
    "CREATE TABLE IF NOT EXISTS ui_sessions (sid TEXT PRIMARY KEY, tenant TEXT, "
    "key_id TEXT NOT NULL, expires_at {REAL} NOT NULL)",
]


class DatabaseSessions:
    """Sessions any replica on `database` opened; rows past their expiry are dropped as new
    sessions open."""

    def __init__(self, database: Database) -> None:
        self.database = database
        ensure_schema(database, "ui_sessions", STEPS)

    def open(self, session: StoredSession) -> None:
        with self.database.reading() as connection:
            connection.execute("DELETE FROM ui_sessions WHERE expires_at < ?", [time.time()])
            connection.execute(
                "INSERT INTO ui_sessions (sid, tenant, key_id, expires_at) VALUES (?, ?, ?, ?)",
                [session.sid, session.tenant, session.key_id, session.expires_at],
            )

    def find(self, sid: str) -> StoredSession | None:
        with self.database.reading() as connection:
            rows = connection.query(
                "SELECT tenant, key_id, expires_at FROM ui_sessions "
                "WHERE sid = ? AND expires_at >= ?",
                [sid, time.time()],
            )
        if not rows:
            return None
        row = rows[0]
        return StoredSession(sid, row["tenant"], row["key_id"], float(row["expires_at"]))

    def end(self, sid: str) -> None:
        with self.database.reading() as connection:
            connection.execute("DELETE FROM ui_sessions WHERE sid = ?", [sid])
