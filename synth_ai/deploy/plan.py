"""The deploy plan: everything a Modal deployment will be made of, decided before any of it is.

The CLI builds the plan once, prints it for `--dry-run`, checks it (`checks.py`), and hands it to
the `modal deploy` child as JSON; the entry builds the Modal objects from that same plan
(`modal.py`). So what `--dry-run` shows is what gets built. The plan holds names only: secret
values never enter it.

The image part depends on the Python version, the requirements and the sources alone; settings
(containers, concurrency, GPU, region, environment) live in the function part, so changing one
does not rebuild the image.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import PurePath
from typing import Any

from synth_ai.task.references import get_task_app

from .settings import APP_VAR, SETTINGS_VAR, ModalDeploySettings
from .source import (
    LocalSource,
    app_requirements,
    local_source,
    own_requirements,
    shipped_by_this_package,
)

PLAN_VAR = "SYNTH_MODAL_PLAN"
MODULE_VAR = "SYNTH_TASK_APP_MODULE"
BASE_IMAGE = "debian_slim"
OTLP_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


@dataclass(frozen=True, slots=True)
class ImagePlan:
    python_version: str
    requirements: tuple[str, ...]
    """pip requirements: this package's (from its metadata) and the app's, never its own name."""
    sources: tuple[LocalSource, ...]
    package: str | None = None
    """An explicit pip spec asked for with `--package` (the only index lookup of this name)."""
    base: str = BASE_IMAGE


@dataclass(frozen=True, slots=True)
class DeployPlan:
    settings: ModalDeploySettings
    """With `task_app` set to the app's id (not an alias)."""
    app_module: str
    """The module that registers the app, imported in the container (no entry points there)."""
    extras: tuple[str, ...]
    image: ImagePlan
    function_env: dict[str, str] = field(default_factory=dict)

    @property
    def app_name(self) -> str:
        return self.settings.app_name()

    @property
    def secret_env(self) -> tuple[str, ...]:
        return self.settings.secret_env

    def function_options(self) -> dict[str, Any]:
        """`app.function(...)` options that need no Modal objects (all outside the image)."""
        s = self.settings
        region: str | list[str] | None = list(s.region) if len(s.region) > 1 else None
        if len(s.region) == 1:
            region = s.region[0]
        return {
            "min_containers": s.min_containers,
            "max_containers": s.max_containers,
            "scaledown_window": s.scaledown_window,
            "timeout": s.timeout_s,
            "cpu": s.cpu,
            "memory": s.memory_mb,
            "gpu": s.gpu,
            "region": region,
        }

    def concurrency(self) -> dict[str, int | None]:
        """`@modal.concurrent(...)` arguments."""
        return {
            "max_inputs": self.settings.max_inputs,
            "target_inputs": self.settings.target_inputs,
        }

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DeployPlan:
        data = json.loads(text)
        image = data["image"]
        return cls(
            settings=ModalDeploySettings.from_json(json.dumps(data["settings"])),
            app_module=data["app_module"],
            extras=tuple(data["extras"]),
            image=ImagePlan(
                python_version=image["python_version"],
                requirements=tuple(image["requirements"]),
                sources=tuple(LocalSource(**source) for source in image["sources"]),
                package=image["package"],
                base=image["base"],
            ),
            function_env=dict(data["function_env"]),
        )


def inferred_extras(settings: ModalDeploySettings) -> tuple[str, ...]:
    """Extras the deployment needs: `otlp` when an OTLP endpoint goes to the container."""
    names = set(settings.secret_env) | set(settings.env)
    extras = list(settings.extras)
    if names & set(OTLP_ENDPOINT_VARS) and "otlp" not in extras:
        extras.append("otlp")
    return tuple(extras)


def container_reference(reference: str) -> str | None:
    """`reference` as the container resolves it: a file by its name among the mounted sources,
    `module:attribute` as it is; None for a registered name (found by id there too)."""
    location, colon, name = reference.partition(":")
    if location.endswith(".py"):
        return PurePath(location).name + colon + name
    return reference if colon else None


def build_plan(settings: ModalDeploySettings) -> DeployPlan:
    """The plan for `settings` from this install. Raises `KeyError` for an unknown app and
    `SourceError` when a module or this package's metadata cannot be found."""
    entry = get_task_app(settings.task_app)
    settings = settings.with_task_app(entry.app_id, container_reference(settings.task_app))
    app_module = entry.config_factory.__module__
    top_level = app_module.split(".")[0]
    extras = inferred_extras(settings)
    modules = [] if settings.package else ["synth_ai"]
    if top_level != "synth_ai" and not (settings.package and shipped_by_this_package(top_level)):
        modules.append(top_level)
    requirements = [settings.package] if settings.package else own_requirements(extras)
    # 0.2.24's `TaskAppEntry(modal=ModalDeploymentConfig(pip_packages=...))` names the app's own
    for requirement in [*app_requirements(top_level), *getattr(entry.modal, "pip_packages", ())]:
        if requirement not in requirements:
            requirements.append(requirement)
    image = ImagePlan(
        python_version=settings.python_version,
        requirements=tuple(requirements),
        sources=tuple(local_source(module) for module in modules),
        package=settings.package,
    )
    function_env = {  # ours last: `--env` cannot redirect the container to another app
        **settings.env,
        APP_VAR: entry.app_id,
        MODULE_VAR: app_module,
        SETTINGS_VAR: settings.to_json(),
    }
    return DeployPlan(settings, app_module, extras, image, function_env)


def plan_from_environment(environ: Mapping[str, str] | None = None) -> DeployPlan:
    """The plan the CLI handed over, or one built here for a plain `modal deploy`."""
    environ = os.environ if environ is None else environ
    if environ.get(PLAN_VAR):
        return DeployPlan.from_json(environ[PLAN_VAR])
    return build_plan(ModalDeploySettings.from_environment(environ))


def describe(plan: DeployPlan, command: list[str] | None = None) -> list[str]:
    """The plan as lines for people: names only, never a secret value."""
    s, image = plan.settings, plan.image
    options = {k: v for k, v in plan.function_options().items() if v is not None}
    lines = [
        f"Deploy plan: task app {s.task_app!r} as Modal app {plan.app_name!r}",
        f"  image:        modal.Image.{image.base}(python_version={image.python_version!r})",
    ]
    if image.package:
        lines.append(f"  package:      {image.package} (from the index, as asked by --package)")
    lines.append("  pip install:  " + (", ".join(image.requirements) or "(nothing)"))
    for source in image.sources:
        lines.append(
            f"  local source: {source.module}: {source.local_path} -> {source.remote_path}"
        )
    if plan.extras:
        lines.append("  extras:       " + ", ".join(plan.extras))
    lines.append("  function:     " + ", ".join(f"{k}={v!r}" for k, v in options.items()))
    lines.append(
        "  concurrency:  " + ", ".join(f"{k}={v!r}" for k, v in plan.concurrency().items())
    )
    lines.append("  environment:  " + ", ".join(sorted(plan.function_env)))
    named = ", ".join(s.secret_names) or "(none)"
    lines.append(
        f"  secrets:      Modal secrets {named}; from this environment (names only): "
        + (", ".join(plan.secret_env) or "(none)")
    )
    if s.volumes:
        lines.append(
            "  volumes:      " + ", ".join(f"{path}={name}" for path, name in s.volumes.items())
        )
    if command:
        lines.append("  command:      " + shlex.join(command))
    return lines
