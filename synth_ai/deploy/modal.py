"""Builds a `modal.App` serving a registered task app (used by `modal_entry.py` and the CLI).

Secrets come from `modal.Secret.from_name` and, when asked, from a `Secret.from_dict` built in
memory from named environment variables. At deploy time those values reach this process only
through an inherited pipe, never through its environment or a file.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp

from synth_ai import __version__
from synth_ai.task.registry import TaskAppEntry, get_task_app
from synth_ai.task.server import create_task_app

from .settings import APP_VAR, SECRETS_FD_VAR, SETTINGS_VAR, ModalDeploySettings

MODULE_VAR = "SYNTH_TASK_APP_MODULE"

ROOT = Path(__file__).resolve().parents[2]


def task_app_entry(task_app: str) -> TaskAppEntry:
    """The registered app, importing its module first where entry points are not installed
    (in the container only the source is there)."""
    module = os.environ.get(MODULE_VAR)
    if module:
        importlib.import_module(module)
    return get_task_app(task_app)


def asgi_factory(task_app: str) -> Callable[[], ASGIApp]:
    """The function Modal calls in the container: build the registered app's ASGI app."""

    def build() -> ASGIApp:
        entry = task_app_entry(task_app)
        return create_task_app(entry.config_factory())

    build.__name__ = "web"
    return build


def read_secret_values() -> dict[str, str]:
    """Secret values handed over by the CLI through an inherited pipe (once; empty if none)."""
    fd = os.environ.pop(SECRETS_FD_VAR, None)
    if not fd:
        return {}
    with os.fdopen(int(fd), encoding="utf-8") as pipe:
        return json.loads(pipe.read() or "{}")


def function_options(settings: ModalDeploySettings) -> dict[str, Any]:
    """The `app.function(...)` options that do not need Modal objects, for inspection."""
    return {
        "min_containers": settings.min_containers,
        "max_containers": settings.max_containers,
        "timeout": settings.timeout_s,
        "cpu": settings.cpu,
        "memory": settings.memory_mb,
    }


def modal_resources(
    settings: ModalDeploySettings, secret_values: dict[str, str] | None = None
) -> tuple[Any, dict[str, Any]]:
    """The `modal.App` and the `app.function(...)` keyword arguments for the web function.

    `modal_entry.py` applies them at module scope, where Modal expects the function to live.
    """
    import modal

    entry = task_app_entry(settings.task_app)
    app = modal.App(settings.app_name(entry.app_id))
    if not modal.is_local():  # in the container, Modal hydrates these from the deployment
        return app, {}
    app_module = entry.config_factory.__module__.split(".")[0]
    image = modal.Image.debian_slim(python_version=settings.python_version)
    pyproject = ROOT / "pyproject.toml"
    package = settings.package or (None if pyproject.is_file() else f"synth-ai=={__version__}")
    if package:  # a pinned release (also when running from an installed wheel)
        image = image.pip_install(package)
        local_modules = []
    else:
        image = image.pip_install_from_pyproject(str(pyproject))
        local_modules = ["synth_ai"]
    if app_module != "synth_ai":
        local_modules.append(app_module)
    image = image.env(
        {APP_VAR: entry.app_id, MODULE_VAR: app_module, SETTINGS_VAR: settings.to_json()}
    ).add_local_python_source(*local_modules)

    secrets = [modal.Secret.from_name(name) for name in settings.secret_names]
    values = {k: v for k, v in (secret_values or {}).items() if k in settings.secret_env}
    if values:
        secrets.append(modal.Secret.from_dict(values))
    volumes = {
        path: modal.Volume.from_name(name, create_if_missing=True)
        for path, name in settings.volumes.items()
    }
    options = {"image": image, "secrets": secrets, "volumes": volumes, **function_options(settings)}
    return app, options
