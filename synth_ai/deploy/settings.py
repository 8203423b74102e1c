"""What a Modal deployment of a task app looks like, as plain data the CLI and the entry share.

The CLI hands these settings to `modal deploy` as JSON in one environment variable; secret
*values* never travel that way (they go through a pipe, see `synth_ai.cli.deploy`). A plain
`modal deploy modal_entry.py` builds them from a few environment variables instead
(`from_environment`), so every documented path deploys the same way.

Nothing here reaches the image: the settings become function options and function environment,
so changing one (say `max_containers`) never rebuilds it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

SETTINGS_VAR = "SYNTH_MODAL_SETTINGS"
SECRETS_FD_VAR = "SYNTH_MODAL_SECRETS_FD"
APP_VAR = "SYNTH_TASK_APP"
SECRET_NAMES_VAR = "SYNTH_MODAL_SECRETS"
"""Comma-separated Modal secret names, for a plain `modal deploy modal_entry.py`."""

KEY_VAR = "ENVIRONMENT_API_KEY"
VENDOR_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GROQ_API_KEY", "GEMINI_API_KEY")
TRACING_VAR = "TASKAPP_TRACING_ENABLED"
TRACE_DB_VAR = "TASKAPP_TRACE_DB"
OTEL_PREFIX = "OTEL_"


def local_python_version() -> str:
    """The image's default Python: the one this package runs under here."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def default_secret_env(
    environ: Mapping[str, str], function_env: Mapping[str, str]
) -> tuple[str, ...]:
    """Variables whose local values become the in-memory secret when none are named explicitly.

    The key always (a deploy without it refuses), vendor keys and `OTEL_*` that are set (OTLP
    headers carry tokens), and `TASKAPP_TRACE_DB` when tracing is on (a PostgreSQL URL holds a
    password).
    """
    names = [KEY_VAR, *(k for k in VENDOR_KEYS if environ.get(k))]
    names += sorted(k for k in environ if k.startswith(OTEL_PREFIX) and environ[k])
    tracing = function_env.get(TRACING_VAR, environ.get(TRACING_VAR, ""))
    if tracing.strip().lower() in {"1", "true", "yes", "on"} and environ.get(TRACE_DB_VAR):
        names.append(TRACE_DB_VAR)
    return tuple(name for name in names if name not in function_env)


@dataclass(frozen=True, slots=True)
class ModalDeploySettings:
    task_app: str = "math"
    name: str | None = None
    """The Modal app name; defaults to `synth-<task app id>`."""
    min_containers: int = 0
    max_containers: int | None = None
    scaledown_window: int | None = None
    """Seconds an idle container stays up (Modal's default when None)."""
    max_inputs: int = 32
    """Requests one container serves at once (`@modal.concurrent(max_inputs=...)`)."""
    target_inputs: int | None = None
    """Requests per container the autoscaler aims for (`@modal.concurrent(target_inputs=...)`)."""
    timeout_s: int = 600
    cpu: float = 1.0
    memory_mb: int = 2048
    gpu: str | None = None
    region: tuple[str, ...] = ()
    secret_names: tuple[str, ...] = ()
    """Existing Modal secrets (`modal.Secret.from_name`)."""
    secret_env: tuple[str, ...] = (KEY_VAR,)
    """Environment variables whose local values become an in-memory secret."""
    required_secret_env: tuple[str, ...] = ()
    """Of those, the ones asked for by name: a deploy refuses when one is unset."""
    env: dict[str, str] = field(default_factory=dict)
    """Plain function environment (not secret, not in the image)."""
    volumes: dict[str, str] = field(default_factory=dict)
    """Mount path -> Modal volume name (created if missing)."""
    extras: tuple[str, ...] = ()
    """Extras of this package to install in the image besides those the plan infers."""
    package: str | None = None
    """An explicit pip spec to install instead of this package's own source."""
    python_version: str = field(default_factory=local_python_version)
    reference: str | None = None
    """How the container finds an app its module does not register by id: `app.py[:name]`
    (relative to the mounted sources) or `module:attribute`. None: by `task_app`."""

    def app_name(self) -> str:
        return self.name or f"synth-{self.task_app}"

    def with_task_app(self, app_id: str, reference: str | None = None) -> ModalDeploySettings:
        return replace(self, task_app=app_id, reference=reference)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModalDeploySettings:
        data: dict[str, Any] = json.loads(text)
        for name in ("region", "secret_names", "secret_env", "required_secret_env", "extras"):
            data[name] = tuple(data.get(name, ()))
        return cls(**data)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ModalDeploySettings:
        """What the CLI passed; else, for a plain `modal deploy modal_entry.py`, the app in
        `SYNTH_TASK_APP`, the Modal secrets in `SYNTH_MODAL_SECRETS` and the default secret
        variables (the key, and vendor and OTLP variables that are set)."""
        environ = os.environ if environ is None else environ
        if environ.get(SETTINGS_VAR):
            return cls.from_json(environ[SETTINGS_VAR])
        env = {TRACING_VAR: environ[TRACING_VAR]} if environ.get(TRACING_VAR) else {}
        names = tuple(n.strip() for n in environ.get(SECRET_NAMES_VAR, "").split(",") if n.strip())
        return cls(
            task_app=environ.get(APP_VAR, "math"),
            secret_names=names,
            secret_env=default_secret_env(environ, env),
            env=env,
        )
