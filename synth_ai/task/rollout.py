"""Running one rollout: parse, admit, execute under a deadline, and stamp the cid rule.

The execution rules of DESIGN.md 3.5 live here: sync executors run in a bounded worker pool,
async ones on the loop; the deadline is `min(safety.max_time_s, max_rollout_seconds)`; a client
that disconnects cancels its rollout; infrastructure errors are reported apart from rewards.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import ValidationError
from starlette.requests import Request

from .access_log import loggable
from .config import TaskAppConfig
from .contracts import (
    RolloutMetrics,
    RolloutRequest,
    RolloutResponse,
    RolloutTrajectory,
)
from .correlation import (
    extract_trace_correlation_id,
    normalize_inference_url,
    policy_inference_url,
    stamp_inference_url,
)
from .errors import InfrastructureError, TaskAppError, invalid_request, validation_error
from .inference import SharedHttpClient
from .limits import RolloutLimiter
from .tracing import RolloutTracing

if TYPE_CHECKING:
    from synth_ai.tracing_v3 import TraceSession

logger = logging.getLogger("synth_ai.task.rollout")

WATCH_AFTER_S = 0.05


@dataclass(slots=True)
class RolloutContext:
    """What the framework hands an executor beside the request."""

    correlation_id: str
    inference_url: str | None
    """The policy's inference URL, normalised and stamped with `cid`: call exactly this."""
    deadline_s: float
    env_id: str
    policy_id: str
    _cancelled: threading.Event | None = None
    trace: TraceSession | None = None
    """This rollout's trace session when tracing is on (or a trace was asked for)."""
    _http: SharedHttpClient | None = None

    @property
    def cancelled(self) -> threading.Event:
        """Set when the rollout is cancelled or times out; sync executors may poll or wait on
        it. Made on first use (async rollouts rarely look); for sync executors the runner
        makes it on the loop before handing the rollout to a worker thread."""
        if self._cancelled is None:
            self._cancelled = threading.Event()
        return self._cancelled

    @property
    def http(self) -> httpx.AsyncClient:
        """The app's pooled HTTP client (for async executors)."""
        if self._http is None:
            raise RuntimeError("this context has no shared HTTP client")
        return self._http.get()


def parse_rollout_request(content_type: str, body: bytes) -> RolloutRequest:
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise TaskAppError(
            415, "unsupported_media_type", "Send the rollout request as application/json."
        )
    try:
        return RolloutRequest.model_validate_json(body)
    except ValidationError as exc:
        if any(err["type"] == "json_invalid" for err in exc.errors()):
            raise TaskAppError(400, "invalid_json", "The request body is not valid JSON.") from None
        raise validation_error(exc, "The rollout request is invalid.") from None


def apply_correlation(
    response: RolloutResponse, request: RolloutRequest, context: RolloutContext
) -> RolloutResponse:
    """Enforce the cid rule on whatever the executor answered."""
    cid = context.correlation_id
    url = (
        context.inference_url
        or response.pipeline_metadata.get("inference_url")
        or response.inference_url
    )
    if url:
        url = stamp_inference_url(url, cid)
    response.run_id = response.run_id or request.run_id
    response.trace_correlation_id = cid
    response.inference_url = url
    response.pipeline_metadata = {
        **response.pipeline_metadata,
        "run_id": response.run_id,
        "trace_correlation_id": cid,
        "inference_url": url,
    }
    for trajectory in response.trajectories:
        trajectory.trace_correlation_id = cid
        if url:
            trajectory.inference_url = url
            for step in trajectory.steps:
                meta = step.info.get("meta")
                step.info["meta"] = {
                    **(meta if isinstance(meta, dict) else {}),
                    "inference_url": url,
                }
    return response


def infrastructure_failure(
    request: RolloutRequest, context: RolloutContext, error: InfrastructureError
) -> RolloutResponse:
    """The answer for a rollout that infrastructure broke: marked, aborted, scored 0.0."""
    return RolloutResponse(
        run_id=request.run_id,
        trajectories=[RolloutTrajectory(env_id=context.env_id, policy_id=context.policy_id)],
        metrics=RolloutMetrics(
            episode_returns=[0.0], outcome_score=0.0, details={"infra_error": error.to_dict()}
        ),
        aborted=True,
    )


def _is_async(executor: Any) -> bool:
    return inspect.iscoroutinefunction(executor) or inspect.iscoroutinefunction(
        type(executor).__call__
    )


async def read_body(request: Request) -> bytes:
    """The whole body, read straight from `receive` (lighter than Starlette's stream)."""
    chunks = []
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise TaskAppError(499, "client_disconnected", "The client went away.")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _wait_for_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _logged(context: RolloutContext) -> str:
    """The correlation id as a log line may hold it: escaped and cut (the caller chose it)."""
    return loggable(context.correlation_id, 128)


class RolloutRunner:
    """Owns one app's rollout limiter, worker pool and shared HTTP client."""

    def __init__(self, config: TaskAppConfig) -> None:
        self.config = config
        self.limiter = RolloutLimiter(config.max_concurrent_rollouts, config.max_queued_rollouts)
        self.http = SharedHttpClient(credentials=config.credentials)
        self.tracing = RolloutTracing(config)
        self._executor_is_async = _is_async(config.rollout)
        self._pool: ThreadPoolExecutor | None = None

    async def close(self) -> None:
        await self.http.aclose()
        await self.tracing.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def context_for(self, request: RolloutRequest) -> RolloutContext:
        policy_config = request.policy.config
        raw_url = policy_inference_url(policy_config)
        try:
            url = normalize_inference_url(raw_url) if raw_url else None
        except ValueError as exc:
            raise invalid_request(
                "policy.config.inference_url is not a usable URL.",
                loc=["body", "policy", "config", "inference_url"],
                msg=str(exc),
                type="url_parsing",
            ) from None
        cid = extract_trace_correlation_id(
            policy_config, raw_url, request.trace_correlation_id or request.run_id
        )
        assert cid is not None  # the request model guarantees one of the two ids
        deadline = self.config.max_rollout_seconds
        if request.safety.max_time_s is not None:
            deadline = min(deadline, request.safety.max_time_s)
        return RolloutContext(
            correlation_id=cid,
            inference_url=stamp_inference_url(url, cid) if url else None,
            deadline_s=deadline,
            env_id=request.env.env_id or request.env.env_name or self.config.app_id,
            policy_id=request.policy.policy_id or request.policy.policy_name or "policy",
            _http=self.http,
        )

    async def handle(self, http_request: Request) -> RolloutResponse:
        body = await read_body(http_request)
        request = parse_rollout_request(http_request.headers.get("content-type", ""), body)
        context = self.context_for(request)
        http_request.state.correlation_id = context.correlation_id
        # The rollout runs in the request's own task. A rollout still running after
        # WATCH_AFTER_S gets a watcher that cancels it if the client leaves; quick ones never
        # pay for that task.
        this_task = asyncio.current_task()
        assert this_task is not None
        left = asyncio.Event()
        watcher: asyncio.Task[None] | None = None

        async def watch() -> None:
            await _wait_for_disconnect(http_request)
            left.set()
            this_task.cancel()

        def start_watching() -> None:
            nonlocal watcher
            watcher = asyncio.ensure_future(watch())

        timer = asyncio.get_running_loop().call_later(WATCH_AFTER_S, start_watching)
        try:
            response = await self._admit_and_execute(request, context)
        except asyncio.CancelledError:
            if not left.is_set():
                raise
            this_task.uncancel()
            context.cancelled.set()
            logger.info("client disconnected; rollout %s cancelled", _logged(context))
            raise TaskAppError(499, "client_disconnected", "The client went away.") from None
        finally:
            timer.cancel()
            if watcher is not None:
                watcher.cancel()
        return apply_correlation(response, request, context)

    async def _admit_and_execute(
        self, request: RolloutRequest, context: RolloutContext
    ) -> RolloutResponse:
        async with self.limiter.slot():
            traced = self.tracing.start(request, context.correlation_id)
            if traced is None:
                return await self._execute(request, context)
            tracer, context.trace = traced
            error: str | None = None
            response: RolloutResponse | None = None
            try:
                response = await self._execute(request, context)
                self._complete_trace(response, request, context.trace)
            except BaseException as exc:
                error = exc.code if isinstance(exc, TaskAppError) else type(exc).__name__
                raise
            finally:
                # answered only after the session is committed: a 200 means the trace is kept
                failure = await tracer.finish(context.trace, error)
                if response is not None and tracer.store is not None:
                    response.pipeline_metadata["trace_stored"] = failure is None
                    if failure is not None:
                        response.pipeline_metadata["trace_error"] = failure
            return response

    @staticmethod
    def _complete_trace(
        response: RolloutResponse, request: RolloutRequest, session: TraceSession
    ) -> None:
        """Record the outcome reward (unless the executor did) and attach the asked-for form."""
        infra_error = response.metrics.details.get("infra_error")
        if infra_error:
            session.trace.metadata["infra_error"] = infra_error
        elif session.trace.outcome_reward is None and response.metrics.outcome_score is not None:
            session.record_outcome_reward(response.metrics.outcome_score)
        if request.record.return_trace:
            from synth_ai.tracing_v3 import render_trace

            response.trace = render_trace(session.trace, request.record.trace_format)

    async def _execute(self, request: RolloutRequest, context: RolloutContext) -> RolloutResponse:
        try:
            async with asyncio.timeout(context.deadline_s) as deadline:
                result = await self._call_executor(request, context)
        except TimeoutError as exc:
            if not deadline.expired():
                raise self._executor_failed(context, exc) from None
            context.cancelled.set()
            logger.warning("rollout %s timed out after %g s", _logged(context), context.deadline_s)
            raise TaskAppError(
                504,
                "rollout_timeout",
                f"The rollout did not finish within {context.deadline_s:g} s.",
                timeout_s=context.deadline_s,
            ) from None
        except InfrastructureError as exc:
            logger.warning(
                "rollout %s hit an infrastructure error: %s (%s)",
                _logged(context),
                exc.kind,
                exc.message,
            )
            return infrastructure_failure(request, context, exc)
        except (TaskAppError, asyncio.CancelledError):
            raise
        except Exception as exc:
            raise self._executor_failed(context, exc) from None
        try:
            return RolloutResponse.model_validate(result)
        except ValidationError as exc:
            logger.error(
                "rollout %s: executor answered an invalid response: %s",
                _logged(context),
                exc,
            )
            raise TaskAppError(
                500,
                "invalid_rollout_response",
                "The rollout executor answered something that is not a rollout response.",
            ) from None

    async def _call_executor(self, request: RolloutRequest, context: RolloutContext) -> Any:
        if self._executor_is_async:
            return await self.config.rollout(request, context)  # type: ignore[misc]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.config.max_concurrent_rollouts,
                thread_name_prefix=f"rollout-{self.config.app_id}",
            )
        _ = context.cancelled  # made here, on the loop, before the worker thread can race for it
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.config.rollout, request, context)

    @staticmethod
    def _executor_failed(context: RolloutContext, exc: BaseException) -> TaskAppError:
        """Log the executor's traceback server-side; answer without it."""
        logger.error("rollout %s: executor raised", _logged(context), exc_info=exc)
        return TaskAppError(
            500,
            "rollout_failed",
            f"The rollout executor raised {type(exc).__name__}: {exc}",
            exception_type=type(exc).__name__,
        )
