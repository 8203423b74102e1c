"""The jobs server's browser side: the dashboard at `/ui/`, signing in, and the job list's
summary (progress and the latest value of each metric, which the plain list does not carry).

Sign-in tokens and sessions are signed with a secret kept in the job database, login tokens
are spent in its `spent_tokens` table and sessions recorded in its `ui_sessions` table, so any
replica on that database accepts a session or a sign-in link another one issued, a link works
once across all of them, and a session ended at one is ended at all.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from synth_ai.ui.pages import page_routes
from synth_ai.ui.signin import SignIn
from synth_ai.ui.signin_routes import SignInRoutes

from .models import JobEvent
from .params import int_param
from .service import JobsService
from .sessions import DatabaseSessions
from .tenants import identify, keys_of, principal_of

RECENT_EVENTS = 300
"""How far back (in seqs) the list looks for a job's latest status and metric values."""
MAX_METRICS = 6


def summarise(job: dict[str, Any], recent: list[JobEvent]) -> dict[str, Any]:
    """A job snapshot plus what its recent events say: step, total, epoch, phase and the
    latest value of each metric (the most recently reported names first)."""
    progress: dict[str, Any] = {"step": None, "total": None, "epoch": None, "phase": None}
    metrics: dict[str, dict[str, Any]] = {}
    for event in recent:
        data = event.data
        total = data.get("total")
        if isinstance(total, int) and not isinstance(total, bool):
            progress["total"] = total
        if event.sse_name == "status":
            progress.update({k: data[k] for k in ("step", "epoch", "phase") if k in data})
        elif isinstance(data.get("name"), str):
            metrics.pop(data["name"], None)  # re-inserted last: the newest names come first
            metrics[data["name"]] = {
                "value": data.get("value"),
                "step": data.get("step"),
                "split": data.get("split"),
            }
    latest = dict(reversed(list(metrics.items())[-MAX_METRICS:]))
    public = {key: value for key, value in job.items() if key not in ("config", "tenant")}
    return {**public, **progress, "metrics": latest}


class Dashboard:
    def __init__(self, service: JobsService) -> None:
        self.service = service
        self.signin = SignIn(
            service.log.secret("ui_signin"),
            service.log.spend_once,
            DatabaseSessions(service.log.database),
            keys_of,
            name="jobs",
        )
        self.accounts = SignInRoutes(self.signin, identify, principal_of)

    @property
    def public(self) -> list[BaseRoute]:
        return [*page_routes({"": "jobs.html", "job.html": "job.html"}), *self.accounts.public]

    @property
    def protected(self) -> list[BaseRoute]:
        return [Route("/ui/api/jobs", self.jobs, methods=["GET"]), *self.accounts.protected]

    async def jobs(self, request: Request) -> Response:
        """The caller's jobs, newest first, each summarised from its recent events."""
        limit = min(int_param(request, "limit", 50, minimum=1), 200)
        jobs = await self.service.list(limit, principal_of(request.scope).tenant)
        recent = await asyncio.gather(
            *(
                self.service.events(
                    job["job_id"],
                    max(0, job["last_seq"] - RECENT_EVENTS),
                    RECENT_EVENTS,
                    ["status", "metric"],
                )
                for job in jobs
            )
        )
        return JSONResponse({"jobs": [summarise(j, r) for j, r in zip(jobs, recent, strict=True)]})
