"""Reading a JSON request body strictly: JSON only, and only finite numbers.

Python's `json` accepts `NaN`, `Infinity` and literals such as `1e400` that overflow to
infinity; none of those is JSON, and stored they break every strict reader after them. They are
refused here, at the edge, with a 4xx in the error envelope.
"""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from .errors import TaskAppError, invalid_request

M = TypeVar("M", bound=BaseModel)


def require_json(content_type: str) -> None:
    """415 unless the media type is `application/json` or `*+json`."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise TaskAppError(
            415, "unsupported_media_type", "Send the request body as application/json."
        )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} does not fit a finite float")
    return value


def loads_strict(body: bytes | str) -> Any:
    """Parse JSON; 400 `invalid_json` when malformed, 422 for a non-finite number."""
    try:
        return json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except ValueError as exc:
        reason = str(exc)
        if "JSON number" in reason or "finite float" in reason:
            raise invalid_request(
                "Numbers must be finite: NaN, Infinity and overflowing literals are refused.",
                loc=["body", *_where_non_finite(body)],
                msg=reason.split(":", 1)[0][:120],
                type="finite_number",
            ) from None
        raise TaskAppError(400, "invalid_json", "The request body is not valid JSON.") from None
    except RecursionError:
        raise TaskAppError(400, "invalid_json", "The request body nests too deeply.") from None


def _where_non_finite(body: bytes | str) -> list[str | int]:
    try:
        return _non_finite_path(json.loads(body)) or []
    except (ValueError, RecursionError):  # unreadable past the refusal, or too deep to say
        return []


def _non_finite_path(document: Any) -> list[str | int] | None:
    """Where the first non-finite number of a (leniently parsed) document stands (None where
    there is none), so the 422 names it; read only on that refusal."""
    if isinstance(document, float):
        return None if math.isfinite(document) else []
    if isinstance(document, dict):
        items: Any = document.items()
    elif isinstance(document, list):
        items = enumerate(document)
    else:
        return None
    for key, value in items:
        path = _non_finite_path(value)
        if path is not None:
            return [key, *path]
    return None


NUMBER_SHAPES = bytes.maketrans(b"0123456789E", b"0000000000e")
"""Every digit read as 0 and `E` as `e` (with `+` and `-` dropped): a body's numbers reduced
to the shapes `maybe_non_finite` looks for, so four substring tests do a regex's work."""


def maybe_non_finite(body: bytes) -> bool:
    """Whether `body` may hold a number `validate_strict` refuses or `json` cannot read:
    `NaN`, `Infinity` (the only other spellings pydantic's parser takes), a run of 16 digits
    or an exponent of 3 digits. A JSON number without those has at most 15 digits before and
    after its point and an exponent of at most 99, so it is finite (under 1e15 * 1e99), and
    both parsers read it alike. Dropping `+` and `-` only joins bytes, so nothing is missed; a
    match inside a string only costs the plain path."""
    shapes = body.translate(NUMBER_SHAPES, b"+-")
    return (
        b"NaN" in shapes
        or b"Infinity" in shapes
        or b"0000000000000000" in shapes
        or b"e000" in shapes
    )


def validate_strict(model: type[M], body: bytes) -> M:
    """`model` from a strict JSON `body`, as `validate_strict_plain` answers it. A body with
    no number that could be non-finite is parsed and validated by pydantic-core in one pass;
    any failure there is answered by the plain path, so refusals are the same to the byte.
    The one pass saves ~32k instructions of a /rollout on asyncio + h11 (3%) and ~37k on
    uvloop + httptools (7%): bench/RESULTS.md, rollout path section.
    """
    if not maybe_non_finite(body):
        try:
            return model.model_validate_json(body)
        except ValidationError:
            pass
    return validate_strict_plain(model, body)


def validate_strict_plain(model: type[M], body: bytes) -> M:
    """`model` from a strict JSON `body`: a non-finite number is refused wherever it is, in a
    typed field (the model's own 422, naming it) or a free-form one (`loads_strict`'s 422);
    `ValidationError` for the rest. pydantic's JSON parser alone takes `NaN` into `Any`."""
    try:
        document = loads_strict(body)
    except TaskAppError as exc:
        if exc.status == 422:
            model.model_validate_json(body)
        raise
    return model.model_validate(document)


async def json_body(request: Request) -> Any:
    """The request's JSON body (`{}` when empty), refused unless it is strict JSON."""
    body = await request.body()
    if not body:
        return {}
    require_json(request.headers.get("content-type", ""))
    return loads_strict(body)
