"""One optimization: preflight, gepa's search in a worker thread, then the headline (the seed
prompt and the best candidate scored on `test_pool`, which the search never saw).

The search stops at the next batch boundary when the budget is spent, a token or spend limit
is passed, or the run is canceled; whatever it found so far is kept and reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import gepa
from gepa.core.callbacks import GEPACallback

from synth_ai.client import TaskAppClient, TaskAppClientError
from synth_ai.jobs import JobEmitter, JobState
from synth_ai.jobs.log import JobFinished
from synth_ai.task.inference import SharedHttpClient

from .adapter import Budget, RolloutAdapter, Stop
from .config import PromptLearningSection
from .events import Recorder
from .interceptor import Interceptor
from .reflection import ReflectionModel
from .rollouts import Candidate, RolloutRecord, Rollouts, candidate_id
from .spend import TokenMeter
from .state import BEST_NAME, CANDIDATES_NAME, GEPA_DIR, STATE_NAME, Keep, write_json

logger = logging.getLogger("synth_ai.optimize")
ROLLOUT_TIMEOUT_S = 300.0


class PreflightFailed(Exception):
    """The app or the policy failed before the search began; the message says which."""


class GepaLog:
    """gepa's logger protocol, onto ours at debug level (gepa logs every step)."""

    def log(self, message: str) -> None:
        logger.debug("gepa: %s", message)


def mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


class OptimizeRun:
    def __init__(
        self,
        config: PromptLearningSection,
        *,
        interceptor: Interceptor,
        seed_candidate: Candidate,
        to_sections: Callable[[Candidate], list[dict[str, str]]],
        folder: Path,
        emitter: JobEmitter | None = None,
        cancel: asyncio.Event | None = None,
        api_key: str | None = None,
        artifact_url: Callable[[str], str] | None = None,
        resumed: dict[str, Any] | None = None,
        app_reference: str | None = None,
        keep: Keep | None = None,
    ) -> None:
        """`keep`: records each artifact as it is written (a jobs server's index)."""
        self.config = config
        self.gepa_config = config.gepa
        self.interceptor = interceptor
        self.seed_candidate = seed_candidate
        self.to_sections = to_sections
        self.folder = folder
        self.emitter = emitter
        self.cancel = cancel or asyncio.Event()
        self.api_key = api_key
        self.app_reference = app_reference
        self.keep = keep
        self.artifact_url = artifact_url or (lambda name: str((folder / name).resolve()))
        token = self.gepa_config.token
        self.meter = TokenMeter(
            prices={
                model: (price.input_per_million, price.output_per_million)
                for model, price in token.prices.items()
            },
            max_tokens=token.max_limit,
            max_spend_usd=token.max_spend_usd,
        )
        resumed = resumed or {}
        self.budget = Budget(self.gepa_config.rollout.budget, int(resumed.get("rollouts", 0)))
        self.meter.carry(resumed.get("tokens") or {})
        self.recorder = Recorder(
            emitter,
            to_sections,
            resumed.get("candidates"),
            spent=lambda: self.budget.spent,
            validation_seeds=self.gepa_config.evaluation.validation_seeds,
        )
        self.seed_validation: list[dict[str, Any]] = list(resumed.get("seed_validation") or [])
        self.test_rollouts = 0
        self.reflection: ReflectionModel | None = None
        self.started = time.monotonic()
        self.spent_before = self.budget.spent
        """Rollouts spent before this process took over (a resumed run's): not in its rate."""

    def _emit(self, type: str, message: str | None = None, **data: Any) -> None:
        if self.emitter is not None:
            self.emitter.emit(type, message=message, data=data)

    async def _status(self, state: JobState, message: str, **fields: Any) -> None:
        if self.emitter is None:
            return
        data = {"state": state.value, "message": message, **fields}
        with contextlib.suppress(JobFinished):
            await self.emitter.emit_committed("job.status", message=message, data=data)

    def progress(self) -> None:
        spent, total = self.budget.spent, self.budget.limit
        done = spent - self.spent_before
        elapsed = time.monotonic() - self.started
        tokens = self.meter.snapshot()
        self._emit(
            "prompt.learning.progress",
            f"rollouts {spent}/{total}",
            rollouts_total=total,
            rollouts_completed=spent,
            percent_rollouts=round(100.0 * spent / total, 2),
            elapsed_seconds=round(elapsed, 3),
            eta_seconds=round(elapsed / done * (total - spent), 3) if done > 0 else None,
            tokens_used=tokens["total"],
            token_budget=tokens["max_limit"],
            spend_usd=tokens["spend_usd"],
            max_spend_usd=tokens["max_spend_usd"],
            best_score=(self.recorder.best or {}).get("validation_score"),
            tokens=tokens,
        )

    def state(self, finished: bool = False) -> dict[str, Any]:
        return {
            "config": self.config.model_dump(mode="json", exclude={"task_app_api_key"}),
            "app_reference": self.app_reference,
            "rollouts": self.budget.spent,
            "test_rollouts": self.test_rollouts,
            "tokens": self.meter.snapshot(),
            "seed_validation": self.seed_validation,
            "candidates": self.recorder.candidates,
            "stop_reason": self.budget.reason,
            "finished": finished,
        }

    def _warn(self, message: str) -> None:
        logger.warning("%s", message)
        if self.emitter is not None:
            self.emitter.emit_log(message, level="warning", type="prompt.learning.log")

    def _write(self, name: str, document: Any) -> None:
        write_json(self.folder / name, document, self.keep)

    def _save(self) -> None:
        self._write(STATE_NAME, self.state())

    def _after_batch(self, candidate: Candidate, records: list[RolloutRecord]) -> None:
        """In the optimizer's thread, after each batch: keep the seed prompt's validation
        results (a resumption reuses them), save the state, report progress."""
        validation = set(self.gepa_config.evaluation.validation_seeds)
        if candidate == self.seed_candidate and {r.seed for r in records} == validation:
            self.seed_validation = [
                {"seed": r.seed, "score": r.score, "status": r.status} for r in records
            ]
        self._save()
        self.progress()

    def _preset(self) -> dict[tuple[str, int], RolloutRecord]:
        ident = candidate_id(self.seed_candidate)
        return {
            (ident, int(item["seed"])): RolloutRecord(
                seed=int(item["seed"]),
                candidate_id=ident,
                cid="(before resume)",
                score=float(item["score"]),
                status=str(item.get("status", "ok")),
            )
            for item in self.seed_validation
        }

    async def _preflight(self, client: TaskAppClient, rollouts: Rollouts) -> None:
        """The app answers `/health` and `/task_info` with the key; then, unless a resumed run
        passed it already, one rollout of the seed prompt goes through the interceptor (a
        prompt the app does not send stops the run here)."""
        for name, call in (("/health", client.health), ("/task_info", client.task_info)):
            try:
                await call()
            except TaskAppClientError as exc:
                raise PreflightFailed(f"{name} check failed: {exc}") from None
        if self.seed_validation:
            return
        seed = self.gepa_config.evaluation.seeds[0]
        self.budget.take(1)
        await asyncio.to_thread(self._save)
        (record,) = await rollouts.batch(self.seed_candidate, [seed])
        failure = record.failure()
        if failure:
            raise PreflightFailed(f"preflight rollout on seed {seed} failed: {failure}")

    def _search(self, adapter: RolloutAdapter, reflection: ReflectionModel) -> None:
        evaluation, rollout = self.gepa_config.evaluation, self.gepa_config.rollout
        gepa.optimize(
            seed_candidate=self.seed_candidate,
            trainset=list(evaluation.seeds),
            valset=list(evaluation.validation_seeds),
            adapter=adapter,
            reflection_lm=reflection,
            reflection_minibatch_size=min(rollout.minibatch_size, len(evaluation.seeds)),
            reflection_prompt_template=self.gepa_config.mutation.prompt,
            stop_callbacks=[adapter.should_stop],
            run_dir=str(self.folder / GEPA_DIR),
            callbacks=[cast(GEPACallback, self.recorder)],
            logger=GepaLog(),
            raise_on_exception=False,
            seed=self.gepa_config.rng_seed,
        )

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        watcher = asyncio.create_task(self._watch_cancel())
        http = SharedHttpClient()
        try:
            async with TaskAppClient(
                self.config.task_app_url, self.api_key, timeout=ROLLOUT_TIMEOUT_S
            ) as client:
                rollouts = Rollouts(
                    self.config,
                    client,
                    self.interceptor,
                    self.meter,
                    to_sections=self.to_sections,
                    max_concurrent=self.gepa_config.rollout.max_concurrent,
                    job_id=getattr(self.emitter, "job_id", None),
                )
                await self._preflight(client, rollouts)
                await self._status(JobState.RUNNING, "preflight passed")
                self._emit(
                    "prompt.learning.gepa.start",
                    "GEPA search started",
                    budget=self.budget.limit,
                    rollouts_spent=self.budget.spent,
                    seeds=len(self.gepa_config.evaluation.seeds),
                    validation_seeds=len(self.gepa_config.evaluation.validation_seeds),
                    test_pool=len(self.gepa_config.evaluation.test_pool),
                    policy_model=self.config.policy.model,
                    mutation_model=self.gepa_config.mutation.llm_model,
                    seed_prompt={"sections": self.to_sections(self.seed_candidate)},
                    resumed=bool(self.seed_validation),
                    restored_candidates=self.recorder.restored(),
                )
                adapter = RolloutAdapter(
                    rollouts,
                    self.budget,
                    loop,
                    limit_reached=self.meter.exceeded,
                    on_batch=self._after_batch,
                    on_spend=self._save,
                    preset=self._preset(),
                )
                reflection = ReflectionModel(
                    self.gepa_config.mutation.llm_inference_url,
                    self.gepa_config.mutation.llm_model,
                    loop=loop,
                    http=http,
                    meter=self.meter,
                    on_failure=self._warn,
                )
                self.reflection = reflection
                with contextlib.suppress(Stop):  # stopped before the seed prompt was scored
                    await asyncio.to_thread(self._search, adapter, reflection)
                summary = await self._finish(rollouts)
        except PreflightFailed as exc:
            await self._status(JobState.FAILED, str(exc), preflight=True)
            raise
        except Exception as exc:
            await self._status(JobState.FAILED, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            watcher.cancel()
            await http.aclose()
        return summary

    async def _watch_cancel(self) -> None:
        await self.cancel.wait()
        self.budget.stop("canceled")

    async def _test_score(self, rollouts: Rollouts, candidate: Candidate) -> float | None:
        pool = self.gepa_config.evaluation.test_pool
        records = await rollouts.batch(candidate, pool)
        self.test_rollouts += len(records)
        return mean([r.score for r in records])

    async def _finish(self, rollouts: Rollouts) -> dict[str, Any]:
        canceled = self.cancel.is_set()
        seed_entry = next((c for c in self.recorder.candidates if c.get("baseline")), None)
        best = self.recorder.best
        seed_test = best_test = None
        if not canceled and best is not None:
            seed_test = await self._test_score(rollouts, self.seed_candidate)
            best_test = (
                seed_test
                if best["id"] == candidate_id(self.seed_candidate)
                else await self._test_score(rollouts, best["candidate"])
            )
        best_candidate = best["candidate"] if best else self.seed_candidate
        summary = {
            "seed_score": {
                "validation": seed_entry["validation_score"] if seed_entry else None,
                "test": seed_test,
            },
            "best_score": {
                "validation": best["validation_score"] if best else None,
                "test": best_test,
            },
            "best_candidate_id": candidate_id(best_candidate),
            "best_prompt": {"sections": self.to_sections(best_candidate)},
            "seed_prompt": {"sections": self.to_sections(self.seed_candidate)},
            "rollouts": {
                "search": self.budget.spent,
                "test": self.test_rollouts,
                "total": self.budget.spent + self.test_rollouts,
                "budget": self.budget.limit,
            },
            "tokens": self.meter.snapshot(),
            "stop_reason": self.budget.reason,
            "reflection_failures": self.reflection.failures if self.reflection else 0,
            "canceled": canceled,
            "candidates": {
                "attempted": len(self.recorder.candidates),
                "accepted": len(self.recorder.accepted),
            },
        }
        await self._store(summary)
        return summary

    async def _store(self, summary: dict[str, Any]) -> None:
        best_doc = {
            "candidate_id": summary["best_candidate_id"],
            "best_prompt": summary["best_prompt"],
            "best_score": summary["best_score"],
            "seed_score": summary["seed_score"],
        }
        await asyncio.to_thread(self._write, BEST_NAME, best_doc)
        await asyncio.to_thread(
            self._write, CANDIDATES_NAME, {"candidates": self.recorder.candidates}
        )
        await asyncio.to_thread(
            self._write, STATE_NAME, self.state(finished=not summary["canceled"])
        )
        names = [BEST_NAME, CANDIDATES_NAME, STATE_NAME]
        artifacts = {name: self.artifact_url(name) for name in names}
        summary["artifacts"] = artifacts
        self.recorder.final_events(summary)
        if summary["canceled"]:
            await self._status(JobState.CANCELED, "canceled; best so far stored", summary=summary)
        else:
            await self._status(JobState.SUCCEEDED, "optimization finished", summary=summary)
