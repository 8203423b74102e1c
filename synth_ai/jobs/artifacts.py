"""Files a job produces (eval results, checkpoints), kept by the server under its data directory.

A request names an artifact only by a plain file name; where it lives is the server's choice
(`<root>/<job_id>/<name>`), so no request can reach any other path.
"""

from __future__ import annotations

import hashlib
import re
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
