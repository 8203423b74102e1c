"""Running one rollout: parse, admit, execute under a deadline, and stamp the cid rule.

The execution rules of DESIGN.md 3.5 live here: sync executors run in a bounded worker pool,
async ones on the loop; the deadline is `min(safety.max_time_s, max_rollout_seconds)`; a client
that disconnects cancels its rollout; infrastructure errors are reported apart from rewards.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from .access_log import loggable
from .arming import Arming
from .client_watch import ClientLeft, ClientWatch
from .config import TaskAppConfig
from .context import RolloutContext
from .contracts import (
    MAX_ID_CHARS,
    RolloutMetrics,
    RolloutRequest,
    RolloutResponse,
    RolloutTrajectory,
)
from .correlation import (
    apply_correlation,
    extract_trace_correlation_id,
    normalize_inference_url,
    policy_inference_url,
    stamp_inference_url,
)
from .deadline import Deadline
from .errors import (
    InfrastructureError,
    TaskAppError,
    from_http_exception,
    invalid_request,
    validation_error,
)
from .inference import SharedHttpClient
from .json_body import validate_strict
from .limits import RolloutLimiter
from .shutdown import on_shutdown
from .tracing import RolloutTracing

if TYPE_CHECKING:
    from synth_ai.tracing_v3 import SessionTracer, TraceSession

logger = logging.getLogger("synth_ai.task.rollout")


def parse_rollout_request(content_type: str, body: bytes) -> RolloutRequest:
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise TaskAppError(
            415, "unsupported_media_type", "Send the rollout request as application/json."
        )
    try:
        return validate_strict(RolloutRequest, body)
    except ValidationError as exc:
        raise validation_error(exc, "The rollout request is invalid.") from None


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


async def read_body(receive: Receive) -> bytes:
    """The whole body, read straight from `receive` (no Request object on the hot path)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise TaskAppError(499, "client_disconnected", "The client went away.")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def content_type(scope: Scope) -> str:
    """The request's first Content-Type header, as `Headers.get` would read it."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.decode("latin-1")
    return ""


def _logged(context: RolloutContext) -> str:
    """The correlation id as a log line may hold it: escaped and cut (the caller chose it)."""
    return loggable(context.correlation_id, 128)


class RolloutRunner:
    """The `/rollout` endpoint, a plain ASGI app: owns one app's rollout limiter, worker pool
    and shared HTTP client. Errors propagate as exceptions to the app's handlers,
    which answer them in the envelope."""

    def __init__(self, config: TaskAppConfig) -> None:
        self.config = config
        self.limiter = RolloutLimiter(config.max_concurrent_rollouts, config.max_queued_rollouts)
        self.http = SharedHttpClient(credentials=config.credentials)
        self.tracing = RolloutTracing(config)
        self._executor_is_async = _is_async(config.rollout)
        self.arming = Arming()
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight: dict[int, RolloutContext] = {}
        self._shutdown_loop: asyncio.AbstractEventLoop | None = None

    def cancel_all(self) -> None:
        """Tell every rollout in flight to stop (`context.cancelled`): the server is going."""
        for context in list(self._in_flight.values()):
            context.cancelled.set()

    def _told_on_shutdown(self, context: RolloutContext) -> None:
        """Count the rollout in flight, and have this loop's server shutdown tell it."""
        loop = asyncio.get_running_loop()
        if loop is not self._shutdown_loop:
            self._shutdown_loop = loop
            on_shutdown(self.cancel_all)
        self._in_flight[id(context)] = context

    async def close(self) -> None:
        self.cancel_all()
        await self.http.aclose()
        await self.tracing.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.handle(scope, receive)
        # pydantic-core writes the JSON bytes itself: no model_dump, no json.dumps, no encode
        body = response.__pydantic_serializer__.to_json(response)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(body)),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def context_for(self, request: RolloutRequest) -> RolloutContext:
        policy, env = request.policy, request.env
        policy_config = policy.config
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
            # the normalised URL: its cid is what the call carries ("" when there is none, so
            # the config is not looked at again)
            policy_config,
            url or "",
            request.trace_correlation_id,  # the request model fills it in from run_id
        )
        assert cid is not None
        if len(cid) > MAX_ID_CHARS:
            from_policy = policy_config.get("trace_correlation_id") == cid
            raise invalid_request(
                f"The correlation id is longer than {MAX_ID_CHARS} characters.",
                loc=[
                    "body",
                    "policy",
                    "config",
                    "trace_correlation_id" if from_policy else "inference_url",
                ],
                msg=f"at most {MAX_ID_CHARS} characters",
                type="string_too_long",
            )
        deadline = self.config.max_rollout_seconds
        max_time_s = request.safety.max_time_s
        if max_time_s is not None and max_time_s < deadline:
            deadline = max_time_s
        return RolloutContext(
            correlation_id=cid,
            inference_url=stamp_inference_url(url, cid) if url else None,
            deadline_s=deadline,
            env_id=env.env_id or env.env_name or self.config.app_id,
            policy_id=policy.policy_id or policy.policy_name or "policy",
            _http=self.http,
        )

    async def handle(self, scope: Scope, receive: Receive) -> RolloutResponse:
        body = await read_body(receive)
        request = parse_rollout_request(content_type(scope), body)
        context = self.context_for(request)
        scope.setdefault("state", {})["correlation_id"] = context.correlation_id
        self._told_on_shutdown(context)
        try:
            # the rollout runs in the request's own task, cancelled if the client leaves
            async with ClientWatch(receive, self.arming):
                if not self.limiter.try_acquire():
                    await self.limiter.acquire()
                try:
                    traced = self.tracing.start(request, context.correlation_id)
                    if traced is None:
                        response = await self._execute(request, context)
                    else:
                        response = await self._execute_traced(request, context, *traced)
                finally:
                    self._release(context)
        except ClientLeft:
            context.cancelled.set()
            logger.info("client disconnected; rollout %s cancelled", _logged(context))
            raise TaskAppError(499, "client_disconnected", "The client went away.") from None
        except asyncio.CancelledError:
            context.cancelled.set()  # however it was cancelled, a worker thread may be told
            raise
        finally:
            del self._in_flight[id(context)]
        return apply_correlation(
            response, request.run_id, context.correlation_id, context.inference_url
        )

    async def _execute_traced(
        self,
        request: RolloutRequest,
        context: RolloutContext,
        tracer: SessionTracer,
        session: TraceSession,
    ) -> RolloutResponse:
        context.trace = session
        error: str | None = None
        response: RolloutResponse | None = None
        try:
            response = await self._execute(request, context)
            self._complete_trace(response, request, session)
        except BaseException as exc:
            error = exc.code if isinstance(exc, TaskAppError) else type(exc).__name__
            raise
        finally:
            # answered only after the session is committed: a 200 means the trace is kept
            try:
                failure = await tracer.finish(session, error)
            finally:
                self.tracing.finished(context.correlation_id)
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
        deadline = Deadline(context.deadline_s, self.arming)
        try:
            async with deadline:
                if self._executor_is_async:
                    result = await self.config.rollout(request, context)  # type: ignore[misc]
                else:
                    result = await self._run_in_pool(request, context)
                    if inspect.isawaitable(result):
                        # an async executor behind a plain `def` (a decorator, a callable
                        # object): its work is the awaitable it returned
                        result = await result
        except TimeoutError as exc:
            if not deadline.expired():  # the executor's own timeout: its failure
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
        except TaskAppError:
            raise
        except HTTPException as exc:  # the executor's own answer, as a route's would be
            raise from_http_exception(exc) from None
        except Exception as exc:
            raise self._executor_failed(context, exc) from None
        if isinstance(result, RolloutResponse):
            return result  # built by the executor through the model: valid already
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

    async def _run_in_pool(self, request: RolloutRequest, context: RolloutContext) -> Any:
        """A sync executor's rollout, in the app's bounded worker pool."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.config.max_concurrent_rollouts,
                thread_name_prefix=f"rollout-{self.config.app_id}",
            )
        _ = context.cancelled  # made here, on the loop, before the worker thread can race for it
        context._worker = self._pool.submit(self.config.rollout, request, context)
        return await asyncio.wrap_future(context._worker)

    def _release(self, context: RolloutContext) -> None:
        """Free the rollout's slot, or, while its worker thread still runs (the rollout timed
        out or its client left, and the executor is stuck in a blocking call), once that thread
        returns: a slot freed earlier would admit rollouts the pool cannot start."""
        worker = context._worker
        if worker is None or worker.done():
            self.limiter.release()
            return
        loop = asyncio.get_running_loop()

        def returned(_: Future[Any]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nothing to free
                loop.call_soon_threadsafe(self.limiter.release)

        worker.add_done_callback(returned)

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
