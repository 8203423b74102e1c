"""Failed key checks, counted per client address, so keys cannot be guessed fast.

After `MAX_FAILED_CHECKS` failures within `FAILURE_WINDOW_S` an address is refused (429, with
`Retry-After`) for the rest of that window, before any key it sends is tested, so a refusal
says nothing about the key. A success is not counted and resets nothing (a tenant's own key
must not buy another tenant's guesses). At most `MAX_TRACKED_ADDRESSES` addresses are
remembered, least recently failed out first, so the record cannot grow without bound.

The address is the one uvicorn gives (`scope["client"]`), which it takes from
`X-Forwarded-For` only for proxies the operator names with `--forwarded-allow-ips`.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.types import Scope

from .errors import TaskAppError

MAX_FAILED_CHECKS = 30
FAILURE_WINDOW_S = 60.0
MAX_TRACKED_ADDRESSES = 10_000


class FailedAttempts:
    """Per address: when its current window started and how many checks failed in it."""

    def __init__(
        self,
        limit: int = MAX_FAILED_CHECKS,
        window_s: float = FAILURE_WINDOW_S,
        max_addresses: int = MAX_TRACKED_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_addresses = max_addresses
        self.clock = clock
        self.windows: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def retry_after(self, address: str) -> int | None:
        """Whole seconds until `address` may be checked again; None when it may be now."""
        window = self.windows.get(address)
        if window is None:
            return None
        started, failures = window
        left = started + self.window_s - self.clock()
        if left <= 0:
            del self.windows[address]
            return None
        return max(1, math.ceil(left)) if failures >= self.limit else None

    def fail(self, address: str) -> None:
        now = self.clock()
        started, failures = self.windows.pop(address, (now, 0))
        if now - started >= self.window_s:
            started, failures = now, 0
        self.windows[address] = (started, failures + 1)
        if len(self.windows) > self.max_addresses:
            self.windows.popitem(last=False)


_UNBOUND = FailedAttempts()
"""The record of checks made outside any Starlette app (there is always one in this project)."""


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else ""


def attempts_for(scope: Scope) -> FailedAttempts:
    """The failed checks of the app serving `scope`, kept in its state, so its auth layer,
    sign-in and routes that check keys themselves count together (tests may install one)."""
    state = getattr(scope.get("app"), "state", None)
    if state is None:
        return _UNBOUND
    attempts = getattr(state, "failed_attempts", None)
    if not isinstance(attempts, FailedAttempts):
        attempts = state.failed_attempts = FailedAttempts()
    return attempts


def blocked(scope: Scope) -> TaskAppError | None:
    """The 429 for a client address that failed too often; None when it may try."""
    seconds = attempts_for(scope).retry_after(client_address(scope))
    if seconds is None:
        return None
    return TaskAppError(
        429,
        "too_many_failed_attempts",
        f"Too many failed key checks from this address; try again in {seconds} s.",
        headers={"Retry-After": str(seconds)},
    )


def record_failure(scope: Scope) -> None:
    attempts_for(scope).fail(client_address(scope))
