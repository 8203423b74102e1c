"""What a server prints once it listens: where it is, its routes, whether a key is needed and
where its data goes, so whoever started it sees what they started. A few lines on stderr, or
one JSON object with `--log-format json`; never a key, never a password.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route

from synth_ai.storage.url import DatabaseURL

from .access_log import json_line, mask_query
from .auth import PRIMARY_KEY_VAR, configured_keys

LOG_FORMATS = ("text", "json")


def base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def safe_location(url: DatabaseURL) -> str:
    """A store's location to print: its password masked, in the netloc and in the query."""
    shown = urlsplit(str(url))  # str() masks the netloc's password
    if url.path is not None or not shown.query:
        return str(url)
    return urlunsplit(shown._replace(query=mask_query(shown.query)))


def route_names(routes: Iterable[BaseRoute]) -> list[str]:
    """`GET /health`, `POST /rollout`, `/ui/*` (a mount): each route once, in routing order."""
    names: list[str] = []
    for route in routes:
        if isinstance(route, Route):
            methods = sorted((route.methods or {"GET"}) - {"HEAD"}) or ["HEAD"]
            names.append(f"{'|'.join(methods)} {route.path}")
        elif isinstance(route, Mount):
            names.append(f"{route.path}/*")
    return list(dict.fromkeys(names))


def auth_state(required: bool) -> dict[str, Any]:
    """Whether a key is required and how many are configured (never which)."""
    return {"required": required, "keys_configured": len(configured_keys()) if required else 0}


def task_app_banner(app: Starlette, url: str) -> dict[str, Any]:
    """A served task app (built by `create_task_app`) as the banner's fields."""
    routes = app.state.task_app
    config, tracing = routes.config, routes.runner.tracing
    return {
        "server": "task_app",
        "app_id": config.app_id,
        "name": config.name,
        "url": url,
        "routes": route_names(app.routes),
        "auth": auth_state(config.require_api_key),
        "tracing": {
            "enabled": bool(tracing.enabled),
            "engine": tracing.db.engine if tracing.db is not None else None,
            "db": safe_location(tracing.db) if tracing.db is not None else None,
            "sft_dir": str(tracing.sft_dir) if tracing.enabled and tracing.sft_dir else None,
        },
    }


def jobs_banner(app: Starlette, url: str, tenants: int = 0) -> dict[str, Any]:
    """A jobs server (built by `create_jobs_app`) as the banner's fields."""
    service = app.state.jobs
    return {
        "server": "jobs",
        "url": url,
        "routes": route_names(app.routes),
        "auth": {**auth_state(True), "tenant_keys": tenants},
        "event_log": {"engine": service.log.url.engine, "db": safe_location(service.log.url)},
        "artifacts": str(service.artifacts.root),
        "dashboard": f"{url}/ui/",
    }


def _auth_text(auth: dict[str, Any]) -> str:
    if not auth["required"]:
        return "off: every route is open (require_api_key=False)"
    count = auth["keys_configured"]
    tenants = auth.get("tenant_keys")
    extra = f"; {tenants} tenant key(s)" if tenants else ""
    if not count:
        return (
            f"API key required, but none is configured: protected routes answer 503 "
            f"(set {PRIMARY_KEY_VAR}){extra}"
        )
    return f"API key required ({count} key(s) configured{extra})"


def _store_text(engine: str | None, db: str | None) -> str:
    return f"{'PostgreSQL' if engine == 'postgresql' else 'SQLite'} {db}"


def banner_text(fields: dict[str, Any]) -> str:
    """The banner as a few human lines."""
    auth = _auth_text(fields["auth"])
    if fields["server"] == "jobs":
        log = fields["event_log"]
        return "\n".join(
            [
                f"synth-ai jobs server at {fields['url']}",
                f"  routes: {len(fields['routes'])}: the jobs API under /api/jobs, its event "
                f"streams, the dashboard at {fields['dashboard']}; /openapi.json lists them",
                f"  auth: {auth}",
                f"  event log: {_store_text(log['engine'], log['db'])}; "
                f"artifacts in {fields['artifacts']}",
            ]
        )
    tracing = fields["tracing"]
    if tracing["enabled"]:
        traced = _store_text(tracing["engine"], tracing["db"])
        if tracing["sft_dir"]:
            traced += f"; SFT JSONL in {tracing['sft_dir']}"
    else:
        traced = "off"
    return "\n".join(
        [
            f"synth-ai task app {fields['app_id']} ({fields['name']}) at {fields['url']}",
            f"  routes: {', '.join(fields['routes'])}",
            f"  auth: {auth}",
            f"  tracing: {traced}",
        ]
    )


def print_banner(fields: dict[str, Any], log_format: str = "text") -> None:
    """Write the banner to stderr, as text lines or one JSON line (`event: startup`)."""
    text = json_line("startup", fields) if log_format == "json" else banner_text(fields)
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def print_notice(message: str, log_format: str = "text", level: str = "info") -> None:
    """One line a command says before it serves, in the server's log format."""
    text = json_line("notice", {"message": message}, level) if log_format == "json" else message
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
