"""API-key auth for task apps (DESIGN.md 3.2).

Valid keys are read from the environment on every request, so rotating a key needs no
restart. Neither a valid key nor a presented one ever appears in an answer or a log line.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Iterable, Mapping, Sequence

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .access_log import loggable
from .errors import error_response

logger = logging.getLogger("synth_ai.task.auth")

PRIMARY_KEY_VAR = "ENVIRONMENT_API_KEY"
ALIASES_VAR = "ENVIRONMENT_API_KEY_ALIASES"
DEV_KEY_VARS = ("DEV_ENVIRONMENT_API_KEY", "dev_environment_api_key")
WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="task-app", charset="UTF-8"'}


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def configured_keys(environ: Mapping[str, str] | None = None) -> list[str]:
    """Every key this process accepts now: the primary (or dev) key, then the aliases."""
    env = os.environ if environ is None else environ
    primary = env.get(PRIMARY_KEY_VAR, "").strip()
    if not primary:
        primary = next((env[v].strip() for v in DEV_KEY_VARS if env.get(v, "").strip()), "")
    keys = [primary] if primary else []
    keys += [alias for alias in _split(env.get(ALIASES_VAR)) if alias not in keys]
    return keys


def presented_keys(headers: Headers) -> list[str]:
    """Keys the caller sent as `X-API-Key`, `X-API-Keys` (comma-separated) or a bearer token."""
    keys = _split(headers.get("x-api-key")) + _split(headers.get("x-api-keys"))
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        keys.append(token.strip())
    return keys


def key_matches(presented: Iterable[str], valid: Sequence[str]) -> bool:
    """Constant-time comparison of every presented key against every valid one."""
    matched = False
    for candidate in presented:
        for key in valid:
            matched |= hmac.compare_digest(candidate.encode(), key.encode())
    return matched


def expected_prefix(keys: Sequence[str]) -> str | None:
    """The hint `/health` gives: the first four characters of the primary key, never more."""
    return f"{keys[0][:4]}..." if keys else None


def check_api_key(headers: Headers, method: str, path: str) -> JSONResponse | None:
    """None when the request carries a valid key; else the 503/401 answer to send."""
    valid = configured_keys()
    if not valid:
        logger.error("refused %s %s: no %s is configured", method, loggable(path), PRIMARY_KEY_VAR)
        return error_response(
            503,
            "missing_environment_api_key",
            f"The server has no API key configured; set {PRIMARY_KEY_VAR} on the server.",
        )
    presented = presented_keys(headers)
    if key_matches(presented, valid):
        return None
    reason = "key not recognised" if presented else "no key presented"
    logger.warning("refused %s %s: %s", method, loggable(path), reason)
    return error_response(
        401,
        "unauthorised",
        "A valid API key is required: send it as X-API-Key or Authorization: Bearer.",
        headers=WWW_AUTHENTICATE,
    )


class AuthMiddleware:
    """Answers 401/503 in the error envelope for every route but the public ones."""

    def __init__(self, app: ASGIApp, public_routes: Sequence[BaseRoute] = ()) -> None:
        self.app = app
        self.public_routes = list(public_routes)
        self.public_paths = {
            route.path
            for route in self.public_routes
            if isinstance(route, Route) and not route.param_convertors
        }
        self.patterned = [
            route
            for route in self.public_routes
            if getattr(route, "path", None) not in self.public_paths
        ]

    def _is_public(self, scope: Scope) -> bool:
        if scope["path"] in self.public_paths:
            return True
        return any(route.matches(scope)[0] is not Match.NONE for route in self.patterned)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or self._is_public(scope):
            await self.app(scope, receive, send)
            return
        refusal = check_api_key(Headers(scope=scope), scope["method"], scope["path"])
        if refusal is None:
            await self.app(scope, receive, send)
        else:
            await refusal(scope, receive, send)
