"""The interceptor: an OpenAI-compatible proxy that puts a candidate prompt into an app's calls.

The optimizer registers each rollout's cid with the candidate to score, and hands the app
`policy.config.inference_url = <proxy>/v1/chat/completions?cid=<cid>`. Every app must call its
inference URL, so this works with any app in any language. Per call: the cid picks the
candidate (an unknown cid is refused), the app's messages are matched against the initial
prompt to recover the wildcard values (a mismatch is refused naming the message and role, never
guessed), the candidate is rendered with them, and the call goes to the real policy endpoint.
Its answer goes back to the app unchanged and is recorded, with its token usage, under the cid.
The optimizer serves it on its own event loop (`async with`), and it forwards with aiohttp
(`upstream.py`): each measured cheaper than a thread of its own and httpx (issue 27).

Keys follow the destination (`credentials.py`): the upstream's key comes from the credential
map; no header of the app's request (its Authorization included) is forwarded. The cid is what
lets a call through, so cids should be unguessable (`new_cid`); the server binds loopback only.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from synth_ai.task.correlation import URL_CID_PARAMS, normalize_inference_url
from synth_ai.task.credentials import DEFAULT_CREDENTIALS
from synth_ai.task.errors import TaskAppError
from synth_ai.task.json_body import loads_strict

from .prompt import InitialPrompt, PromptMismatch, match, render
from .records import CidTable, Exchange, Usage, new_cid
from .upstream import PolicyClient

MiB = 1024 * 1024
MAX_MESSAGES = 4096
KEEP_ALIVE_S = 65
"""How long an idle connection from the app stays open: longer than clients keep idle ones
(httpx: 5 s), so the client always closes first. Were the server to close at the moment the
client reuses the connection, that rollout would fail as an infrastructure error, and the
optimizer scores those 0 without retrying."""
_GLUED_PATH = re.compile(r"^(?P<cid>[^/]*)/(?:v\d+/)?chat/completions$")


def _error(status: int, code: str, message: str) -> JSONResponse:
    """OpenAI's error shape (what the app's client reads) and the project's envelope in one."""
    return JSONResponse(
        {
            "error": {"message": message, "type": "invalid_request_error", "code": code},
            "detail": {"error": {"code": code, "message": message}},
        },
        status_code=status,
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such path, wrong method) in the same shape."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")
    message = "POST chat completions to /v1/chat/completions?cid=<cid>."
    return _error(status, code, message)


def _cid_of(request: Request) -> str | None:
    """The cid in the path (`/cid/<cid>/v1/...`), else in the query (`?cid=`), also where an
    older client glued the path after the query (`?cid=<cid>/v1/chat/completions`)."""
    in_path = request.path_params.get("cid")
    if isinstance(in_path, str):
        return in_path
    for name in URL_CID_PARAMS:
        value = request.query_params.get(name)
        if value:
            glued = _GLUED_PATH.match(value)
            return glued["cid"] if glued else value
    return None


def _answer_parts(answer: Any) -> tuple[str | None, list[dict[str, Any]]]:
    message = answer["choices"][0]["message"]
    content = message.get("content")
    calls = message.get("tool_calls") or []
    return (
        content if isinstance(content, str) else None,
        [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else [],
    )


class Interceptor:
    """The proxy and its records. Serve it with `serving()` (or `async with`), then
    `register(cid, candidate)` per rollout and `release(cid)` to take its records.

    `upstream_url` is the real policy endpoint (a base URL `.../v1` or the full
    chat-completions URL); `model`, when given, replaces the model the app names.
    `credentials` maps destinations to the environment variables holding their keys.

    Bounds: an app's call at most `max_body_bytes` (else 413), the policy's answer at most
    `max_response_bytes` (else 502), and per cid at most `max_records_per_cid` calls and
    `max_record_bytes_per_cid` bytes of calls and answers recorded (as sent: one largest call
    and answer fit). Both bodies are parsed on the loop: the JSON parser holds the interpreter
    lock throughout, so a worker thread would not free the loop; the caps bound the pause
    instead (a 16 MiB answer parses in about 25 ms as text; 0.6 s in the worst shape, 300,000
    tool calls). Answers with log probabilities of long outputs run to megabytes, so the
    answer cap stays well above them.
    """

    def __init__(
        self,
        initial: InitialPrompt,
        upstream_url: str,
        *,
        model: str | None = None,
        credentials: Mapping[str, str] = DEFAULT_CREDENTIALS,
        max_cids: int = 1024,
        max_records_per_cid: int = 64,
        max_record_bytes_per_cid: int = 32 * MiB,
        max_body_bytes: int = 4 * MiB,
        max_response_bytes: int = 16 * MiB,
        timeout_s: float = 120.0,
        host: str = "127.0.0.1",
    ) -> None:
        self.initial = initial
        self.upstream_url = normalize_inference_url(upstream_url)
        self.model = model
        self.max_body_bytes = max_body_bytes
        self.host = host
        self.table = CidTable(max_cids, max_records_per_cid, max_record_bytes_per_cid)
        self._upstream = PolicyClient(self.upstream_url, credentials, timeout_s, max_response_bytes)
        self.base_url: str | None = None
        self._serving: AbstractAsyncContextManager[str] | None = None
        self.app = Starlette(
            routes=[
                Route(path, self.chat_completions, methods=["POST"])
                for path in (
                    "/v1/chat/completions",
                    "/chat/completions",
                    "/v1",
                    "/",
                    "/cid/{cid}/v1/chat/completions",
                    "/cid/{cid}/chat/completions",
                )
            ],
            exception_handlers={HTTPException: _http_error},
            lifespan=self._lifespan,
        )

    # the optimizer's side

    def register(self, cid: str, candidate: Mapping[str, str], *, rewrite: bool = True) -> str:
        """Serve `candidate` to calls carrying `cid`; answers the inference URL for the app.

        `rewrite=False` is for an app given the candidate itself (`policy.config.
        prompt_template`): its messages are forwarded as sent, and still recorded.
        """
        if self.base_url is None:
            raise RuntimeError("the interceptor is not serving yet; enter serving() first")
        self.initial.check_candidate(candidate)
        self.table.register(cid, candidate, rewrite=rewrite)
        return f"{self.base_url}/v1/chat/completions?{urlencode({'cid': cid})}"

    def records(self, cid: str) -> list[Exchange]:
        """The calls recorded under `cid` so far."""
        return self.table.records(cid)

    def release(self, cid: str) -> list[Exchange]:
        """Forget `cid` (later calls with it are refused) and answer its records."""
        return self.table.release(cid)

    @property
    def usage(self) -> Usage:
        """Tokens over every call forwarded since the interceptor started."""
        return self.table.usage

    @contextmanager
    def serving(self) -> Iterator[str]:
        """Serve on loopback from a background thread, for a caller without an event loop;
        yields the base URL. An async caller uses `async with` instead."""
        from synth_ai.task.serving import serve_in_background

        with serve_in_background(self.app, host=self.host, timeout_keep_alive=KEEP_ALIVE_S) as url:
            self.base_url = url
            try:
                yield url
            finally:
                self.base_url = None

    async def __aenter__(self) -> Interceptor:
        """Serve on loopback from the running loop, the one that sends the rollouts: a thread
        of its own would contend with that loop for the GIL at every call (issue 27: +17 ms
        on the rollout p50 that way)."""
        from synth_ai.task.serving import serve_on_loop

        serving = serve_on_loop(self.app, host=self.host, timeout_keep_alive=KEEP_ALIVE_S)
        self.base_url = await serving.__aenter__()
        self._serving = serving
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        serving, self._serving = self._serving, None
        self.base_url = None
        if serving is not None:
            await serving.__aexit__(exc_type, exc, traceback)

    # the app's side

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self._upstream.start()
        try:
            yield
        finally:
            await self._upstream.aclose()

    async def chat_completions(self, request: Request) -> Response:
        cid = _cid_of(request)
        registration = self.table.lookup(cid) if cid else None
        if cid is None or registration is None:
            return _error(404, "unknown_cid", "No candidate is registered for this call's cid.")
        try:
            body, size = await self._read_body(request)
        except TaskAppError as refused:
            return _error(refused.status, refused.code, refused.message)
        messages = body["messages"]
        record = functools.partial(self.table.record, cid, registration)
        if not registration.rewrite:
            return await self._forward(self._with_model(body), {}, size, record)
        try:
            wildcards = match(self.initial, messages)
        except PromptMismatch as exc:
            message = f"The app's messages do not match the initial prompt: {exc}"
            record(Exchange(messages, {}, 422, error=message), size)
            return _error(422, "prompt_mismatch", message)
        prompt_length = len(self.initial.messages)
        rendered = [
            {**original, "content": new["content"]}
            for original, new in zip(
                messages, render(registration.candidate, self.initial, wildcards), strict=False
            )
        ]
        forwarded = rendered + list(messages[prompt_length:])
        payload = self._with_model({**body, "messages": forwarded})
        return await self._forward(payload, wildcards, size, record)

    def _with_model(self, payload: dict[str, Any]) -> dict[str, Any]:
        return payload if self.model is None else {**payload, "model": self.model}

    async def _read_body(self, request: Request) -> tuple[dict[str, Any], int]:
        """The call's JSON object, and its size in bytes; `TaskAppError` for anything else."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise self._too_large()
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._too_large()
            chunks.append(chunk)
        body = loads_strict(b"".join(chunks))
        if not isinstance(body, dict):
            raise TaskAppError(400, "invalid_request", "The body must be a JSON object.")
        messages = body.get("messages")
        if (
            not isinstance(messages, list)
            or not messages
            or len(messages) > MAX_MESSAGES
            or not all(isinstance(m, dict) for m in messages)
        ):
            raise TaskAppError(
                400,
                "invalid_request",
                f"'messages' must be a list of 1 to {MAX_MESSAGES} message objects.",
            )
        if body.get("stream"):
            raise TaskAppError(
                400, "stream_unsupported", "The interceptor does not stream; send stream=false."
            )
        return body, size

    def _too_large(self) -> TaskAppError:
        return TaskAppError(
            413,
            "request_too_large",
            f"The request body is larger than {self.max_body_bytes} bytes.",
        )

    async def _forward(
        self,
        payload: dict[str, Any],
        wildcards: dict[str, str],
        sent: int,
        record: Callable[[Exchange, int], None],
    ) -> Response:
        """Send the call (`sent` bytes as the app sent it) on; answer the upstream's reply as
        it came, and `record` it with the bytes of both."""
        messages = payload["messages"]
        started = time.perf_counter()
        try:
            status, content_type, content = await self._upstream.post(payload)
        except TaskAppError as refused:
            latency = time.perf_counter() - started
            record(
                Exchange(
                    messages, wildcards, refused.status, error=refused.message, latency_s=latency
                ),
                sent,
            )
            return _error(refused.status, refused.code, refused.message)
        latency = time.perf_counter() - started
        record(self._exchange(messages, wildcards, status, content, latency), sent + len(content))
        return Response(content, status_code=status, media_type=content_type)

    @staticmethod
    def _exchange(
        messages: list[dict[str, Any]],
        wildcards: dict[str, str],
        status: int,
        content: bytes,
        latency: float,
    ) -> Exchange:
        if status >= 400:
            error = f"The policy endpoint answered HTTP {status}."
            return Exchange(messages, wildcards, status, error=error, latency_s=latency)
        try:
            answer = loads_strict(content)
            text, calls = _answer_parts(answer)
        except (TaskAppError, KeyError, IndexError, TypeError, AttributeError):
            error = "The policy endpoint answered something not a chat completion."
            return Exchange(messages, wildcards, status, error=error, latency_s=latency)
        return Exchange(messages, wildcards, status, text, calls, Usage.of(answer), None, latency)


__all__ = ["Exchange", "Interceptor", "Usage", "new_cid"]
