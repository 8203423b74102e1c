"""Preflight: what makes a deploy refuse, checked the same way by `--dry-run` and a real deploy.

One function decides, so a dry run exits non-zero exactly when the real deploy would refuse.
Warnings never refuse: they say where a deployment would lose data (traces on a container's
disk go away when it scales down).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from synth_ai.task.application import create_task_app
from synth_ai.task.references import get_task_app
from synth_ai.tracing_v3.settings import DEFAULT_DB_PATH, SFT_DIR_VARS

from .plan import DeployPlan
from .settings import KEY_VAR, TRACE_DB_VAR, TRACING_VAR

CONTAINER_WORKDIR = PurePosixPath("/root")
MISSING_EXTRA = (
    "The modal extra is not installed: pip install 'synth-ai[modal]', or run the CLI with it: "
    "uvx --from 'synth-ai[modal]' synth-ai deploy ... (from a checkout: uvx --from '.[modal]')"
)
NO_TOKEN = (
    "No Modal token is configured: run `modal token new` "
    "(or set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET)."
)
_TRUE = {"1", "true", "yes", "on"}


@dataclass
class Preflight:
    problems: list[str] = field(default_factory=list)
    """Each one makes a deploy refuse."""
    warnings: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def modal_installed() -> bool:
    try:
        import modal  # noqa: F401
    except ImportError:
        return False
    return True


def modal_token_configured(environ: Mapping[str, str]) -> bool:
    if environ.get("MODAL_TOKEN_ID") and environ.get("MODAL_TOKEN_SECRET"):
        return True
    from modal.config import config

    return bool(config.get("token_id"))


@contextmanager
def applied(env: Mapping[str, str]) -> Iterator[None]:
    """`env` on top of this process's environment for the duration (restored after)."""
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def app_builds(plan: DeployPlan) -> str | None:
    """Build the app as the container will (its config factory, then the ASGI app) under the
    function environment; answers the failure, or None."""
    try:
        with applied(plan.function_env):
            create_task_app(get_task_app(plan.settings.task_app).config_factory())
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def key_problem(plan: DeployPlan, environ: Mapping[str, str]) -> str | None:
    if plan.settings.secret_names or (KEY_VAR in plan.secret_env and environ.get(KEY_VAR)):
        return None
    return (
        f"{KEY_VAR} is not set and no --secret names a Modal secret holding it: the deployed "
        f"app would answer 503. Export {KEY_VAR} (or pass --env-file), or create a secret "
        f"(modal secret create NAME {KEY_VAR}=...) and pass --secret NAME."
    )


def on_volume(path: PurePosixPath, volumes: Mapping[str, str]) -> bool:
    return any(path.is_relative_to(PurePosixPath(mount)) for mount in volumes)


def container_path(value: str) -> PurePosixPath:
    path = PurePosixPath(value)
    return path if path.is_absolute() else CONTAINER_WORKDIR / path


def trace_warnings(plan: DeployPlan, environ: Mapping[str, str]) -> list[str]:
    """Where traces would go in the container, when that is somewhere they would be lost."""
    env, volumes = plan.function_env, plan.settings.volumes
    warnings = []
    if env.get(TRACING_VAR, "").strip().lower() in _TRUE:
        sent = environ.get(TRACE_DB_VAR) if TRACE_DB_VAR in plan.secret_env else None
        db = env.get(TRACE_DB_VAR) or sent
        if db and db.startswith(("postgres://", "postgresql://")):
            if "postgres" not in plan.extras:
                warnings.append(
                    f"{TRACE_DB_VAR} is a PostgreSQL URL, but the image lacks its driver, so "
                    "no trace would be stored: add --extra postgres."
                )
        elif not on_volume(path := container_path(db or str(DEFAULT_DB_PATH)), volumes):
            unless = (
                f" (unless Modal secret {', '.join(plan.settings.secret_names)} sets "
                f"{TRACE_DB_VAR} to a Volume path)"
                if plan.settings.secret_names and not db
                else ""
            )
            warnings.append(
                f"tracing would write SQLite to {path} on the container's own disk{unless}, "
                "which is lost when the container scales down: mount a Volume "
                f"(--volume /traces=NAME --env {TRACE_DB_VAR}=/traces/synth_ai.db), give "
                f"{TRACE_DB_VAR} a PostgreSQL URL through a secret, or export spans over OTLP "
                "(OTEL_EXPORTER_OTLP_ENDPOINT)."
            )
    for name in SFT_DIR_VARS:
        if env.get(name) and not on_volume(path := container_path(env[name]), volumes):
            warnings.append(
                f"{name} puts SFT files at {path} on the container's own disk, lost at "
                "scale-down: point it into a --volume mount."
            )
    return warnings


def preflight(plan: DeployPlan, environ: Mapping[str, str] | None = None) -> Preflight:
    """Everything a real deploy checks before it runs `modal deploy`."""
    environ = os.environ if environ is None else environ
    result = Preflight()
    if not modal_installed():
        result.problems.append(MISSING_EXTRA)
    elif not modal_token_configured(environ):
        result.problems.append(NO_TOKEN)
    else:
        result.passed.append("modal is installed and a token is configured")
    failure = app_builds(plan)
    if failure:
        result.problems.append(
            f"the config factory of {plan.settings.task_app!r} fails ({failure}): the container "
            "would fail to start"
        )
    else:
        result.passed.append(f"the config factory of {plan.settings.task_app!r} builds the app")
    if problem := key_problem(plan, environ):
        result.problems.append(problem)
    else:
        result.passed.append(f"{KEY_VAR} reaches the app")
    missing = [name for name in plan.settings.required_secret_env if not environ.get(name)]
    if missing:
        result.problems.append("asked to send, but not set here: " + ", ".join(missing))
    result.warnings += trace_warnings(plan, environ)
    return result
