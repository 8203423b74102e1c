"""`synth-ai deploy APP --runtime modal|local`: put a registered task app on Modal, or serve it.

The command builds the deploy plan (`synth_ai.deploy.plan`), checks it (`synth_ai.deploy.checks`)
and hands it to `modal deploy`; `--dry-run` prints the plan and runs the same checks, so it
exits non-zero exactly when a real deploy would refuse. Secret values reach the `modal deploy`
child through an inherited pipe: never its environment, its command line, a file, or the output.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .env_file import load_env_files

if TYPE_CHECKING:
    from synth_ai.deploy.plan import DeployPlan

ROOT_ENTRY = Path(__file__).resolve().parents[2] / "modal_entry.py"
MODAL_CLI_VAR = "SYNTH_MODAL_CLI"
URL = re.compile(r"https://[A-Za-z0-9.\-]+\.modal\.run\S*")
EXIT_SETUP = 2


def modal_command(app_name: str) -> list[str]:
    """`modal deploy` on the root `modal_entry.py` of a checkout, else on the installed entry
    module (a wheel has no `modal_entry.py`); both define the same function."""
    prefix = shlex.split(os.environ.get(MODAL_CLI_VAR, "")) or [sys.executable, "-m", "modal"]
    target = [str(ROOT_ENTRY)] if ROOT_ENTRY.is_file() else ["-m", "synth_ai.deploy.entry"]
    return [*prefix, "deploy", *target, "--name", app_name]


def child_environment(plan: DeployPlan, secret_fd: int) -> dict[str, str]:
    """The parent's environment without any value the plan sends as a secret, plus the plan
    and the pipe."""
    from synth_ai.deploy.plan import PLAN_VAR
    from synth_ai.deploy.settings import KEY_VAR, SECRETS_FD_VAR, SETTINGS_VAR, VENDOR_KEYS

    hidden = set(plan.secret_env) | set(VENDOR_KEYS) | {KEY_VAR, "ENVIRONMENT_API_KEY_ALIASES"}
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    env[PLAN_VAR] = plan.to_json()
    env[SETTINGS_VAR] = plan.settings.to_json()
    env[SECRETS_FD_VAR] = str(secret_fd)
    return env


def pairs(values: tuple[str, ...], option: str, check_key: bool = False) -> dict[str, str]:
    """`A=B` options as a dict (a bad one is a usage error naming the option)."""
    found = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key or (check_key and (not rest or not key.startswith("/"))):
            hint = "/mount/path=volume-name" if check_key else "NAME=VALUE"
            raise click.BadParameter(f"{value!r}: use {hint}", param_hint=option)
        found[key] = rest
    return found


@click.command()
@click.argument("app")
@click.option(
    "--runtime", type=click.Choice(["modal", "local"]), default="modal", show_default=True
)
@click.option("--name", default=None, help="Modal app name (default: synth-<app id>).")
@click.option(
    "--env-file",
    "env_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="KEY=VALUE file applied first (repeatable).",
)
@click.option("--dry-run", is_flag=True, help="Show the plan and run the checks; deploy nothing.")
@click.option("--min-containers", default=0, show_default=True, type=click.IntRange(0))
@click.option("--max-containers", default=None, type=click.IntRange(1))
@click.option(
    "--scaledown-window",
    default=None,
    type=click.IntRange(1),
    help="Seconds an idle container stays up (Modal's default if unset).",
)
@click.option(
    "--max-inputs",
    "--concurrency",
    "max_inputs",
    default=32,
    show_default=True,
    type=click.IntRange(1),
    help="Requests one container serves at once (@modal.concurrent max_inputs).",
)
@click.option(
    "--target-inputs",
    default=None,
    type=click.IntRange(1),
    help="Requests per container the autoscaler aims for (@modal.concurrent target_inputs).",
)
@click.option("--timeout", "timeout_s", default=600, show_default=True, type=click.IntRange(1))
@click.option("--cpu", default=1.0, show_default=True, type=click.FloatRange(0.125))
@click.option("--memory", "memory_mb", default=2048, show_default=True, type=click.IntRange(128))
@click.option("--gpu", default=None, help="A Modal GPU spec, e.g. T4, A10G, H100:2.")
@click.option("--region", "regions", multiple=True, help="A Modal region (repeatable).")
@click.option(
    "--secret", "secret_names", multiple=True, help="An existing Modal secret (repeatable)."
)
@click.option(
    "--secret-env",
    "secret_env",
    multiple=True,
    help="Env var sent as an in-memory secret (default: ENVIRONMENT_API_KEY, and vendor keys "
    "and OTEL_* variables that are set).",
)
@click.option("--env", "env_pairs", multiple=True, help="NAME=VALUE in the function's environment.")
@click.option("--trace", is_flag=True, help="Turn tracing on in the deployed app.")
@click.option("--extra", "extras", multiple=True, help="An extra of synth-ai for the image.")
@click.option("--volume", "volumes", multiple=True, help="PATH=VOLUME_NAME (repeatable).")
@click.option(
    "--package",
    default=None,
    help="Install this pip spec from the index instead of this package's own source.",
)
@click.option("--python", "python_version", default=None, help="Image Python (default: this).")
@click.option("--host", default="127.0.0.1", show_default=True, help="With --runtime local.")
@click.option(
    "--port",
    default=8001,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="With --runtime local.",
)
def deploy(
    app: str,
    runtime: str,
    name: str | None,
    env_files: tuple[Path, ...],
    dry_run: bool,
    min_containers: int,
    max_containers: int | None,
    scaledown_window: int | None,
    max_inputs: int,
    target_inputs: int | None,
    timeout_s: int,
    cpu: float,
    memory_mb: int,
    gpu: str | None,
    regions: tuple[str, ...],
    secret_names: tuple[str, ...],
    secret_env: tuple[str, ...],
    env_pairs: tuple[str, ...],
    trace: bool,
    extras: tuple[str, ...],
    volumes: tuple[str, ...],
    package: str | None,
    python_version: str | None,
    host: str,
    port: int,
) -> None:
    """Deploy the task app registered as APP."""
    from synth_ai.deploy.checks import preflight
    from synth_ai.deploy.plan import build_plan, describe
    from synth_ai.deploy.settings import (
        KEY_VAR,
        TRACING_VAR,
        VENDOR_KEYS,
        ModalDeploySettings,
        default_secret_env,
        local_python_version,
    )
    from synth_ai.deploy.source import SourceError
    from synth_ai.task import run_task_app
    from synth_ai.task.references import AppLoadFailed, get_task_app

    load_env_files(env_files)
    try:
        entry = get_task_app(app)
    except AppLoadFailed as exc:
        raise click.ClickException(str(exc)) from None
    except KeyError as exc:
        raise click.UsageError(str(exc.args[0])) from None
    if runtime == "local":
        run_task_app(entry.app_id, host=host, port=port)
        return
    if target_inputs is not None and target_inputs > max_inputs:
        raise click.BadParameter(
            f"{target_inputs} is above --max-inputs {max_inputs}", param_hint="--target-inputs"
        )
    env = pairs(env_pairs, "--env")
    secret_like = [k for k in env if k in (KEY_VAR, *VENDOR_KEYS, *secret_env)]
    if secret_like:
        raise click.BadParameter(
            f"{', '.join(secret_like)} would travel in plain sight: use --secret-env",
            param_hint="--env",
        )
    if trace:
        env[TRACING_VAR] = "1"
    settings = ModalDeploySettings(
        task_app=entry.app_id,
        name=name,
        min_containers=min_containers,
        max_containers=max_containers,
        scaledown_window=scaledown_window,
        max_inputs=max_inputs,
        target_inputs=target_inputs,
        timeout_s=timeout_s,
        cpu=cpu,
        memory_mb=memory_mb,
        gpu=gpu,
        region=regions,
        secret_names=secret_names,
        secret_env=secret_env or default_secret_env(os.environ, env),
        required_secret_env=secret_env,
        env=env,
        volumes=pairs(volumes, "--volume", check_key=True),
        extras=extras,
        package=package,
        python_version=python_version or local_python_version(),
    )
    try:
        plan = build_plan(settings)
    except SourceError as exc:
        click.echo(f"Cannot plan the image: {exc}", err=True)
        raise SystemExit(EXIT_SETUP) from None
    command = modal_command(plan.app_name)
    checks = preflight(plan)
    if dry_run:
        click.echo("\n".join(describe(plan, command)))
        for line in checks.passed:
            click.echo(f"  ok:      {line}")
    for line in checks.warnings:
        click.echo(f"Warning: {line}", err=True)
    for line in checks.problems:
        click.echo(
            f"Refusing: {line}" if not dry_run else f"A deploy would refuse: {line}", err=True
        )
    if not checks.ok:
        raise SystemExit(EXIT_SETUP)
    if dry_run:
        click.echo("Dry run: nothing deployed; a deploy would go ahead.")
        return
    raise SystemExit(_run_modal(command, plan))


def _run_modal(command: list[str], plan: DeployPlan) -> int:
    values = {k: os.environ[k] for k in plan.secret_env if os.environ.get(k)}
    read_fd, write_fd = os.pipe()
    with os.fdopen(write_fd, "w", encoding="utf-8") as pipe:
        pipe.write(json.dumps(values))  # fits the pipe buffer: a few keys
    click.echo("running: " + shlex.join(command))
    process = subprocess.Popen(
        command,
        env=child_environment(plan, read_fd),
        pass_fds=(read_fd,),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    os.close(read_fd)
    url = None
    assert process.stdout is not None
    for line in process.stdout:
        click.echo(line, nl=False)
        if url is None and (match := URL.search(line)):
            url = match.group(0)
    code = process.wait()
    if code == 0 and url:
        click.echo(f"\nDeployed: {url}")
        click.echo(f"Optimizers reach it at {url} with X-API-Key set to your ENVIRONMENT_API_KEY.")
    elif code != 0:
        click.echo(f"modal deploy failed (exit {code})", err=True)
    return code
