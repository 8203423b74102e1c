"""Running an evaluation: check the app, then roll out every seed with bounded concurrency.

The client sends a rollout again only when nothing ran (a connect error before sending, 429,
503), never after a read timeout, a dropped connection or a 504, when the app may have started
it; a rollout whose answer reports an infrastructure error (`metrics.details.infra_error`)
is asked again with a new correlation id. Infrastructure failures are reported apart from task
failures; a low reward is data, never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from synth_ai.client import TaskAppClient, TaskAppClientError
from synth_ai.jobs import JobEmitter, JobState
from synth_ai.jobs.log import JobFinished
from synth_ai.offline_policy.tally import count_unanswered
from synth_ai.task.outcome import NO_POLICY, result_from_answer, result_from_error

from .models import EvalConfig, EvalSummary, SeedResult
from .verdict import verdict

ResultHook = Callable[[SeedResult], Any]
RESULT_FIELDS = {
    "seed",
    "reward",
    "status",
    "success",
    "latency_s",
    "trace_correlation_id",
    "error_kind",
}


class EvalCheckFailed(Exception):
    """The task app failed a check before any rollout ran; the message names the check."""


async def preflight(
    client: TaskAppClient, config: EvalConfig, started: list[str] | None = None
) -> None:
    """The app answers `/health` and `/task_info` with this key, and a policy is given when
    the app says it calls one (the first seed's task names an inference model or endpoint).
    Each check's name is appended to `started` as it starts, so a caller that stops waiting
    can say which one was pending."""
    started = [] if started is None else started
    for name, call in (("/health", client.health), ("/task_info", client.task_info)):
        started.append(name)
        try:
            await call()
        except TaskAppClientError as exc:
            raise EvalCheckFailed(f"{name} check failed: {exc}") from None
    seed = config.seeds[0]
    started.append(f"/task_info?seed={seed}")
    try:
        answer = await client.request("GET", "/task_info", params={"seed": seed})
    except TaskAppClientError as exc:
        raise EvalCheckFailed(f"/task_info?seed={seed} check failed: {exc}") from None
    first = answer[0] if isinstance(answer, list) and answer else answer
    inference = first.get("inference") if isinstance(first, dict) else None  # older apps: none
    calls_a_policy = isinstance(inference, dict) and any(inference.values())
    if calls_a_policy and not (config.inference_url or config.policy_config.get("inference_url")):
        raise EvalCheckFailed(NO_POLICY)


def rollout_request(config: EvalConfig, seed: int, correlation_id: str) -> dict[str, Any]:
    policy = dict(config.policy_config)
    if config.model:
        policy["model"] = config.model
    if config.inference_url:
        policy["inference_url"] = config.inference_url
    if config.prompt_template is not None:
        policy["prompt_template"] = config.prompt_template
    env: dict[str, Any] = {"seed": seed, "config": {"seed": seed}}
    if config.split:
        env["config"]["split"] = config.split
    return {
        "run_id": correlation_id,
        "trace_correlation_id": correlation_id,
        "env": env,
        "policy": {"policy_name": config.model or "policy", "config": policy},
        "mode": "eval",
        "record": {"return_trace": True, "trace_format": "structured"},
    }


async def evaluate_seed(client: TaskAppClient, config: EvalConfig, seed: int) -> SeedResult:
    """One seed. An answer that reports an infrastructure error is asked again (up to
    `max_retries`; the client itself retries what failed in transit); a task error never is."""
    for attempt in range(config.max_retries + 1):
        cid = f"eval-{seed}-{uuid.uuid4().hex[:12]}"
        started = time.perf_counter()
        try:
            response = await client.rollout(rollout_request(config, seed, cid))
        except TaskAppClientError as exc:
            return result_from_error(seed, cid, time.perf_counter() - started, exc)
        latency = time.perf_counter() - started
        result = result_from_answer(seed, cid, latency, response, config.success_threshold)
        if result.status != "infra_error" or attempt == config.max_retries:
            return result
        await client.pause(min(0.25 * 2**attempt, 5.0))
    raise AssertionError("unreachable")


class EvalRun:
    """One evaluation: emits its progress as job events and appends results as they finish."""

    def __init__(
        self,
        config: EvalConfig,
        *,
        emitter: JobEmitter | None = None,
        cancel: asyncio.Event | None = None,
        results_path: Path | None = None,
        results_url: str | None = None,
        on_result: ResultHook | None = None,
        results_kept: Callable[[], Awaitable[Any]] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        checked: bool = False,
    ) -> None:
        self.config = config
        self.emitter = emitter
        self.results_path = results_path
        self.results_url = results_url or (str(results_path.resolve()) if results_path else None)
        self.cancel = cancel or asyncio.Event()
        self.on_result = on_result
        self.results_kept = results_kept
        """Awaited once the results file is complete, before it is announced."""
        self.transport = transport
        self.results: list[SeedResult] = []
        self.checked = checked
        """The preflight passed already (`check`, or a jobs server before it made the job)."""

    async def _status(self, state: JobState, message: str, **fields: Any) -> None:
        """A status is stored before the run goes on; a job already ended (canceled through
        the jobs API) keeps its final state."""
        if self.emitter is None:
            return
        data = {"state": state.value, "message": message, **fields}
        with contextlib.suppress(JobFinished):
            await self.emitter.emit_committed("job.status", message=message, data=data)

    def _emit(self, event_type: str, **fields: Any) -> None:
        if self.emitter is None:
            return
        if event_type == "log":
            self.emitter.emit_log(**fields)
        else:
            self.emitter.emit(event_type, data=fields)

    def _client(self) -> TaskAppClient:
        config = self.config
        return TaskAppClient(
            config.task_app_url,
            config.api_key,
            timeout=config.timeout_s,
            max_retries=config.max_retries,
            transport=self.transport,
        )

    async def check(self, started: list[str] | None = None) -> None:
        """The preflight alone, so a caller can run it before it makes a job for the run:
        `EvalCheckFailed` says which check failed (`started`: see `preflight`). `run` then
        skips it."""
        async with self._client() as client:
            await preflight(client, self.config, started)
        self.checked = True

    async def run(self) -> EvalSummary:
        config = self.config
        prompt = config.prompt_template is not None
        try:
            async with self._client() as client:
                if not self.checked:
                    await preflight(client, config)
                await self._status(
                    JobState.RUNNING, "checks passed", step=0, total=len(config.seeds)
                )
                if prompt:
                    self._emit("prompt.learning.started", template=config.prompt_template)
                await self._roll_out_all(client)
        except EvalCheckFailed as exc:
            await self._status(JobState.FAILED, str(exc), preflight=True)
            raise
        except Exception as exc:
            await self._status(JobState.FAILED, f"{type(exc).__name__}: {exc}")
            raise
        summary = EvalSummary.of(
            self.results,
            len(config.seeds),
            include_infra=config.include_infra_errors_in_mean,
            exclude_errors=config.exclude_errors_from_mean,
            canceled=self.cancel.is_set(),
        )
        policy_url = config.inference_url or config.policy_config.get("inference_url")
        cids = [r.trace_correlation_id for r in self.results]
        count = await count_unanswered(policy_url if isinstance(policy_url, str) else None, cids)
        if count is not None:
            summary = summary.model_copy(
                update={"policy_calls": count.calls, "unanswered": count.unanswered}
            )
        await self._finish(summary)
        return summary

    async def _roll_out_all(self, client: TaskAppClient) -> None:
        seeds = iter(self.config.seeds)
        out = self.results_path
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("")

        async def worker() -> None:
            for seed in seeds:  # shared iterator: each seed is taken once
                if self.cancel.is_set():
                    return
                result = await evaluate_seed(client, self.config, seed)
                self.results.append(result)
                if out is not None:
                    line = result.model_dump_json() + "\n"
                    await asyncio.to_thread(_append, out, line)
                self._report(result)

        workers = [asyncio.create_task(worker()) for _ in range(self.config.concurrency)]
        stopper: asyncio.Future[Any] = asyncio.ensure_future(self.cancel.wait())
        try:
            done: asyncio.Future[Any] = asyncio.gather(*workers)
            await asyncio.wait({done, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not done.done():  # canceled: stop sending and abandon what is in flight
                for task in workers:
                    task.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
            else:
                done.result()
        finally:
            stopper.cancel()

    def _report(self, result: SeedResult) -> None:
        done = len(self.results)
        scored = [r.reward for r in self.results if r.status == "ok" and r.reward is not None]
        ok = [r for r in self.results if r.status == "ok"]
        # one never-coalesced event per seed (a metric per seed would be rate-limited live)
        if self.emitter is not None:
            self.emitter.emit(
                "eval.result",
                message=f"seed {result.seed}: reward {result.reward} ({result.status})",
                data={"step": done, **result.model_dump(include=RESULT_FIELDS)},
            )
            total = len(self.config.seeds)
            self.emitter.emit_status(
                JobState.RUNNING, f"{done} of {total} seeds", step=done, total=total
            )
        if scored:
            self._emit(
                "eval.metric",
                name="mean_reward",
                value=sum(scored) / len(scored),
                step=done,
                split="eval",
            )
        if ok:
            self._emit(
                "eval.metric",
                name="success_rate",
                value=sum(r.success for r in ok) / len(ok),
                step=done,
                split="eval",
            )
        if result.status != "ok":
            self._emit(
                "log",
                message=f"seed {result.seed}: {result.status} "
                f"({result.error_kind}: {result.error})",
                level="warning",
            )
        if self.on_result is not None:
            self.on_result(result)

    async def _finish(self, summary: EvalSummary) -> None:
        if self.results_kept is not None:
            await self.results_kept()
        if self.results_url:
            self._emit("artifact.results", kind="results", url=self.results_url)
        if self.config.prompt_template is not None:
            self._emit(
                "prompt.learning.final.results",
                score=summary.mean_reward,
                success_rate=summary.success_rate,
                template=self.config.prompt_template,
            )
        config = self.config
        data = summary.model_dump()
        progress = {"step": summary.completed, "total": summary.total}
        judged = verdict(
            summary, fail_under=config.fail_under, max_error_rate=config.max_error_rate
        )
        if summary.canceled:
            await self._status(JobState.CANCELED, "canceled", summary=data, **progress)
        elif summary.completed and all(r.status != "ok" for r in self.results):
            await self._status(JobState.FAILED, "every rollout failed", summary=data, **progress)
        elif judged.code:
            await self._status(JobState.FAILED, judged.reason, summary=data, **progress)
        else:
            await self._status(
                JobState.SUCCEEDED, f"mean reward {summary.mean_reward}", summary=data, **progress
            )


def _append(path: Path, line: str) -> None:
    with open(path, "a", encoding="utf-8") as out:
        out.write(line)


async def run_eval(config: EvalConfig, **options: Any) -> tuple[list[SeedResult], EvalSummary]:
    run = EvalRun(config, **options)
    summary = await run.run()
    return run.results, summary


def read_results(path: str | Path) -> list[SeedResult]:
    return [
        SeedResult.model_validate(json.loads(line))
        for line in Path(path).read_text().splitlines()
        if line
    ]
