"""A rollout's deadline: `asyncio.timeout`, armed once the rollout has lasted a moment."""

from __future__ import annotations

import asyncio
from types import TracebackType

from .arming import Arming


class Deadline:
    """`asyncio.timeout(seconds)` whose timer is set only if the block is still running when
    `arming` fires; the time it expires at is the same either way."""

    __slots__ = ("_arming", "_at", "_timeout", "seconds")

    def __init__(self, seconds: float, arming: Arming) -> None:
        self.seconds = seconds
        self._arming = arming
        self._timeout = asyncio.timeout(None)

    async def __aenter__(self) -> None:
        await self._timeout.__aenter__()
        self._at = asyncio.get_running_loop().time() + self.seconds
        self._arming.arm_soon(self, self.seconds)

    def arm(self) -> None:
        self._timeout.reschedule(self._at)

    def expired(self) -> bool:
        return self._timeout.expired()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._timeout.when() is None:
            self._arming.forget(self)
        await self._timeout.__aexit__(exc_type, exc, tb)
