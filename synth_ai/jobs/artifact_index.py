"""What the jobs database knows of each artifact: size and sha256, taken once at upload, and the
bounds on how many and how much a job and its owner may keep.

Listing reads these rows, never the files, so it costs the same for a 200 MiB file as for an
empty one, and every replica on the database lists the same. The rows live in their own schema
component (`job_artifacts`) beside the event log's tables.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from synth_ai.storage import Connection, Database, Step, ensure_schema

TABLE = """
CREATE TABLE IF NOT EXISTS job_artifacts (
    job_id TEXT NOT NULL,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    size {INT} NOT NULL,
    sha256 TEXT NOT NULL,
    stored_at {REAL} NOT NULL,
    PRIMARY KEY (job_id, name)
);
CREATE INDEX IF NOT EXISTS idx_job_artifacts_owner ON job_artifacts(owner)
"""

Found = Iterable[tuple[str, str, int, str]]
"""Files already on disk: (job id, name, size, sha256)."""


def _adopting(existing: Callable[[], Found]) -> Step:
    def adopt(connection: Connection, database: Database) -> None:
        """Files stored before their sizes and hashes were kept are indexed (hashed) once,
        with the table, each owned by its job's tenant."""
        now = time.time()
        for job_id, name, size, sha256 in existing():
            connection.execute(
                "INSERT INTO job_artifacts (job_id, name, owner, size, sha256, stored_at) "
                "SELECT ?, ?, COALESCE(MAX(tenant), ''), ?, ?, ? FROM jobs WHERE job_id = ? "
                "ON CONFLICT (job_id, name) DO NOTHING",
                [job_id, name, size, sha256, now, job_id],
            )

    return adopt


def owner_key(tenant: str | None) -> str:
    """The owner column: the tenant, or '' for the operator's own jobs (no tenant is '')."""
    return tenant or ""


@dataclass(frozen=True, slots=True)
class ArtifactLimits:
    count: int
    """Distinct artifacts per job (`SYNTH_JOBS_MAX_ARTIFACTS`)."""
    job_bytes: int
    """All artifacts of one job (`SYNTH_JOBS_MAX_JOB_ARTIFACT_BYTES`)."""
    owner_bytes: int
    """All artifacts of one tenant's jobs (`SYNTH_JOBS_MAX_TENANT_ARTIFACT_BYTES`)."""


class ArtifactRefused(Exception):
    """An upload past one of the bounds; nothing of it was kept."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Budget:
    """How many bytes an upload may still bring, and what to answer past them."""

    room: int
    refusal: ArtifactRefused


class ArtifactIndex:
    def __init__(
        self, database: Database, limits: ArtifactLimits, existing: Callable[[], Found]
    ) -> None:
        """`existing`: the files already on disk, for a database made before this index."""
        self.database = database
        self.limits = limits
        ensure_schema(database, "job_artifacts", [TABLE, _adopting(existing)])

    def budget(self, job_id: str, name: str, tenant: str | None) -> Budget:
        """The room for a new `name` (replacing one frees its bytes and takes no new place);
        raises `ArtifactRefused` when there is none. Blocking: run off the loop."""
        with self.database.reading() as connection:
            return self._budget(connection, job_id, name, owner_key(tenant))

    def commit(
        self,
        job_id: str,
        name: str,
        tenant: str | None,
        stored: dict[str, Any],
        place: Callable[[], None],
        *,
        bounded: bool = True,
    ) -> None:
        """Check the bounds again with the upload's real size, under the owner's lock (so
        concurrent uploads, here or on a replica, cannot pass them together), then `place` the
        file and record it in the same transaction. Blocking: run off the loop."""
        owner = owner_key(tenant)
        connection = self.database.connect()
        try:
            with connection.transaction():
                connection.lock(f"job_artifacts:{owner}")
                if bounded:
                    budget = self._budget(connection, job_id, name, owner)
                    if stored["size"] > budget.room:
                        raise budget.refusal
                place()
                connection.execute(
                    "INSERT INTO job_artifacts (job_id, name, owner, size, sha256, stored_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, name) DO UPDATE SET "
                    "size = excluded.size, sha256 = excluded.sha256, "
                    "stored_at = excluded.stored_at",
                    [job_id, name, owner, stored["size"], stored["sha256"], time.time()],
                )
        finally:
            connection.close()

    def list(self, job_id: str) -> list[dict[str, Any]]:
        """Name, size and sha256 of each of a job's artifacts, by name (no file is read)."""
        with self.database.reading() as connection:
            return connection.query(
                "SELECT name, size, sha256 FROM job_artifacts WHERE job_id = ? ORDER BY name",
                [job_id],
            )

    def _budget(self, connection: Connection, job_id: str, name: str, owner: str) -> Budget:
        limits = self.limits
        (job,) = connection.query(
            "SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS used FROM job_artifacts "
            "WHERE job_id = ? AND name <> ?",
            [job_id, name],
        )
        if job["n"] >= limits.count:
            raise ArtifactRefused(
                409,
                "too_many_artifacts",
                f"The job has {job['n']} artifacts, as many as it may keep "
                f"(SYNTH_JOBS_MAX_ARTIFACTS={limits.count}); replace one by name instead.",
            )
        (theirs,) = connection.query(
            "SELECT COALESCE(SUM(size), 0) AS used FROM job_artifacts "
            "WHERE owner = ? AND NOT (job_id = ? AND name = ?)",
            [owner, job_id, name],
        )
        job_room = limits.job_bytes - int(job["used"])
        owner_room = limits.owner_bytes - int(theirs["used"])
        if job_room <= owner_room:
            return Budget(
                max(0, job_room),
                ArtifactRefused(
                    413,
                    "job_artifacts_full",
                    f"The job's artifacts may total {limits.job_bytes} bytes "
                    f"(SYNTH_JOBS_MAX_JOB_ARTIFACT_BYTES); {max(0, job_room)} are left.",
                ),
            )
        return Budget(
            max(0, owner_room),
            ArtifactRefused(
                413,
                "tenant_artifacts_full",
                f"This tenant's artifacts may total {limits.owner_bytes} bytes "
                f"(SYNTH_JOBS_MAX_TENANT_ARTIFACT_BYTES); {max(0, owner_room)} are left.",
            ),
        )
