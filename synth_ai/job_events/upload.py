"""Files a producer hands to a job as artifacts: read from a local path, uploaded, announced.

An artifact event that points at a file only the producer's machine has (a bare path, a
`file://` URL) would show a link nobody can open, so `emit_artifact` uploads such a file
instead (`RemoteEmitter` with a `PUT` to the jobs API, `JobEmitter` into its service's store),
and refuses one it cannot read rather than announce it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx

CHUNK = 256 * 1024


class ArtifactUploadError(Exception):
    """The file could not be uploaded (unreadable, or refused by the server); the message
    says which. Nothing was announced."""


def local_file(url: str) -> Path | None:
    """The local file a URL names (a `file://` URL or a bare path), None for a remote URL."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ArtifactUploadError(f"{url[:200]} names another machine's file: refused")
        return Path(unquote(parts.path))
    return None if parts.scheme else Path(url)


def readable(path: Path) -> Path:
    if not path.is_file():
        raise ArtifactUploadError(f"{path} is not a file this process can read: not uploaded")
    return path


def file_chunks_sync(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK):
            yield chunk


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    """A file's bytes, read off the event loop."""
    with await asyncio.to_thread(open, path, "rb") as source:
        while chunk := await asyncio.to_thread(source.read, CHUNK):
            yield chunk


def upload_params(kind: str, step: int | None) -> dict[str, Any]:
    return {"kind": kind} | ({} if step is None else {"step": step})


def put_file(
    http: httpx.Client, job_id: str, path: Path, *, kind: str, step: int | None, name: str
) -> dict[str, Any]:
    """`PUT /api/jobs/{id}/artifacts/{name}` with the file's bytes, streamed; the server stores
    it, then announces it as an `artifact.<kind>` event. Answers what the server stored."""
    response = http.put(
        f"/api/jobs/{quote(job_id, safe='')}/artifacts/{quote(name, safe='')}",
        params=upload_params(kind, step),
        content=file_chunks_sync(readable(path)),
    )
    if response.status_code != 201:
        raise ArtifactUploadError(f"uploading {path.name} answered {refusal(response)}")
    stored: dict[str, Any] = response.json()
    return stored


def refusal(response: httpx.Response) -> str:
    try:
        error = response.json()["detail"]["error"]
        return f"{response.status_code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return str(response.status_code)


async def upload_file(
    http: httpx.AsyncClient,
    job_id: str,
    path: Path,
    *,
    kind: str = "file",
    step: int | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """`put_file` from an async client, the file read off the event loop."""
    response = await http.put(
        f"/api/jobs/{quote(job_id, safe='')}/artifacts/{quote(name or path.name, safe='')}",
        params=upload_params(kind, step),
        content=file_chunks(readable(path)),
    )
    if response.status_code != 201:
        raise ArtifactUploadError(f"uploading {path.name} answered {refusal(response)}")
    stored: dict[str, Any] = response.json()
    return stored
