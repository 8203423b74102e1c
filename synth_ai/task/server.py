"""0.2.24's module for building and serving an app: `create_task_app` (application.py) and
`run_task_app` (serving.py), with the names 0.2.24 served beside them.

`run_task_app`, `ProxyConfig` and `RubricBundle` load on first use, so building an app from
here imports neither uvicorn nor the proxy.
"""

from __future__ import annotations

from typing import Any

from .application import TaskApp, create_task_app, standard_middleware
from .auth import require_api_key_dependency
from .config import TaskAppConfig


def __getattr__(name: str) -> Any:
    if name == "ProxyConfig":
        from .proxy import ProxyConfig

        return ProxyConfig
    if name == "RubricBundle":
        from .rubrics import RubricBundle

        return RubricBundle
    if name == "run_task_app":
        from .serving import run_task_app

        return run_task_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [  # and, through __getattr__, ProxyConfig, RubricBundle and run_task_app
    "TaskApp",
    "TaskAppConfig",
    "create_task_app",
    "require_api_key_dependency",
    "standard_middleware",
]
