"""Modal objects from a deploy plan (used by the entry `modal deploy` imports).

Secrets come from `modal.Secret.from_name` and from an in-memory `Secret.from_dict`: when the CLI
drives the deploy, from values it hands over through an inherited pipe (never the child's
environment or a file); for a plain `modal deploy modal_entry.py`, from this process's
environment (`Secret.from_local_environ`). Without the key either way, the deploy refuses here
rather than ship an app that answers 503.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from starlette.types import ASGIApp

from synth_ai.task.application import create_task_app
from synth_ai.task.references import get_task_app
from synth_ai.task.registry import TaskAppEntry

from .plan import MODULE_VAR, DeployPlan, ImagePlan
from .settings import KEY_VAR, SECRET_NAMES_VAR, SECRETS_FD_VAR, ModalDeploySettings
from .source import REMOTE_ROOT

SOURCE_IGNORE = ["**/__pycache__", "**/__pycache__/**", "**/*.pyc"]
"""Everything of a package but bytecode: data files next to the code go with it."""


class MissingKeyError(RuntimeError):
    """A deploy would ship no `ENVIRONMENT_API_KEY`: the app would answer 503."""


def task_app_entry(task_app: str, reference: str | None = None) -> TaskAppEntry:
    """The app in the container, where only its source is there (no entry points): its module
    imported first so it registers, then found by id, or by `reference` (a file among the
    sources under `REMOTE_ROOT`, or `module:attribute`) when the app was deployed by one."""
    module = os.environ.get(MODULE_VAR)
    if module:
        importlib.import_module(module)
    if reference is None:
        return get_task_app(task_app)
    if reference.partition(":")[0].endswith(".py"):
        reference = f"{REMOTE_ROOT}/{reference}"
    return get_task_app(reference)


def asgi_factory(task_app: str, reference: str | None = None) -> Callable[[], ASGIApp]:
    """The function Modal calls in the container: build the app's ASGI app."""

    def build() -> ASGIApp:
        return create_task_app(task_app_entry(task_app, reference).config_factory())

    build.__name__ = "web"
    return build


def read_secret_values() -> dict[str, str] | None:
    """Secret values the CLI handed over through an inherited pipe (read once); None when no
    CLI drives this deploy."""
    fd = os.environ.pop(SECRETS_FD_VAR, None)
    if not fd:
        return None
    with os.fdopen(int(fd), encoding="utf-8") as pipe:
        return json.loads(pipe.read() or "{}")


def modal_image(image: ImagePlan) -> Any:
    """The image: base, pip requirements, then the sources as mounts added at container start
    (not image layers, so a source edit does not rebuild it either)."""
    import modal

    built = modal.Image.debian_slim(python_version=image.python_version)
    if image.requirements:
        built = built.pip_install(*image.requirements)
    for source in image.sources:
        if source.is_package:
            built = built.add_local_dir(
                source.local_path, remote_path=source.remote_path, ignore=SOURCE_IGNORE
            )
        else:
            built = built.add_local_file(source.local_path, remote_path=source.remote_path)
    return built


def secrets(
    settings: ModalDeploySettings,
    piped: dict[str, str] | None,
    environ: Mapping[str, str],
) -> list[Any]:
    """Named secrets plus one in-memory secret of `settings.secret_env`; raises
    `MissingKeyError` when neither carries the key."""
    import modal

    found = [modal.Secret.from_name(name) for name in settings.secret_names]
    if piped is not None:
        values: dict[str, str | None] = {
            k: v for k, v in piped.items() if k in settings.secret_env and v
        }
        if values:
            found.append(modal.Secret.from_dict(values))
        sent = set(values)
    else:
        sent = {k for k in settings.secret_env if environ.get(k)}
        if sent:
            found.append(modal.Secret.from_local_environ(sorted(sent)))
    if KEY_VAR not in sent and not settings.secret_names:
        raise MissingKeyError(
            f"{KEY_VAR} is not set and no Modal secret is named, so the deployed app would "
            f"answer 503 to every request. Export {KEY_VAR}=... before `modal deploy "
            f"modal_entry.py`, or create a Modal secret holding it (modal secret create NAME "
            f"{KEY_VAR}=...) and set {SECRET_NAMES_VAR}=NAME; `synth-ai deploy APP "
            "--runtime modal` does either for you."
        )
    return found


def modal_resources(
    plan: DeployPlan,
    piped: dict[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """The `modal.App` and the `app.function(...)` keyword arguments of the web function.

    `include_source=False`: the plan's sources are the only code mounted (Modal would
    otherwise add the entry's package a second time, from wherever it is installed).
    """
    import modal

    app = modal.App(plan.app_name)
    volumes = {
        path: modal.Volume.from_name(name, create_if_missing=True)
        for path, name in plan.settings.volumes.items()
    }
    options = {
        "image": modal_image(plan.image),
        "secrets": secrets(plan.settings, piped, os.environ if environ is None else environ),
        "volumes": volumes,
        "env": dict(plan.function_env),
        "include_source": False,
        **plan.function_options(),
    }
    return app, options
