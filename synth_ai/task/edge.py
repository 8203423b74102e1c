"""The one middleware layer in front of every route: access log, body limit, API-key auth.

As three layers, each wrapped `send` or `receive` and read the headers again on every request.
Folded, a request costs one pass over its headers, `receive` is wrapped only when the body's
size is not already bounded by a Content-Length the server enforces, and `send` only when the
access log is on. The hot route can also be answered from here (`direct`), past Starlette's
exception layer and router, which cost about as much as this whole layer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .access_log import log_request
from .access_log import logger as access_logger
from .auth import PublicRoutes, key_refusal, presented_from
from .errors import TaskAppError, error_response, handle_unexpected
from .limits import RequestTooLarge


class EdgeMiddleware:
    """Logs each request, refuses bodies over the limit, and (with `public_routes`) checks keys.

    `limit_for(scope)` may name another body limit for some requests (uploads), else None.
    `public_routes` None: no key check here (auth is off, or another layer does it).
    `direct` maps exact paths to ASGI endpoints that answer POSTs to them straight from this
    layer: only for a layer outside Starlette's server-error layer with nothing between it and
    the router (`server.TaskApp`), and for endpoints that send nothing until their answer is
    whole. Their `TaskAppError`s are answered here in the envelope; anything else as the
    server-error layer would: the 500 envelope, then raised on for the server to log. A direct
    endpoint always needs a key: it is one of the app's own protected routes, listed before
    any public one (so no public-route decision is made for it: 17k instructions a rollout on
    uvloop + httptools, 3.6%, bench/RESULTS.md).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        limit_for: Callable[[Scope], int | None] | None = None,
        public_routes: Sequence[BaseRoute] | None = None,
        direct: Mapping[str, ASGIApp] | None = None,
    ) -> None:
        self.app = app
        self.default_max_bytes = max_bytes
        self.limit_for = limit_for
        self.public = PublicRoutes(public_routes) if public_routes is not None else None
        self.direct = dict(direct or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not access_logger.isEnabledFor(logging.INFO):
            await self._handle(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._handle(scope, receive, recording_send)
        finally:
            log_request(scope, status, started)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        length: int | None = None
        chunked = False
        # the first of each, decoded as `Headers.get` decodes it
        x_api_key: str | None = None
        x_api_keys: str | None = None
        authorization: str | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    response = error_response(400, "bad_request", "Content-Length is not a number.")
                    await response(scope, receive, send)
                    return
                length = max(int(value), length or 0)
            elif name == b"x-api-key":
                if x_api_key is None:
                    x_api_key = value.decode("latin-1")
            elif name == b"authorization":
                if authorization is None:
                    authorization = value.decode("latin-1")
            elif name == b"x-api-keys":
                if x_api_keys is None:
                    x_api_keys = value.decode("latin-1")
            elif name == b"transfer-encoding":
                chunked = True
        limit = self.limit_for(scope) if self.limit_for is not None else None
        max_bytes = self.default_max_bytes if limit is None else limit
        if length is not None and length > max_bytes:
            await RequestTooLarge(max_bytes).to_response()(scope, receive, send)
            return
        endpoint = self._direct_endpoint(scope)
        # a direct endpoint is never public: only the app's own protected routes are direct
        if self.public is not None and (endpoint is not None or not self.public.match(scope)):
            presented = presented_from(x_api_key, x_api_keys, authorization)
            refusal = key_refusal(scope, presented)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        if length is None or chunked:
            # Only a Content-Length the server enforces bounds the body; count anything else.
            receive = _counting(receive, max_bytes)
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        try:
            await endpoint(scope, receive, send)
        except TaskAppError as exc:
            await exc.to_response()(scope, receive, send)
        except Exception as exc:
            await (await handle_unexpected(Request(scope), exc))(scope, receive, send)
            raise

    def _direct_endpoint(self, scope: Scope) -> ASGIApp | None:
        if not self.direct or scope["method"] != "POST" or scope.get("root_path"):
            return None  # under a root path the router resolves the route
        return self.direct.get(scope["path"])


def _counting(receive: Receive, max_bytes: int) -> Receive:
    """`receive` that raises 413 once more than `max_bytes` of body have come in."""
    received = 0

    async def counting_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise RequestTooLarge(max_bytes)
        return message

    return counting_receive
