"""`SyncTaskAppClient`: the task-app client for code that does not use asyncio."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, Self, TypeVar, cast

from synth_ai.task.contracts import RolloutRequest, RolloutResponse, TaskInfo

from .task_app import TaskAppClient

T = TypeVar("T")


class SyncTaskAppClient:
    """The same client for synchronous code. Its calls run on a private event loop in a thread
    of its own, so it works from plain scripts and from inside a running loop (a notebook, an
    async framework's sync callback) alike; it only blocks the calling thread."""

    def __init__(self, base_url: str, api_key: str | None = None, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="sync-task-app-client", daemon=True
        )
        self._thread.start()
        self._client: TaskAppClient = self._run(self._make(base_url, api_key, options))

    @staticmethod
    async def _make(base_url: str, api_key: str | None, options: dict[str, Any]) -> TaskAppClient:
        return TaskAppClient(base_url, api_key, **options)

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._client.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def health(self) -> dict[str, Any]:
        return self._run(self._client.health())

    def info(self) -> dict[str, Any]:
        return self._run(self._client.info())

    def task_info(
        self, seeds: int | Sequence[int] | None = None
    ) -> dict[str, Any] | TaskInfo | list[TaskInfo]:
        answer = self._run(self._client.task_info(seeds))
        return cast("dict[str, Any] | TaskInfo | list[TaskInfo]", answer)

    def rollout(self, request: RolloutRequest | dict[str, Any]) -> RolloutResponse:
        return self._run(self._client.rollout(request))
