"""Where signed-in browsers are recorded, so a session can be ended before its cookie expires.

A session cookie is signed, but a signature cannot be taken back: sign-out and key rotation
work because every use of a cookie also looks its session up here. Each record keeps the
fingerprint of the key that opened it (`SignIn.key_id`, an HMAC: never the key), so a session
lives only while that key is still configured.

The jobs server keeps its sessions in the job database (`synth_ai.jobs.sessions`), so every
replica agrees; the trace viewer, one process whose signing secret lives in memory anyway,
keeps them in memory (`MemorySessions`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol

MAX_MEMORY_SESSIONS = 1000
"""Sessions a single-process server remembers; past it the oldest is ended."""


@dataclass(frozen=True, slots=True)
class StoredSession:
    """A session as recorded: who (`tenant` None: the operator), with which key, until when."""

    sid: str
    tenant: str | None
    key_id: str
    expires_at: float


class SessionStore(Protocol):
    """Blocking (a database may answer): call off the event loop."""

    def open(self, session: StoredSession) -> None: ...

    def find(self, sid: str) -> StoredSession | None:
        """The session, unless it was ended or has expired."""
        ...

    def end(self, sid: str) -> None: ...


class MemorySessions:
    """Sessions of a single-process server, at most `limit` of them (the oldest ends first)."""

    def __init__(self, limit: int = MAX_MEMORY_SESSIONS) -> None:
        self._sessions: dict[str, StoredSession] = {}
        self._limit = limit
        self._lock = threading.Lock()

    def open(self, session: StoredSession) -> None:
        now = time.time()
        with self._lock:
            if len(self._sessions) >= self._limit:
                self._sessions = {
                    sid: kept for sid, kept in self._sessions.items() if kept.expires_at >= now
                }
            while len(self._sessions) >= self._limit:
                del self._sessions[next(iter(self._sessions))]
            self._sessions[session.sid] = session

    def find(self, sid: str) -> StoredSession | None:
        with self._lock:
            session = self._sessions.get(sid)
        return session if session is not None and session.expires_at >= time.time() else None

    def end(self, sid: str) -> None:
        with self._lock:
            self._sessions.pop(sid, None)

    def __len__(self) -> int:
        return len(self._sessions)
