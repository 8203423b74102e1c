"""API-key auth for task apps (DESIGN.md 3.2).

Valid keys are read from the environment on every request, so rotating a key needs no
restart. Neither a valid key nor a presented one ever appears in an answer or a log line.
A request is public only when the route it reaches is public for its path and its method;
guessing is bounded by `MAX_PRESENTED_KEYS` per request and by failed checks per client
address (`attempts`). 0.2.24's key helpers (`require_api_key_dependency` and its kin) are
here too, over the same check.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from .access_log import loggable
from .attempts import blocked, record_failure
from .errors import TaskAppError, error_response

logger = logging.getLogger("synth_ai.task.auth")

PRIMARY_KEY_VAR = "ENVIRONMENT_API_KEY"
ALIASES_VAR = "ENVIRONMENT_API_KEY_ALIASES"
DEV_KEY_VARS = ("DEV_ENVIRONMENT_API_KEY", "dev_environment_api_key")
MAX_PRESENTED_KEYS = 4
"""Keys one request may present, across its key headers: enough to roll from one key to the
next, too few to guess with."""
WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="task-app", charset="UTF-8"'}


def _split(value: str | None) -> list[str]:
    if not value:
        return []
    return [part.strip() for part in value.split(",") if part.strip()]


def primary_key(environ: Mapping[str, str] | None = None) -> str:
    """The key this process accepts first: `ENVIRONMENT_API_KEY`, else a dev key; "" if none."""
    env = os.environ if environ is None else environ
    primary = env.get(PRIMARY_KEY_VAR, "").strip()
    if not primary:
        primary = next((env[v].strip() for v in DEV_KEY_VARS if env.get(v, "").strip()), "")
    return primary


def configured_keys(environ: Mapping[str, str] | None = None) -> list[str]:
    """Every key this process accepts now: the primary (or dev) key, then the aliases."""
    env = os.environ if environ is None else environ
    primary = primary_key(env)
    keys = [primary] if primary else []
    keys += [alias for alias in _split(env.get(ALIASES_VAR)) if alias not in keys]
    return keys


def presented_from(
    x_api_key: str | None, x_api_keys: str | None, authorization: str | None
) -> list[str]:
    """Keys sent as `X-API-Key`, `X-API-Keys` (comma-separated) or a bearer token."""
    keys = _split(x_api_key) + _split(x_api_keys)
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            keys.append(token.strip())
    return keys


def presented_keys(headers: Headers) -> list[str]:
    """Keys the caller sent as `X-API-Key`, `X-API-Keys` (comma-separated) or a bearer token."""
    return presented_from(
        headers.get("x-api-key"), headers.get("x-api-keys"), headers.get("authorization")
    )


def _matches(presented: Iterable[str], valid: Sequence[str]) -> bool:
    """Constant-time comparison of every presented key against every valid one."""
    matched = False
    for candidate in presented:
        for key in valid:
            matched |= hmac.compare_digest(candidate.encode(), key.encode())
    return matched


def expected_prefix(keys: Sequence[str]) -> str | None:
    """The hint `/health` gives: the first four characters of the primary key, never more."""
    return f"{keys[0][:4]}..." if keys else None


def refusal_for(presented: list[str], method: str, path: str) -> JSONResponse | None:
    """None when a presented key is valid; else the 503/401 answer to send (and a log line)."""
    primary = primary_key()
    if primary and _matches(presented, [primary]):
        return None  # what most requests carry: the aliases are read only for the others
    valid = configured_keys()
    if valid and _matches(presented, valid):
        return None
    if not valid:
        logger.error("refused %s %s: no %s is configured", method, loggable(path), PRIMARY_KEY_VAR)
        return error_response(
            503,
            "missing_environment_api_key",
            f"The server has no API key configured; set {PRIMARY_KEY_VAR} on the server.",
        )
    reason = "key not recognised" if presented else "no key presented"
    logger.warning("refused %s %s: %s", method, loggable(path), reason)
    return error_response(
        401,
        "unauthorised",
        "A valid API key is required: send it as X-API-Key or Authorization: Bearer.",
        headers=WWW_AUTHENTICATE,
    )


def check_api_key(headers: Headers, method: str, path: str) -> JSONResponse | None:
    """None when the request carries a valid key; else the 503/401 answer to send."""
    return refusal_for(presented_keys(headers), method, path)


def screen(scope: Scope, presented: Sequence[str]) -> TaskAppError | None:
    """What to refuse before any presented key is tested: a client address that failed too
    often (429), or more keys than `MAX_PRESENTED_KEYS` (401, counted as a failure)."""
    refusal = blocked(scope)
    if refusal is None and len(presented) > MAX_PRESENTED_KEYS:
        record_failure(scope)
        refusal = TaskAppError(
            401,
            "too_many_keys",
            f"At most {MAX_PRESENTED_KEYS} keys may be sent in one request.",
            headers=WWW_AUTHENTICATE,
        )
    return refusal


def key_refusal(scope: Scope, presented: list[str]) -> JSONResponse | None:
    """None when the request may go on; else its answer: `screen`'s, then 401 or 503 from
    checking the keys. A key presented and not recognised counts as a failed check."""
    screened = screen(scope, presented)
    if screened is not None:
        return screened.to_response()
    refusal = refusal_for(presented, scope["method"], scope["path"])
    if refusal is not None and refusal.status_code == 401 and presented:
        record_failure(scope)
    return refusal


class PublicRoutes:
    """The routes that need no key, and a request's only way to reach one without a key."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self.routes = list(routes)

    def match(self, scope: Scope) -> bool:
        """Whether the request goes to a public route: the first route of the app's table
        that matches its path and its method (`Match.FULL`; a GET route takes HEAD) is
        public. A path match alone (`Match.PARTIAL`) makes nothing public, nor does a public
        pattern listed after the protected route the request reaches."""
        if not self.routes:
            return False
        table = getattr(scope.get("app"), "routes", None) or self.routes
        for route in table:
            if route.matches(scope)[0] is Match.FULL:
                return route in self.routes
        return False


class AuthMiddleware:
    """Answers 429/401/503 in the error envelope for every route but the public ones.

    `standard_middleware` folds this check into its one edge layer; the class stays for
    stacks that need auth as a layer of its own (after CORS) and for subclasses.
    """

    def __init__(self, app: ASGIApp, public_routes: Sequence[BaseRoute] = ()) -> None:
        self.app = app
        self.public = PublicRoutes(public_routes)

    def _is_public(self, scope: Scope) -> bool:
        return self.public.match(scope)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.public.match(scope):
            await self.app(scope, receive, send)
            return
        refusal = key_refusal(scope, presented_keys(Headers(scope=scope)))
        if refusal is None:
            await self.app(scope, receive, send)
        else:
            await refusal(scope, receive, send)


# 0.2.24's key helpers, over the same key check. `require_api_key_dependency` refuses with 401
# (0.2.24 answered 400) and never echoes a key or any part of one (0.2.24 answered the first
# 15 characters of both the expected and the presented keys).


def normalize_environment_api_key() -> str | None:
    """The primary key (`ENVIRONMENT_API_KEY`, else a dev key), or None when none is set."""
    keys = configured_keys()
    return keys[0] if keys else None


def allowed_environment_api_keys() -> set[str]:
    """Every key accepted now: the primary one and `ENVIRONMENT_API_KEY_ALIASES`."""
    return set(configured_keys())


def _headers(request: Any) -> Headers:
    headers = getattr(request, "headers", request)
    if isinstance(headers, Headers):
        return headers
    if isinstance(headers, Mapping):
        return Headers(headers={str(k): str(v) for k, v in headers.items()})
    return Headers()


def _where(request: Any) -> tuple[str, str]:
    if isinstance(request, Request):
        return request.method, request.url.path
    return "?", "(author code)"


def is_api_key_header_authorized(request: Any) -> bool:
    """Whether the request (or a mapping of its headers) carries an accepted key."""
    return refusal_for(presented_keys(_headers(request)), *_where(request)) is None


def require_api_key_dependency(request: Request) -> None:
    """Raise the refusal (401, or 503 when no key is configured) unless the request carries
    an accepted key; usable as `Depends(require_api_key_dependency)` or called directly."""
    refusal = refusal_for(presented_keys(_headers(request)), *_where(request))
    if refusal is None:
        return
    detail = json.loads(bytes(refusal.body))["detail"]
    challenge = refusal.headers.get("www-authenticate")
    headers = {"WWW-Authenticate": challenge} if challenge else None
    raise HTTPException(refusal.status_code, detail=detail, headers=headers)  # type: ignore[arg-type]
