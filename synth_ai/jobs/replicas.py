"""Live events across replicas: PostgreSQL's LISTEN/NOTIFY as hints, the table as the truth.

Each commit announces `job_id:last_seq` on the log's channel. A listener thread hands those
hints to the loop, where a job whose bus is behind reads its new rows by seq and publishes them
in order. A lost or merged notification therefore loses nothing: the next hint, or the resync
after a reconnection, reads everything past the bus's last seq.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

from .log import CHANNEL, JobEventLog

Hint = Callable[[str, int], None]


class ReplicaFeed:
    """Runs the listener thread for one process; `on_hint(job_id, seq)` and `on_resync()`
    are called on the loop."""

    def __init__(
        self,
        log: JobEventLog,
        loop: asyncio.AbstractEventLoop,
        on_hint: Hint,
        on_resync: Callable[[], None],
    ) -> None:
        self.log = log
        self._loop = loop
        self._on_hint = on_hint
        self._on_resync = on_resync
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="job-log-listener", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        for payload in self.log.database.notifications(CHANNEL, self._stop):
            if payload is None:
                self._call(self._on_resync)
                continue
            job_id, _, seq = payload.rpartition(":")
            if job_id and seq.isdigit():
                self._call(self._on_hint, job_id, int(seq))

    def _call(self, callback: Callable[..., None], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: the process is stopping
            self._loop.call_soon_threadsafe(callback, *args)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
