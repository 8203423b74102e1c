"""`synth-ai deploy APP --runtime modal|local`: put a registered task app on Modal, or serve it.

Secret values reach the `modal deploy` child through an inherited pipe: never its environment,
its command line, a file, or the output.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click

from synth_ai.deploy.settings import SECRETS_FD_VAR, SETTINGS_VAR, ModalDeploySettings
from synth_ai.task import run_task_app
from synth_ai.task.registry import get_task_app

from .env_file import load_env_files

ROOT_ENTRY = Path(__file__).resolve().parents[2] / "modal_entry.py"
VENDOR_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GROQ_API_KEY", "GEMINI_API_KEY")
MODAL_CLI_VAR = "SYNTH_MODAL_CLI"
URL = re.compile(r"https://[A-Za-z0-9.\-]+\.modal\.run\S*")
EXIT_SETUP = 2


def modal_command(app_name: str) -> list[str]:
    """`modal deploy` on the root `modal_entry.py` (or the packaged entry when installed)."""
    prefix = shlex.split(os.environ.get(MODAL_CLI_VAR, "")) or [sys.executable, "-m", "modal"]
    target = [str(ROOT_ENTRY)] if ROOT_ENTRY.is_file() else ["-m", "synth_ai.deploy.entry"]
    return [*prefix, "deploy", *target, "--name", app_name]


def modal_token_configured() -> bool:
    if os.environ.get("MODAL_TOKEN_ID") and os.environ.get("MODAL_TOKEN_SECRET"):
        return True
    from modal.config import config

    return bool(config.get("token_id"))


def child_environment(settings: ModalDeploySettings, secret_fd: int) -> dict[str, str]:
    """The parent's environment without any secret value, plus the settings and the pipe."""
    hidden = set(settings.secret_env) | set(VENDOR_KEYS) | {"ENVIRONMENT_API_KEY_ALIASES"}
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    env[SETTINGS_VAR] = settings.to_json()
    env[SECRETS_FD_VAR] = str(secret_fd)
    return env


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
@click.option("--dry-run", is_flag=True, help="Print the command and settings; deploy nothing.")
@click.option("--min-containers", default=0, show_default=True, type=click.IntRange(0))
@click.option("--max-containers", default=None, type=click.IntRange(1))
@click.option(
    "--concurrency",
    default=32,
    show_default=True,
    type=click.IntRange(1),
    help="Requests one container serves at once.",
)
@click.option("--timeout", "timeout_s", default=600, show_default=True, type=click.IntRange(1))
@click.option("--cpu", default=1.0, show_default=True, type=click.FloatRange(0.125))
@click.option("--memory", "memory_mb", default=2048, show_default=True, type=click.IntRange(128))
@click.option(
    "--secret", "secret_names", multiple=True, help="An existing Modal secret (repeatable)."
)
@click.option(
    "--secret-env",
    "secret_env",
    multiple=True,
    help="Env var sent as an in-memory secret (default: ENVIRONMENT_API_KEY and any "
    "vendor key that is set).",
)
@click.option("--volume", "volumes", multiple=True, help="PATH=VOLUME_NAME (repeatable).")
@click.option("--package", default=None, help="Install this pinned synth-ai instead of the source.")
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
    concurrency: int,
    timeout_s: int,
    cpu: float,
    memory_mb: int,
    secret_names: tuple[str, ...],
    secret_env: tuple[str, ...],
    volumes: tuple[str, ...],
    package: str | None,
    host: str,
    port: int,
) -> None:
    """Deploy the task app registered as APP."""
    load_env_files(env_files)
    try:
        entry = get_task_app(app)
    except KeyError as exc:
        raise click.UsageError(str(exc.args[0])) from None
    if runtime == "local":
        run_task_app(entry.app_id, host=host, port=port)
        return
    mounts = {}
    for volume in volumes:
        path, sep, volume_name = volume.partition("=")
        if not sep or not path.startswith("/") or not volume_name:
            raise click.BadParameter(
                f"{volume!r}: use /mount/path=volume-name", param_hint="--volume"
            )
        mounts[path] = volume_name
    env_names = secret_env or (
        "ENVIRONMENT_API_KEY",
        *(k for k in VENDOR_KEYS if os.environ.get(k)),
    )
    settings = ModalDeploySettings(
        task_app=entry.app_id,
        name=name,
        min_containers=min_containers,
        max_containers=max_containers,
        concurrency=concurrency,
        timeout_s=timeout_s,
        cpu=cpu,
        memory_mb=memory_mb,
        secret_names=secret_names,
        secret_env=tuple(env_names),
        volumes=mounts,
        package=package,
    )
    command = modal_command(settings.app_name(entry.app_id))
    missing = [k for k in settings.secret_env if not os.environ.get(k)]
    if dry_run:
        click.echo("would run: " + shlex.join(command))
        click.echo("settings: " + json.dumps(json.loads(settings.to_json()), indent=2))
        click.echo("secrets from env (names only): " + ", ".join(settings.secret_env))
        if missing:
            click.echo("not set now: " + ", ".join(missing))
        return
    try:
        import modal  # noqa: F401
    except ImportError:
        click.echo("The modal extra is not installed: pip install 'synth-ai[modal]'", err=True)
        raise SystemExit(EXIT_SETUP) from None
    if not modal_token_configured():
        click.echo(
            "No Modal token is configured: run `modal token new` "
            "(or set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET).",
            err=True,
        )
        raise SystemExit(EXIT_SETUP)
    if "ENVIRONMENT_API_KEY" in missing and not secret_names:
        click.echo(
            "ENVIRONMENT_API_KEY is not set and no --secret names one: the deployed app "
            "would answer 503. Set it (or pass --env-file).",
            err=True,
        )
        raise SystemExit(EXIT_SETUP)
    raise SystemExit(_run_modal(command, settings))


def _run_modal(command: list[str], settings: ModalDeploySettings) -> int:
    values = {k: os.environ[k] for k in settings.secret_env if os.environ.get(k)}
    read_fd, write_fd = os.pipe()
    with os.fdopen(write_fd, "w", encoding="utf-8") as pipe:
        pipe.write(json.dumps(values))  # fits the pipe buffer: a few keys
    click.echo("running: " + shlex.join(command))
    process = subprocess.Popen(
        command,
        env=child_environment(settings, read_fd),
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
