"""Files a job produces (eval results, checkpoints), kept by the server under its data directory.

A request names an artifact only by a plain file name; where it lives is the server's choice
(`<root>/<job_id>/<name>`), so no request can reach any other path. Size and sha256 are taken
while the upload streams in and kept in the jobs database (`ArtifactIndex`), which is what a
listing reads.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import IO, Any

from synth_ai.storage import Database

from .artifact_index import ArtifactIndex, ArtifactLimits, Found

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def valid_name(name: str) -> bool:
    """A plain file name: no separators, no `..`, no control characters, at most 128 chars."""
    return bool(NAME.fullmatch(name)) and ".." not in name


class ArtifactStore:
    def __init__(self, root: str | Path, database: Database, limits: ArtifactLimits) -> None:
        self.root = Path(root)
        self.index = ArtifactIndex(database, limits, self._on_disk)
        self.before_commit: Callable[[], Awaitable[None]] | None = None
        """Test-only delay point: awaited after an upload streamed in, before its commit."""

    def path(self, job_id: str, name: str) -> Path:
        if not JOB_ID.fullmatch(job_id) or not valid_name(name):
            raise ValueError(f"not a plain artifact name: {name[:80]!r}")
        return self.root / job_id / name

    def url(self, job_id: str, name: str) -> str:
        return f"/api/jobs/{job_id}/artifacts/{name}"

    async def save(
        self,
        job_id: str,
        name: str,
        tenant: str | None,
        chunks: AsyncIterator[bytes],
        *,
        bounded: bool = True,
    ) -> dict[str, Any]:
        """Stream an upload into place within the bounds (`ArtifactRefused` past them): written
        beside the target, hashed as it comes (off the loop), then renamed over it as its row
        is committed, so a reader never sees half a file and a refused upload leaves nothing.
        `bounded` False: a file the server itself wrote elsewhere (a local eval's results),
        counted against the bounds but never refused."""
        path = self.path(job_id, name)
        budget = (
            await asyncio.to_thread(self.index.budget, job_id, name, tenant) if bounded else None
        )
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        partial = path.with_name(f".{name}.{uuid.uuid4().hex}.part")
        digest = hashlib.sha256()
        size = 0
        out = await asyncio.to_thread(open, partial, "wb")
        try:
            try:
                async for chunk in chunks:
                    size += len(chunk)
                    if budget is not None and size > budget.room:
                        raise budget.refusal
                    await asyncio.to_thread(_write, out, digest, chunk)
            finally:
                await asyncio.to_thread(out.close)
            stored = {"name": name, "url": self.url(job_id, name), "size": size}
            stored["sha256"] = digest.hexdigest()
            if self.before_commit is not None:
                await self.before_commit()
            await asyncio.to_thread(
                self.index.commit,
                job_id,
                name,
                tenant,
                stored,
                lambda: os.replace(partial, path),
                bounded=bounded,
            )
        except BaseException:
            await asyncio.to_thread(partial.unlink, True)
            raise
        return stored

    def commit_written(
        self,
        job_id: str,
        name: str,
        tenant: str | None,
        size: int,
        sha256: str,
        place: Callable[[], None],
    ) -> dict[str, Any]:
        """Index a file the server itself writes (an eval's results, a run's state), `place`d
        in the same transaction: its bytes count against the bounds, but it is never refused.
        Blocking: run off the loop."""
        stored = {"name": name, "url": self.url(job_id, name), "size": size, "sha256": sha256}
        self.index.commit(job_id, name, tenant, stored, place, bounded=False)
        return stored

    async def record(self, job_id: str, name: str, tenant: str | None) -> dict[str, Any]:
        """Index a file the server wrote in its place, hashing it once now."""
        size, sha256 = await asyncio.to_thread(_hash_file, self.path(job_id, name))
        return await asyncio.to_thread(
            self.commit_written, job_id, name, tenant, size, sha256, lambda: None
        )

    def _on_disk(self) -> Found:
        """Every artifact file under the root, hashed (for indexing the files of an older
        version, once)."""
        if not self.root.is_dir():
            return
        for folder in sorted(self.root.iterdir()):
            if not (folder.is_dir() and JOB_ID.fullmatch(folder.name)):
                continue
            for path in sorted(folder.iterdir()):
                if path.is_file() and valid_name(path.name):
                    yield (folder.name, path.name, *_hash_file(path))

    def list(self, job_id: str) -> list[dict[str, Any]]:
        """Name, size, sha256 and url of each artifact of a job, as stored at upload (blocking:
        run off the loop; reads no file)."""
        return [{**row, "url": self.url(job_id, row["name"])} for row in self.index.list(job_id)]


def _write(out: IO[bytes], digest: Any, chunk: bytes) -> None:
    digest.update(chunk)
    out.write(chunk)


def _hash_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()
