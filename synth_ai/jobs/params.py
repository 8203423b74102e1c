"""Reading a jobs request's parameters: bounded integers and numbers, event-name filters and
artifact names, each refused with a 422 that names the parameter (never a 500)."""

from __future__ import annotations

import math
import re

from starlette.requests import Request

from synth_ai.task.errors import TaskAppError, invalid_request

from .artifacts import valid_name
from .models import SSE_NAMES

MAX_SEQ = 2**63 - 1
TYPE_FILTER = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$")


def int_param(
    request: Request, name: str, default: int, minimum: int = 0, maximum: int = MAX_SEQ
) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    return bounded_int(raw, ["query", name], minimum, maximum)


def bounded_int(raw: str, loc: list[str], minimum: int, maximum: int) -> int:
    text = raw.strip()
    value = int(text) if text.isascii() and text.isdigit() and len(text) <= 19 else None
    if value is None or not minimum <= value <= maximum:
        raise invalid_request(
            f"{loc[-1]} must be an integer in [{minimum}, {maximum}].",
            loc=loc,
            msg="not an integer in range",
            type="int_parsing",
        )
    return value


def float_param(request: Request, name: str, default: float, low: float, high: float) -> float:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw[:40])
    except ValueError:
        value = math.nan
    if not low <= value <= high:  # NaN fails this too
        raise invalid_request(
            f"{name} must be a number of seconds in [{low:g}, {high:g}].",
            loc=["query", name],
            msg="not a number in range",
            type="float_parsing",
        )
    return value


def event_names(request: Request) -> list[str] | None:
    """The `types` filter: SSE names (`metric`) or full dotted types (`eval.result`)."""
    raw = request.query_params.get("types")
    names = [part.strip() for part in (raw or "").split(",") if part.strip()]
    unknown = [n for n in names if n not in SSE_NAMES and not TYPE_FILTER.match(n)]
    if unknown or len(names) > 32:
        raise invalid_request(
            "types is a comma-separated list of event names or dotted types (at most 32).",
            loc=["query", "types"],
            msg=f"use {', '.join(SSE_NAMES)} or a dotted type",
            type="enum",
        )
    return names or None


def artifact_name(request: Request) -> str:
    name: str = request.path_params["name"]
    if not valid_name(name):
        raise invalid_request(
            "Artifact names are plain file names.",
            loc=["path", "name"],
            msg="letters, digits, '.', '_' and '-' only; no '..'; at most 128",
            type="string_pattern_mismatch",
        )
    return name


def job_not_found(job_id: str) -> TaskAppError:
    return TaskAppError(404, "job_not_found", f"No job {job_id[:80]!r}.")
