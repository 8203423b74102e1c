"""Files a job produces (eval results, checkpoints), kept by the server under its data directory.

A request names an artifact only by a plain file name; where it lives is the server's choice
(`<root>/<job_id>/<name>`), so no request can reach any other path.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def valid_name(name: str) -> bool:
    """A plain file name: no separators, no `..`, no control characters, at most 128 chars."""
    return bool(NAME.fullmatch(name)) and ".." not in name


class ArtifactStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, job_id: str, name: str) -> Path:
        if not JOB_ID.fullmatch(job_id) or not valid_name(name):
            raise ValueError(f"not a plain artifact name: {name[:80]!r}")
        return self.root / job_id / name

    def url(self, job_id: str, name: str) -> str:
        return f"/api/jobs/{job_id}/artifacts/{name}"

    async def save(self, job_id: str, name: str, chunks: AsyncIterator[bytes]) -> dict[str, Any]:
        """Stream an upload into place: written beside the target, then renamed over it, so a
        reader never sees half a file and a failed upload leaves nothing."""
        path = self.path(job_id, name)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        partial = path.with_name(f".{name}.{uuid.uuid4().hex}.part")
        digest = hashlib.sha256()
        size = 0
        out = await asyncio.to_thread(open, partial, "wb")
        try:
            try:
                async for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    await asyncio.to_thread(out.write, chunk)
            finally:
                await asyncio.to_thread(out.close)
            await asyncio.to_thread(os.replace, partial, path)
        except BaseException:
            await asyncio.to_thread(partial.unlink, True)
            raise
        return {
            "name": name,
            "url": self.url(job_id, name),
            "size": size,
            "sha256": digest.hexdigest(),
        }

    def list(self, job_id: str) -> list[dict[str, Any]]:
        """Name, size, sha256 and url of each artifact of a job (blocking: run off the loop)."""
        if not JOB_ID.fullmatch(job_id):
            return []
        folder = self.root / job_id
        if not folder.is_dir():
            return []
        entries = []
        for path in sorted(folder.iterdir()):
            if path.is_file() and valid_name(path.name):
                digest = hashlib.sha256()
                with open(path, "rb") as handle:
                    for chunk in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(chunk)
                entries.append(
                    {
                        "name": path.name,
                        "size": path.stat().st_size,
                        "sha256": digest.hexdigest(),
                        "url": self.url(job_id, path.name),
                    }
                )
        return entries
