"""`Emitter`: what a producer (a training or eval loop) reports progress through, and
`JobEmitter`, the in-process one (`RemoteEmitter`, in `.remote`, is the one over HTTP).

Both take what training code has at hand: event data is made JSON when emitted (`plain_data`),
so a datetime or a numpy number is stored as an ISO string or a Python number rather than
failing later, and anything else is a `TypeError` raised to the emitting caller alone.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic_core import to_jsonable_python

from .artifact_index import ArtifactRefused
from .models import EventIn, JobEvent, JobState
from .upload import ArtifactUploadError, file_chunks, local_file, readable

if TYPE_CHECKING:
    from .service import JobsService


def plain_data(data: dict[str, Any] | None) -> dict[str, Any]:
    """Event data in JSON's own types: datetimes, dates, UUIDs and Decimals as strings, sets
    and tuples as lists, arrays and array scalars (numpy, torch, `array`) through their
    `tolist()`. Raises `TypeError` for anything else."""
    try:
        plain: dict[str, Any] = to_jsonable_python(data or {}, fallback=_tolist)
    except (ValueError, TypeError, RecursionError) as exc:  # depth, unknown types
        raise TypeError(f"event data is not JSON: {exc}") from None
    return plain


def _tolist(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    if not callable(tolist):
        raise TypeError(f"a {type(value).__name__} has no JSON form")
    return tolist()


class Emitter(ABC):
    """What a training or eval loop reports through: `JobEmitter` (in-process) and
    `RemoteEmitter` (over HTTP) both are one. Each says how to `emit` one event; the helpers
    shape the design's payloads (DESIGN.md 5) the same way for both."""

    @abstractmethod
    def emit(
        self,
        type: str,
        *,
        message: str | None = None,
        level: str = "info",
        data: dict[str, Any] | None = None,
    ) -> None: ...

    def emit_status(self, state: JobState | str, message: str | None = None, **fields: Any) -> None:
        data = {"state": JobState(state).value, "message": message, **fields}
        self.emit("job.status", message=message, data=data)

    def emit_metric(
        self,
        name: str,
        value: float,
        *,
        step: int | None = None,
        split: str | None = None,
        type: str = "job.metric",
        **fields: Any,
    ) -> None:
        self.emit(type, data={"name": name, "value": value, "step": step, "split": split, **fields})

    def emit_log(self, message: str, level: str = "info", type: str = "system.log") -> None:
        self.emit(type, message=message, level=level, data={"level": level, "message": message})

    def emit_artifact(self, kind: str, url: str, *, step: int | None = None, **fields: Any) -> None:
        """Announce an artifact at `url`. A local file (a path, a `file://` URL) is uploaded
        to the job instead (`upload_local`), so its link opens wherever the job is watched;
        one that cannot be read is refused (`ArtifactUploadError`), never announced."""
        local = local_file(url)
        if local is None:
            self.emit(f"artifact.{kind}", data={"kind": kind, "url": url, "step": step, **fields})
        else:
            self.upload_local(readable(local), kind=kind, step=step)

    def upload_local(self, path: Path, *, kind: str, step: int | None) -> None:
        """Upload a local file as the job's artifact, announced once stored (waits for it)."""
        raise ArtifactUploadError(f"{type(self).__name__} cannot upload {path.name}")


class JobEmitter(Emitter):
    """Emits a job's events through its service's log.

    `emit` and the `emit_*` helpers queue the event and return at once, from any thread; they
    report no seq, because nothing is acknowledged before its commit. `emit_committed` waits
    for the commit (on the service's loop) and answers the stored event with its seq.
    """

    def __init__(self, service: JobsService, job_id: str) -> None:
        self.service = service
        self.job_id = job_id
        self._uploads: set[asyncio.Task[None]] = set()
        try:  # the service's loop, when made on it: uploads from other threads run there
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None

    def emit(
        self,
        type: str,
        *,
        message: str | None = None,
        level: str = "info",
        data: dict[str, Any] | None = None,
    ) -> None:
        event = EventIn(type=type, level=level, message=message, data=plain_data(data))
        self.service.emit_nowait(self.job_id, [event])

    async def emit_committed(
        self,
        type: str,
        *,
        message: str | None = None,
        level: str = "info",
        data: dict[str, Any] | None = None,
    ) -> JobEvent:
        event = EventIn(type=type, level=level, message=message, data=plain_data(data))
        (stored,) = await self.service.emit(self.job_id, [event])
        return stored

    async def upload_artifact(
        self,
        path: str | Path,
        *,
        kind: str = "file",
        step: int | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        """Store a local file as one of the job's artifacts (as a `PUT` to the jobs API does)
        and announce it as `artifact.<kind>`; answers what was stored."""
        path = readable(Path(path))
        bus = await self.service.bus(self.job_id)
        if bus is None:
            raise ArtifactUploadError(f"job {self.job_id} is not in the log")
        chunks = file_chunks(path)
        try:
            stored = await self.service.artifacts.save(
                self.job_id, name or path.name, bus.tenant, chunks
            )
        except ArtifactRefused as exc:
            raise ArtifactUploadError(f"{path.name}: {exc.message}") from None
        await self.emit_committed(f"artifact.{kind}", data={"kind": kind, "step": step, **stored})
        return stored

    def upload_local(self, path: Path, *, kind: str, step: int | None) -> None:
        """From a producer's thread: upload on the service's loop and wait, so the artifact
        is stored in its place among the events; on that loop itself (which must not wait):
        as a task, saying in the job's log if it failed."""
        loop = self._loop
        if loop is None:
            raise ArtifactUploadError(
                f"{path.name}: a JobEmitter made off the service's loop cannot upload; make it "
                "on that loop (or await upload_artifact there)"
            )
        upload = self.upload_artifact(path, kind=kind, step=step)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not loop:
            asyncio.run_coroutine_threadsafe(upload, loop).result()
            return
        task = loop.create_task(self._upload_or_say(upload, path))
        self._uploads.add(task)
        task.add_done_callback(self._uploads.discard)

    async def _upload_or_say(self, upload: Awaitable[Any], path: Path) -> None:
        try:
            await upload
        except ArtifactUploadError as exc:
            self.emit_log(f"artifact {path.name} not uploaded: {exc}", level="warning")
