"""Checking any running task app, in any language, against the contract (DESIGN.md 3).

`check_conformance(url, ...)` answers a `ConformanceReport`: one `CheckResult` per rule (`pass`,
`fail`, or `skipped` with the reason it could not run) with the latency of each call, or, when
nothing can be checked (nothing answers, not a task app, a refused key), `stopped` saying why in
one line. `synth-ai check URL` prints it. The probes themselves are in `probes.py`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import httpx

from .older_generation import is_older_generation
from .probes import PROBES, CannotCheck, CheckFailed, CheckSkipped, Probe, describe, json_object

Status = Literal["pass", "fail", "skipped"]


@dataclass
class CheckResult:
    name: str
    status: Status
    required: bool = True
    detail: str = ""
    latency_ms: float | None = None

    @property
    def passed(self) -> bool:
        """Only a check that ran and held passes; a skipped one does not."""
        return self.status == "pass"


@dataclass
class ConformanceReport:
    url: str
    checks: list[CheckResult] = field(default_factory=list)
    stopped: str | None = None
    """Why no (further) check could run, in one line; None when every check ran."""
    policy_calls: int | None = None
    unanswered: int | None = None
    """The stand-in policy's calls in the rollout checks and how many it could not answer;
    None when the policy is not a stand-in."""

    @property
    def passed(self) -> bool:
        """Every required check held or was skipped, and the run was not stopped."""
        return self.stopped is None and not self.failures

    @property
    def failures(self) -> list[str]:
        return [c.name for c in self.checks if c.required and c.status == "fail"]

    @property
    def skipped(self) -> list[str]:
        return [c.name for c in self.checks if c.status == "skipped"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "passed": self.passed,
            "stopped": self.stopped,
            "policy_calls": self.policy_calls,
            "unanswered": self.unanswered,
            "checks": [{**asdict(c), "passed": c.passed} for c in self.checks],
        }


async def run_check(
    report: ConformanceReport,
    name: str,
    check: Callable[[], Awaitable[str]],
    *,
    required: bool = True,
) -> None:
    """Run one check into the report; a refused connection stops the whole run."""
    started = time.perf_counter()
    status: Status = "pass"
    try:
        detail = await check()
    except CheckFailed as exc:
        status, detail, required = "fail", str(exc), required and exc.required
    except CheckSkipped as exc:
        status, detail = "skipped", str(exc)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise CannotCheck(f"{report.url} stopped answering ({type(exc).__name__})") from None
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        status, detail = "fail", f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    latency = round((time.perf_counter() - started) * 1000, 1)
    detail = " ".join(detail.split())[:300]
    report.checks.append(CheckResult(name, status, required, detail, latency))


async def reach(probe: Probe) -> None:
    """Go on only when something answers, it looks like a task app (`/health` or `/info`
    answers a JSON object with the key) and the key is accepted; otherwise `CannotCheck`."""
    try:
        health = await probe.http.get("/health", headers=probe.auth)
        probe.refused(health, "GET /health")
        if json_object(health) is not None:
            return
        info = await probe.http.get("/info", headers=probe.auth)
    except httpx.TransportError as exc:
        raise CannotCheck(f"nothing answers at {probe.url} ({type(exc).__name__})") from None
    probe.refused(info, "GET /info")
    if json_object(info) is not None:
        return
    answers = f"GET /health answered {describe(health)}, GET /info answered {describe(info)}"
    raise CannotCheck(f"{probe.url} is not a task app, or not a working one: {answers}")


async def check_conformance(
    url: str,
    api_key: str,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    inference_url: str | None = None,
    model: str | None = None,
    timeout_s: float = 60.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ConformanceReport:
    """Run every contract check against the app at `url`; never raises for a broken app."""
    report = ConformanceReport(url)
    async with httpx.AsyncClient(
        base_url=url.rstrip("/"), timeout=timeout_s, transport=transport
    ) as http:
        probe = Probe(http, url, api_key, seeds, inference_url, model)
        try:
            await reach(probe)
            probe.older = await is_older_generation(http, probe.auth)
            for name, check in PROBES:
                await run_check(report, name, functools.partial(check, probe))
        except CannotCheck as exc:
            report.stopped = str(exc)
    if probe.unanswered is not None:
        report.policy_calls = probe.unanswered.calls
        report.unanswered = probe.unanswered.unanswered
    return report
