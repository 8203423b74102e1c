"""Cancelling a rollout whose client leaves: one listener per rollout that lasts.

The rollout runs in the request's own task. `ClientWatch` is used like `asyncio.timeout`
around it: once armed (`arming.py`: when the rollout has lasted a moment), a listener task
waits for the client's `http.disconnect` and cancels the rollout's task; on exit the
cancellation it caused is withdrawn and raised as `ClientLeft`, while any other cancellation
passes through untouched. (Deadlines are `asyncio.timeout` itself.)
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from starlette.types import Receive

from .arming import Arming


class ClientLeft(Exception):
    """The client disconnected, and its rollout was cancelled for it."""


class ClientWatch:
    """Cancel the current task when the request's client disconnects."""

    __slots__ = ("_arming", "_cancelling", "_left", "_listener", "_receive", "_task")

    def __init__(self, receive: Receive, arming: Arming) -> None:
        self._receive = receive
        self._arming = arming
        self._left = False
        self._listener: asyncio.Task[None] | None = None

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._cancelling = task.cancelling()
        self._arming.arm_soon(self)

    def arm(self) -> None:
        self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self._left = True
        self._task.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._listener is None:
            self._arming.forget(self)
            return
        self._listener.cancel()
        # the cancellation this watch made is withdrawn whatever ended the block
        withdrawn = self._left and self._task.uncancel() <= self._cancelling
        if withdrawn and exc_type is asyncio.CancelledError:
            raise ClientLeft from None
