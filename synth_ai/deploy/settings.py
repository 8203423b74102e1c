"""What a Modal deployment of a task app looks like, as plain data the CLI and the entry share.

The CLI hands these settings to `modal deploy modal_entry.py` as JSON in one environment
variable; secret *values* never travel that way (see `secret_pipe`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

SETTINGS_VAR = "SYNTH_MODAL_SETTINGS"
SECRETS_FD_VAR = "SYNTH_MODAL_SECRETS_FD"
APP_VAR = "SYNTH_TASK_APP"
DEFAULT_SECRET_ENV = ("ENVIRONMENT_API_KEY",)


@dataclass(frozen=True, slots=True)
class ModalDeploySettings:
    task_app: str = "math"
    name: str | None = None
    """The Modal app name; defaults to `synth-<task app id>`."""
    min_containers: int = 0
    max_containers: int | None = None
    concurrency: int = 32
    """Requests one container serves at once (`@modal.concurrent`)."""
    timeout_s: int = 600
    cpu: float = 1.0
    memory_mb: int = 2048
    secret_names: tuple[str, ...] = ()
    """Existing Modal secrets (`modal.Secret.from_name`)."""
    secret_env: tuple[str, ...] = DEFAULT_SECRET_ENV
    """Environment variables whose values become an in-memory `Secret.from_dict`."""
    volumes: dict[str, str] = field(default_factory=dict)
    """Mount path -> Modal volume name (created if missing)."""
    package: str | None = None
    """A pinned `synth-ai==X` to install instead of the local source tree."""
    python_version: str = "3.11"

    def app_name(self, app_id: str) -> str:
        return self.name or f"synth-{app_id}"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ModalDeploySettings:
        data: dict[str, Any] = json.loads(text)
        data["secret_names"] = tuple(data.get("secret_names", ()))
        data["secret_env"] = tuple(data.get("secret_env", ()))
        return cls(**data)

    @classmethod
    def from_environment(cls) -> ModalDeploySettings:
        """What the CLI passed, or defaults naming the app in `SYNTH_TASK_APP`."""
        if os.environ.get(SETTINGS_VAR):
            return cls.from_json(os.environ[SETTINGS_VAR])
        return cls(task_app=os.environ.get(APP_VAR, "math"))
