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


_UNSEEN = object()


class _EncodedKeys:
    """`configured_keys()` as bytes, re-derived only when the variables it reads change.

    The variables are still looked at on every request (rotation needs no restart), in the
    values os.environ keeps (`_data`, which its setters replace): decoding them, as reading
    os.environ does, was most of the cost of checking a key. Holding the values seen last, an
    identity check tells whether either variable changed.
    """

    __slots__ = ("_aliases", "_data", "_keys", "_primary")

    def __init__(self) -> None:
        self._data: object = _UNSEEN
        self._primary: object = _UNSEEN
        self._aliases: object = _UNSEEN
        self._keys: tuple[bytes, ...] = ()

    def current(self) -> tuple[bytes, ...]:
        data = getattr(os.environ, "_data", None)
        if (
            data is self._data
            and data.get(_PRIMARY_NAME) is self._primary  # type: ignore[attr-defined]
            and data.get(_ALIASES_NAME) is self._aliases  # type: ignore[attr-defined]
        ):
            return self._keys
        if not isinstance(data, dict):
            return tuple(key.encode() for key in configured_keys())
        primary, aliases = data.get(_PRIMARY_NAME), data.get(_ALIASES_NAME)
        keys = tuple(key.encode() for key in configured_keys())
        if primary is not None and primary.strip():  # else a dev key, not watched here, may count
            self._data, self._primary, self._aliases, self._keys = data, primary, aliases, keys
        return keys


_PRIMARY_NAME = os.environ.encodekey(PRIMARY_KEY_VAR)
_ALIASES_NAME = os.environ.encodekey(ALIASES_VAR)
_encoded_keys = _EncodedKeys()


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


def _matches(presented: Iterable[bytes], valid: Sequence[bytes]) -> bool:
    """Constant-time comparison of every presented key against every valid one."""
    matched = False
    for candidate in presented:
        for key in valid:
            matched |= hmac.compare_digest(candidate, key)
    return matched


def expected_prefix(keys: Sequence[str]) -> str | None:
    """The hint `/health` gives: the first four characters of the primary key, never more."""
    return f"{keys[0][:4]}..." if keys else None


def refusal_for(presented: list[str], method: str, path: str) -> JSONResponse | None:
    """None when a presented key is valid; else the 503/401 answer to send (and a log line)."""
    valid = _encoded_keys.current()
    if valid and _matches([key.encode() for key in presented], valid):
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


_COMMA = ord(",")
"""An int: `bytes in bytes` tries its operand as an int first and pays for the TypeError."""
_STR_WHITESPACE = b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
"""What `str.strip()` strips from ASCII text."""


def _latin1(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def refusal_for_raw(
    x_api_key: bytes | None,
    x_api_keys: bytes | None,
    authorization: bytes | None,
    method: str,
    path: str,
) -> JSONResponse | None:
    """`check_api_key` from the raw header values (the first of each), as the edge reads them.

    The usual request, one ASCII `X-API-Key` and no other key header, is accepted as bytes,
    with no decoding, splitting or encoding; it is the same comparison, at about half the cost.
    Anything else, and any refusal, takes the general path.
    """
    if (
        x_api_key is not None
        and x_api_keys is None
        and authorization is None
        and x_api_key.isascii()
        and _COMMA not in x_api_key
    ):
        key = x_api_key.strip(_STR_WHITESPACE)
        matched = False
        for valid in _encoded_keys.current():
            matched |= hmac.compare_digest(key, valid)
        if matched:
            return None
    presented = presented_from(_latin1(x_api_key), _latin1(x_api_keys), _latin1(authorization))
    return refusal_for(presented, method, path)


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

    def exempt(self, scope: Scope) -> bool:
        """Requests auth lets through unchecked: CORS preflights and public routes."""
        if scope["method"] == "OPTIONS" or scope["path"] in self.paths:
            return True
        return bool(self.patterned) and self.match(scope)


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
        if scope["type"] != "http" or self.public.exempt(scope):
            await self.app(scope, receive, send)
            return
        refusal = check_api_key(Headers(scope=scope), scope["method"], scope["path"])
        if refusal is None:
            await self.app(scope, receive, send)
        else:
            await refusal(scope, receive, send)


def __getattr__(name: str) -> object:
    """0.2.24's helpers under this module's name, loaded on first use (published_auth.py)."""
    from . import published_auth

    if name in published_auth.__all__:
        return getattr(published_auth, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
