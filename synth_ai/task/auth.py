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


_RAW_NAMES = (os.fsencode(PRIMARY_KEY_VAR), os.fsencode(ALIASES_VAR))


def _key_sources() -> tuple[object, object]:
    """The primary and alias variables as they are now, in a form only compared for change.

    On POSIX, os.environ keeps raw bytes (`_data`, which its setters update) and decodes every
    value it hands out, which was most of the cost of checking a key; the raw values tell a
    change just as well. Elsewhere, the decoded values.
    """
    data = getattr(os.environ, "_data", None) if os.name == "posix" else None
    if isinstance(data, dict):
        return data.get(_RAW_NAMES[0]), data.get(_RAW_NAMES[1])
    return os.environ.get(PRIMARY_KEY_VAR), os.environ.get(ALIASES_VAR)


class _EncodedKeys:
    """`configured_keys()` as bytes, re-derived only when the variables it reads change.

    The variables are still looked at on every request (rotation needs no restart); what is
    saved is decoding, parsing and encoding them again when they have not changed.
    """

    __slots__ = ("_keys", "_source")

    def __init__(self) -> None:
        self._source: tuple[object, object] | None = None
        self._keys: tuple[bytes, ...] = ()

    def current(self) -> tuple[bytes, ...]:
        source = _key_sources()
        if source == self._source:
            return self._keys
        keys = tuple(key.encode() for key in configured_keys())
        primary = source[0]
        if isinstance(primary, str | bytes) and primary.strip():  # else a dev key may stand in
            self._source, self._keys = source, keys
        return keys


_encoded_keys = _EncodedKeys()


def presented_from(
    x_api_key: str | None, x_api_keys: str | None, authorization: str | None
) -> list[str]:
    """Keys sent as `X-API-Key`, `X-API-Keys` (comma-separated) or a bearer token."""
    if x_api_keys is None and authorization is None and x_api_key and "," not in x_api_key:
        key = x_api_key.strip()  # the usual request: one X-API-Key
        return [key] if key else []
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


def _matches(presented: Iterable[str], valid: Sequence[bytes]) -> bool:
    matched = False
    for candidate in presented:
        encoded = candidate.encode()
        for key in valid:
            matched |= hmac.compare_digest(encoded, key)
    return matched


def key_matches(presented: Iterable[str], valid: Sequence[str]) -> bool:
    """Constant-time comparison of every presented key against every valid one."""
    return _matches(presented, [key.encode() for key in valid])


def expected_prefix(keys: Sequence[str]) -> str | None:
    """The hint `/health` gives: the first four characters of the primary key, never more."""
    return f"{keys[0][:4]}..." if keys else None


def refusal_for(presented: list[str], method: str, path: str) -> JSONResponse | None:
    """None when a presented key is valid; else the 503/401 answer to send (and a log line)."""
    valid = _encoded_keys.current()
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


class PublicRoutes:
    """The routes that need no key: plain paths by a set lookup, patterned ones by matching."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self.paths = {
            route.path
            for route in routes
            if isinstance(route, Route) and not route.param_convertors
        }
        self.patterned = [
            route for route in routes if getattr(route, "path", None) not in self.paths
        ]

    def match(self, scope: Scope) -> bool:
        if scope["path"] in self.paths:
            return True
        return bool(self.patterned) and any(
            route.matches(scope)[0] is not Match.NONE for route in self.patterned
        )


def exempt(scope: Scope, public: PublicRoutes) -> bool:
    """Requests auth lets through unchecked: CORS preflights and public routes."""
    return scope["method"] == "OPTIONS" or public.match(scope)


class AuthMiddleware:
    """Answers 401/503 in the error envelope for every route but the public ones.

    `standard_middleware` folds this check into its one edge layer; the class stays for
    stacks that need auth as a layer of its own (after CORS) and for subclasses.
    """

    def __init__(self, app: ASGIApp, public_routes: Sequence[BaseRoute] = ()) -> None:
        self.app = app
        self.public = PublicRoutes(public_routes)

    def _is_public(self, scope: Scope) -> bool:
        return self.public.match(scope)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or exempt(scope, self.public):
            await self.app(scope, receive, send)
            return
        refusal = check_api_key(Headers(scope=scope), scope["method"], scope["path"])
        if refusal is None:
            await self.app(scope, receive, send)
        else:
            await refusal(scope, receive, send)
