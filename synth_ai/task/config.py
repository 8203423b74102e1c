"""`TaskAppConfig`: everything an author states about a task app, in one object."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from synth_ai.storage.url import DatabaseURL, parse_database_url

from .contracts import RolloutRequest, RolloutResponse, RubricInfo, TaskInfo
from .credentials import DEFAULT_CREDENTIALS, CredentialMap
from .datasets import TaskDatasetRegistry

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from .context import RolloutContext
    from .proxy import ProxyConfig
    from .rubrics import RubricBundle

RolloutResult = RolloutResponse | dict[str, Any]
RolloutExecutor = Callable[
    ["RolloutRequest", "RolloutContext"], RolloutResult | Awaitable[RolloutResult]
]
TaskInstanceProvider = Callable[
    [Sequence[int]], Sequence[TaskInfo | dict[str, Any]] | Awaitable[Sequence[TaskInfo]]
]
Hook = Callable[[], Any]


@dataclass(slots=True)
class TaskAppConfig:
    """What `create_task_app` builds a task app from.

    `rollout` may be sync (run in a worker thread) or async (run on the event loop). So may
    `describe_taskset`, `provide_task_instances` and the startup/shutdown hooks. It takes
    `(request, context)`; 0.2.24's `(request, fastapi_request)` form works too (see
    `published.takes_http_request`).
    Extra `routes` are protected by the API key like the standard ones; `public_routes` are not.
    """

    app_id: str
    name: str
    description: str
    base_task_info: TaskInfo
    rollout: RolloutExecutor
    describe_taskset: Callable[[], Any] | None = None
    provide_task_instances: TaskInstanceProvider | None = None
    rubrics: RubricInfo | RubricBundle | None = None
    datasets: TaskDatasetRegistry = field(default_factory=TaskDatasetRegistry)
    routes: Sequence[BaseRoute] = ()
    public_routes: Sequence[BaseRoute] = ()
    middleware: Sequence[Middleware] = ()
    startup: Sequence[Hook] = ()
    shutdown: Sequence[Hook] = ()
    cors_origins: Sequence[str] | None = ()
    require_api_key: bool = True
    max_concurrent_rollouts: int = 32
    max_queued_rollouts: int = 128
    max_rollout_seconds: float = 600.0
    max_request_bytes: int = 4 * 1024 * 1024
    max_seeds_per_request: int = 1000
    tracing: bool | None = None
    """Record a trace session per rollout; None follows `TASKAPP_TRACING_ENABLED`."""
    trace_db: str | os.PathLike[str] | DatabaseURL | None = None
    """The trace store: a SQLite path or `sqlite:///` URL, or a `postgresql://` URL; None
    follows `TASKAPP_TRACE_DB`, else `traces/v3/synth_ai.db`."""
    sft_output_dir: str | os.PathLike[str] | None = None
    """Where SFT JSONL is appended per LLM call; None follows `TASKAPP_SFT_OUTPUT_DIR`."""
    tracer_provider: TracerProvider | None = None
    """OpenTelemetry provider for rollout spans; None builds an OTLP one when configured."""
    credentials: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_CREDENTIALS))
    """Inference destination (host, or http(s) URL prefix) -> NAME of the environment variable
    whose key `context.http` attaches there; requests never choose. `{}` attaches none."""
    # 0.2.24's names (COMPATIBILITY.md), beside the ones above
    dataset_registry: TaskDatasetRegistry | None = None
    """0.2.24's name for `datasets`; when given, it is the app's registry."""
    routers: Sequence[Any] = ()
    """FastAPI `APIRouter`s (FastAPI is the author's dependency): served behind the key."""
    startup_hooks: Sequence[Hook] = ()
    """Run after `startup`; a hook taking an argument is given the app, as in 0.2.24."""
    shutdown_hooks: Sequence[Hook] = ()
    proxy: ProxyConfig | None = None
    """Vendor proxy routes (`/proxy/v1/chat/completions`, `/proxy/groq/...`), behind the key."""
    app_state: MutableMapping[str, Any] = field(default_factory=dict)
    """Set on `app.state` before startup; a `(request, fastapi_request)` executor reads it as
    `fastapi_request.app.state.<name>`."""
    expose_debug_env: bool = False
    """Serve `GET /debug/env`: which keys are set (never any part of one)."""

    def __post_init__(self) -> None:
        if self.dataset_registry is not None:
            self.datasets = self.dataset_registry
        if self.cors_origins is None:  # 0.2.24's "no CORS"
            self.cors_origins = ()
        if self.max_concurrent_rollouts < 1:
            raise ValueError("max_concurrent_rollouts must be at least 1")
        if self.max_queued_rollouts < 0:
            raise ValueError("max_queued_rollouts must not be negative")
        if self.max_rollout_seconds <= 0 or self.max_request_bytes <= 0:
            raise ValueError("max_rollout_seconds and max_request_bytes must be positive")
        if "*" in self.cors_origins:
            raise ValueError("cors_origins is an explicit allow-list; '*' is not accepted")
        CredentialMap(self.credentials)  # raises ValueError naming a malformed entry
        if self.trace_db is not None and not isinstance(self.trace_db, DatabaseURL):
            parse_database_url(self.trace_db)  # a scheme no engine has fails here, not later
