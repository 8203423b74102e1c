"""0.2.24's module for the app registry: the same registry as `registry.py`, and
`ModalDeploymentConfig`, which a `TaskAppEntry` carries as `modal=`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .registry import TaskAppEntry, TaskAppRegistry, register_task_app, registry

logger = logging.getLogger("synth_ai.task.apps")

DISCOVERY_PATTERNS = (
    "**/task_app/*.py",
    "**/task_apps/*.py",
    "**/*_task_app.py",
    "**/grpo_crafter.py",
    "**/math_single_step.py",
)


@dataclass(slots=True)
class ModalDeploymentConfig:
    """An app's Modal deployment defaults, as 0.2.24 states them on its `TaskAppEntry`."""

    app_name: str
    python_version: str = "3.11"
    pip_packages: Sequence[str] = field(default_factory=tuple)
    apt_packages: Sequence[str] = field(default_factory=tuple)
    extra_local_dirs: Sequence[tuple[str, str]] = field(default_factory=tuple)
    secret_names: Sequence[str] = field(default_factory=tuple)
    volume_mounts: Sequence[tuple[str, str]] = field(default_factory=tuple)
    env_vars: dict[str, str] = field(default_factory=dict)
    timeout: int = 600
    memory: int = 4096
    cpu: float = 2.0
    min_containers: int = 1
    max_containers: int = 4


def discover_task_apps_from_cwd() -> None:
    """Import the task-app files 0.2.24 looked for under the current directory, so the apps
    they register are found by name; one that fails to import is logged and skipped."""
    from .references import import_file

    cwd = Path.cwd()
    for pattern in DISCOVERY_PATTERNS:
        for path in sorted(cwd.glob(pattern)):
            if path.name.startswith("__"):
                continue
            try:
                import_file(path)
            except Exception as exc:
                logger.warning("skipping %s: %s: %s", path, type(exc).__name__, exc)


__all__ = [
    "ModalDeploymentConfig",
    "TaskAppEntry",
    "TaskAppRegistry",
    "discover_task_apps_from_cwd",
    "register_task_app",
    "registry",
]
