"""Reading a task app's answers: the error envelope as `TaskAppClientError`, JSON bodies,
`Retry-After`, and which statuses are worth sending again. The client, the framework's
check and the remote emitter all read answers this way."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx

RETRY_AFTER_CAP_S = 60.0
EXCERPT_CHARS = 200


class TaskAppClientError(Exception):
    """A task app answered an error (or could not be reached: `status` is then None)."""

    def __init__(self, status: int | None, code: str, message: str, body: Any = None) -> None:
        super().__init__(f"{code}: {message}" if status is None else f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body


def excerpt(response: httpx.Response) -> str:
    """The start of a body on one line, for messages about answers that are not JSON."""
    text = " ".join(response.text[: EXCERPT_CHARS * 2].split())
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "..."


def error_from_response(response: httpx.Response) -> TaskAppClientError:
    """The typed error of an answer in the envelope (or any other error body)."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:500]
    detail = body.get("detail") if isinstance(body, dict) else None
    error = detail.get("error") if isinstance(detail, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code", f"http_{response.status_code}"))
        message = str(error.get("message", ""))
    elif isinstance(detail, list) and detail:  # FastAPI's validation errors
        code = f"http_{response.status_code}"
        message = "; ".join(_field_error(item) for item in detail[:5])
    else:
        code = f"http_{response.status_code}"
        message = detail if isinstance(detail, str) else response.reason_phrase
        if isinstance(body, str) and body.strip():
            message = f"{message}: {excerpt(response)}"
    if code == LOCKED_OUT:
        message = f"{message} Not retried: check the API key (this address sent wrong ones)."
    return TaskAppClientError(response.status_code, code, message, body)


def _field_error(item: Any) -> str:
    """`body.ops: Field required` from one of FastAPI's `{loc, msg}` items."""
    if not isinstance(item, dict):
        return str(item)[:200]
    where = ".".join(str(part) for part in item.get("loc") or ())
    return f"{where}: {item.get('msg', 'invalid')}"[:200] if where else str(item.get("msg"))


def answer_of(response: httpx.Response) -> Any:
    """The decoded body of a final answer, or its error (a redirect left is not followed)."""
    if response.status_code >= 400:
        raise error_from_response(response)
    if response.status_code >= 300:
        location = response.headers.get("location", "(no Location)")
        raise TaskAppClientError(
            response.status_code, "redirect_not_followed", f"redirected to {location}"
        )
    return decoded(response)


def decoded(response: httpx.Response) -> Any:
    """The JSON of a successful answer; anything else (an HTML page from a proxy, a truncated
    body) is a `TaskAppClientError` with the status and an excerpt, never a raw decode error."""
    try:
        return response.json()
    except ValueError:
        kind = response.headers.get("content-type", "no content-type")
        raise TaskAppClientError(
            response.status_code,
            "undecodable_response",
            f"expected JSON, got {kind}: {excerpt(response) or '(empty body)'}",
            response.text[:500],
        ) from None


LOCKED_OUT = "too_many_failed_attempts"
"""The 429 of an address that failed too many key checks (`synth_ai.task.attempts`): final,
since the same key sent again only fails again."""
RETRYABLE = frozenset({429, 502, 503, 504})
"""Answers worth sending again: overloaded or a proxy's gateway failure. A 500 is the app's own
failure (an executor that raised answers `rollout_failed`): sending it again fails again."""
NOTHING_RAN = frozenset({429, 503})
"""The retryable answers that also say the request was not run (overloaded, unavailable): the
only ones a request that is not idempotent is sent again after. A 502 or 504 may come after the
server started it (a rollout past its deadline answers 504 `rollout_timeout`)."""
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
IDEMPOTENCY_KEY = "Idempotency-Key"  # a request with one is stored once: retried as idempotent
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Transport errors raised before any of the request reached the server."""


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds, from either delta-seconds or an HTTP date; None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_CAP_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(when.timestamp() - time.time(), 0.0), RETRY_AFTER_CAP_S)
