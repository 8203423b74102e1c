"""The one error envelope (DESIGN.md 3.3) and the exceptions that produce it.

Every error a task app answers has the shape
`{"detail": {"error": {"code": "<snake_case>", "message": "<sentence>", ...extra}}}`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .access_log import loggable

logger = logging.getLogger("synth_ai.task")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorised",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "overloaded",
}


class TaskAppError(Exception):
    """An error answered to the caller in the envelope, with its HTTP status and code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.extra = extra

    def to_response(self) -> JSONResponse:
        body = error_body(self.code, self.message, **self.extra)
        return JSONResponse(body, status_code=self.status, headers=self.headers)


class InfrastructureError(Exception):
    """A failure of something the task depends on (inference endpoint down, timeout).

    Raised from an executor, it becomes a 200 rollout response whose
    `metrics.details.infra_error` says what failed, so optimizers do not read it as reward 0.
    """

    def __init__(self, kind: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, **self.extra}


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"detail": {"error": {"code": code, "message": message, **extra}}}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, **extra), status_code=status, headers=headers)


def invalid_request(
    message: str, *, loc: Sequence[str | int], msg: str, type: str = "value_error"
) -> TaskAppError:
    """A 422 `invalid_request` naming the one field at fault, shaped like pydantic's errors."""
    return TaskAppError(
        422, "invalid_request", message, errors=[{"loc": list(loc), "msg": msg, "type": type}]
    )


def validation_error(
    exc: ValidationError, message: str = "The request is invalid."
) -> TaskAppError:
    """A 422 `invalid_request` listing each problem as `{loc, msg, type}` (inputs not echoed)."""
    errors = [
        {"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]} for err in exc.errors()
    ]
    return TaskAppError(422, "invalid_request", message, errors=errors)


def error_payload(
    code: str, message: str, *, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The inside of the envelope, `{"error": {...}}` (0.2.24's name)."""
    return error_body(code, message, **dict(extra or {}))["detail"]


def http_exception(
    status_code: int,
    code: str,
    message: str,
    *,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> HTTPException:
    """An HTTPException whose answer is the envelope, here and in a plain FastAPI app alike
    (0.2.24's helper; Starlette's class, which FastAPI's subclasses, so FastAPI is not needed).
    """
    detail = error_payload(code, message, extra=extra)
    return HTTPException(status_code, detail=detail, headers=dict(headers or {}) or None)  # type: ignore[arg-type]


def json_error_response(
    status_code: int,
    code: str,
    message: str,
    *,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The envelope as a response (0.2.24's helper)."""
    return error_response(status_code, code, message, headers=headers, **dict(extra or {}))


_ROUTING_PHRASES = frozenset({"Not Found", "Method Not Allowed"})
"""The details Starlette's router gives its own 404 and 405, which the envelope says better."""


def from_http_exception(exc: HTTPException, request: Request | None = None) -> TaskAppError:
    """The envelope an HTTPException stands for, with its status: its detail when that is
    already `{"error": {"code", "message", ...}}` (what `http_exception` makes), else a code
    from the status and the detail as the message."""
    detail = exc.detail
    error = detail.get("error") if isinstance(detail, Mapping) else None
    if isinstance(error, Mapping) and isinstance(error.get("code"), str):
        answer = TaskAppError(
            exc.status_code, error["code"], str(error.get("message", "")), headers=exc.headers
        )
        # set, not passed: an extra may be named like a parameter (0.2.24's proxy sends `status`)
        answer.extra = {k: v for k, v in error.items() if k not in ("code", "message")}
        return answer
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = str(detail)
    if request is not None and exc.status_code in (404, 405) and message in _ROUTING_PHRASES:
        message = {
            404: f"No route {request.url.path}.",
            405: f"{request.method} is not allowed on {request.url.path}.",
        }[exc.status_code]
    return TaskAppError(exc.status_code, code, message, headers=exc.headers)


async def handle_task_app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TaskAppError)
    return exc.to_response()


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return from_http_exception(exc, request).to_response()


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    path = loggable(request.url.path)
    logger.error("unhandled error on %s %s", request.method, path, exc_info=exc)
    return error_response(500, "internal_error", "The task app failed to answer this request.")


EXCEPTION_HANDLERS = {
    TaskAppError: handle_task_app_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
