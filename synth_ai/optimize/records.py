"""What the interceptor keeps per rollout: the candidate it serves and the calls it forwarded.

Bounded everywhere: a fixed number of registered cids, and per cid a fixed number of records
and of bytes recorded (later calls are still forwarded and their tokens counted, only not
recorded).
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_CID = re.compile(r"[A-Za-z0-9._~-]{1,128}")


def new_cid(prefix: str = "cand") -> str:
    """An unguessable cid: the cid is what lets a call through the interceptor."""
    return f"{prefix}-{secrets.token_urlsafe(16)}"


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens the upstream reported, and the calls they came from."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    calls: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
            self.calls + other.calls,
        )

    @classmethod
    def of(cls, answer: Any) -> Usage:
        """The `usage` of a chat completion; counts that are not non-negative integers are 0."""
        usage = answer.get("usage") if isinstance(answer, dict) else None
        usage = usage if isinstance(usage, dict) else {}

        def count(name: str) -> int:
            value = usage.get(name)
            return value if type(value) is int and value >= 0 else 0

        prompt, completion = count("prompt_tokens"), count("completion_tokens")
        return cls(prompt, completion, count("total_tokens") or prompt + completion, 1)


@dataclass(frozen=True, slots=True)
class Exchange:
    """One call the app made through the interceptor.

    `messages` are those forwarded (the candidate rendered, then the rest of the conversation);
    for a call refused before forwarding, the app's own. `output` is the answer's text content.
    `error` says why a call was refused or failed (`None` when the upstream answered a chat
    completion). Never holds a key.

    Past a cid's record or byte cap, calls are summed into one last record instead: `omitted`
    says how many, `usage` holds their tokens (so summing `usage` over the records counts every
    call), and it carries no messages, output or error.
    """

    messages: list[dict[str, Any]]
    wildcards: dict[str, str]
    status: int
    output: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage = Usage()
    error: str | None = None
    latency_s: float = 0.0
    omitted: int = 0


@dataclass(frozen=True, slots=True)
class Registration:
    """What a cid was registered with: the candidate, and whether the interceptor renders it
    into the app's messages (`rewrite`) or the app already did (`prompt_template` delivery)."""

    candidate: dict[str, str]
    rewrite: bool = True


@dataclass(slots=True)
class _Slot:
    registration: Registration
    exchanges: list[Exchange] = field(default_factory=list)
    size: int = 0
    omitted: int = 0
    omitted_usage: Usage = Usage()

    def records(self) -> list[Exchange]:
        if not self.omitted:
            return list(self.exchanges)
        summary = Exchange([], {}, 200, usage=self.omitted_usage, omitted=self.omitted)
        return [*self.exchanges, summary]


class CidTable:
    """Registered cids and their records, shared by the server (on the optimizer's loop, or a
    thread of its own) and the optimizer."""

    def __init__(
        self, max_cids: int, max_records_per_cid: int, max_record_bytes_per_cid: int
    ) -> None:
        if min(max_cids, max_records_per_cid, max_record_bytes_per_cid) < 1:
            raise ValueError(
                "max_cids, max_records_per_cid and max_record_bytes_per_cid must be at least 1"
            )
        self.max_cids = max_cids
        self.max_records = max_records_per_cid
        self.max_bytes = max_record_bytes_per_cid
        self._slots: dict[str, _Slot] = {}
        self._usage = Usage()
        self._lock = threading.Lock()

    def register(self, cid: str, candidate: Mapping[str, str], *, rewrite: bool = True) -> None:
        if not isinstance(cid, str) or not _CID.fullmatch(cid):
            raise ValueError("a cid is 1-128 characters of A-Z a-z 0-9 . _ ~ -")
        with self._lock:
            if cid in self._slots:
                raise ValueError(f"cid {cid!r} is already registered")
            if len(self._slots) >= self.max_cids:
                raise ValueError(
                    f"{self.max_cids} cids are registered already; release finished rollouts"
                )
            self._slots[cid] = _Slot(Registration(dict(candidate), rewrite))

    def lookup(self, cid: str) -> Registration | None:
        with self._lock:
            slot = self._slots.get(cid)
            return slot.registration if slot is not None else None

    def record(self, cid: str, registration: Registration, exchange: Exchange, size: int) -> None:
        """Keep `exchange` (`size`: the bytes of the call and its answer as sent) under `cid`;
        once the cid's records or bytes are full, it and every later call are summed into the
        last record. Nothing is kept when the registration the call was served under is gone
        (released, even if the cid was registered again)."""
        with self._lock:
            self._usage += exchange.usage
            slot = self._slots.get(cid)
            if slot is None or slot.registration is not registration:
                return
            fits = len(slot.exchanges) < self.max_records and slot.size + size <= self.max_bytes
            if fits and not slot.omitted:  # the records stay the cid's first calls, in order
                slot.exchanges.append(exchange)
                slot.size += size
            else:
                slot.omitted += 1
                slot.omitted_usage += exchange.usage

    def records(self, cid: str) -> list[Exchange]:
        with self._lock:
            slot = self._slots.get(cid)
            return slot.records() if slot is not None else []

    def release(self, cid: str) -> list[Exchange]:
        with self._lock:
            slot = self._slots.pop(cid, None)
            return slot.records() if slot is not None else []

    @property
    def usage(self) -> Usage:
        with self._lock:
            return self._usage
