"""One log line per request: method, path, status, duration and correlation id.

Everything in the line that a client chose is made safe to log first: the path is the raw
(still percent-encoded) one, so `%0A` cannot start a forged line; secrets in the query
(`?token=...`) are masked; control characters are escaped; long values are cut.

`JsonFormatter` writes the same lines (and any other record) as one JSON object each, for
`--log-format json`; it reads the access line's arguments, so the request path builds nothing
more for it.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from starlette.types import Scope

logger = logging.getLogger("synth_ai.task.access")

MAX_TARGET_CHARS = 512
MAX_CID_CHARS = 128
SECRET_PARAMS = frozenset(
    {"token", "key", "api_key", "access_token", "apikey", "api-key", "x-api-key", "password"}
)
"""Query parameters whose values are never logged (compared case-insensitively)."""
MASK = "***"
# Printable ASCII stays, but for space and backslash; all else becomes \xNN (\uNNNN past
# 0xff): one request is one line, its fields split on spaces, and no escape can be forged.
_ESCAPES = {
    code: f"\\x{code:02x}" for code in range(256) if not 0x21 <= code <= 0x7E or code == 0x5C
}


def _escape_char(c: str) -> str:
    code = ord(c)
    if code < 256:
        return _ESCAPES.get(code, c)
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def loggable(text: str, limit: int = MAX_TARGET_CHARS) -> str:
    """`text` escaped and cut to `limit` characters, marked `...(cut:N)` (N its length)."""
    head = text[:limit]
    if not (head.isascii() and head.isprintable() and " " not in head and "\\" not in head):
        head = "".join(map(_escape_char, head))
    if len(text) <= limit and len(head) <= limit:
        return head
    return f"{head[:limit]}...(cut:{len(text)})"


def mask_query(query: str) -> str:
    """The query with the value of every secret-named parameter replaced by `***`."""
    parts = query.split("&")
    for i, part in enumerate(parts):
        name, sep, _ = part.partition("=")
        if sep and unquote_plus(name).strip().lower() in SECRET_PARAMS:
            parts[i] = f"{name}={MASK}"
    return "&".join(parts)


def request_target(scope: Scope) -> str:
    """The path as sent plus the masked query, escaped and cut: safe to put in a log line."""
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else scope.get("path", "")
    query = scope.get("query_string", b"").decode("latin-1")
    return loggable(f"{path}?{mask_query(query)}" if query else path, MAX_TARGET_CHARS)


def log_request(scope: Scope, status: int, started: float) -> None:
    """Log the request's one line; the correlation id is what the route put in its state."""
    cid = scope.get("state", {}).get("correlation_id")
    logger.info(
        "%s %s %d %.1fms cid=%s",
        loggable(scope["method"], 32),
        request_target(scope),
        status,
        (time.perf_counter() - started) * 1000,
        loggable(str(cid), MAX_CID_CHARS) if cid is not None else "-",
    )


def iso_utc(ts: float, timespec: str = "milliseconds") -> str:
    """Unix seconds as ISO 8601 in UTC: `2025-05-01T18:22:40.123Z`."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def json_line(
    event: str, fields: dict[str, Any], level: str = "info", ts: float | None = None
) -> str:
    """One log line as JSON: `ts`, `level` and `event` first, then `fields`."""
    line = {"ts": iso_utc(time.time() if ts is None else ts), "level": level, "event": event}
    line.update(fields)
    return json.dumps(line, default=str)


class JsonFormatter(logging.Formatter):
    """Each record as one JSON object: an access line as `event: access` with its fields, any
    other record as `event: log` with its logger and message."""

    def format(self, record: logging.LogRecord) -> str:
        args = record.args
        fields: dict[str, Any]
        if record.name == logger.name and isinstance(args, tuple) and len(args) == 5:
            method, target, status, duration_ms, cid = args
            fields = {
                "method": method,
                "path": target,
                "status": status,
                "duration_ms": round(float(duration_ms), 1),  # type: ignore[arg-type]
            }
            if cid != "-":
                fields["cid"] = cid
            event = "access"
        else:
            fields = {"logger": record.name, "message": record.getMessage()}
            if record.exc_info:
                fields["exc"] = self.formatException(record.exc_info)
            event = "log"
        return json_line(event, fields, record.levelname.lower(), record.created)
