"""0.2.24's key helpers (`synth_ai.task.auth` serves them), over this project's key check.

`require_api_key_dependency` refuses with 401 (0.2.24 answered 400) and, like every refusal
here, never echoes a key or any part of one (0.2.24 answered the first 15 characters of both
the expected and the presented keys).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request

from .auth import configured_keys, presented_keys, refusal_for


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


__all__ = [
    "allowed_environment_api_keys",
    "is_api_key_header_authorized",
    "normalize_environment_api_key",
    "require_api_key_dependency",
]
