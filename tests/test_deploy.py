"""Deploying to Modal with the `modal` extra installed, no network and no token.

Modal's cloud is unreachable from here, so these tests stop where `modal deploy` would start
talking to it: they import the real entry as `modal deploy` does and look at the Modal objects
it builds (function spec, secrets, image mounts), and they stand a recording script in for the
`modal` CLI. `test_deploy_wheel.py` does the same from a wheel installed in a fresh virtualenv.
"""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

import modal
import pytest
from click.testing import CliRunner
from modal._utils.async_utils import synchronizer
from modal.mount import _Mount, _select_files

from synth_ai.cli import main
from synth_ai.deploy import ModalDeploySettings, build_plan
from synth_ai.deploy.modal import MissingKeyError, modal_image
from synth_ai.deploy.plan import PLAN_VAR
from synth_ai.deploy.settings import SETTINGS_VAR
from synth_ai.deploy.source import select_requirements
from synth_ai.task import TaskAppEntry, register_task_app

from .conftest import KEY, InProcess

ROOT = Path(__file__).resolve().parents[1]
SECRET = "sk-vendor-zqxjkvwmnzqxjkvw"
PASSWORD = "pw-qzxvjkwmqzxvjkwm"


@pytest.fixture
def no_modal_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.modal.toml
    monkeypatch.delenv("MODAL_TOKEN_ID", raising=False)
    monkeypatch.delenv("MODAL_TOKEN_SECRET", raising=False)
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(tmp_path / "modal.toml"))
    return tmp_path


@pytest.fixture
def modal_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """A token that looks configured; nothing here ever reaches Modal with it."""
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-test")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-test")


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for the `modal` CLI: imports the real entry as `modal deploy` does and reports
    what it saw (its file appears only if `modal deploy` was run)."""
    report = tmp_path / "report.json"
    script = tmp_path / "modal_cli.py"
    script.write_text(
        "import json, os, runpy, sys\n"
        "entry = runpy.run_path(sys.argv[2])\n"
        "kwargs = entry['function_kwargs']\n"
        "seen = {'env': dict(os.environ), 'argv': sys.argv,\n"
        "        'secrets': [repr(s) for s in kwargs['secrets']],\n"
        "        'function_env': kwargs['env']}\n"
        f"json.dump(seen, open({str(report)!r}, 'w'))\n"
        "print('Created web function web => https://team--synth-math-web.modal.run')\n"
    )
    monkeypatch.setenv("SYNTH_MODAL_CLI", f"{sys.executable} {script}")
    return report


def load_entry(monkeypatch: pytest.MonkeyPatch, settings: ModalDeploySettings | None) -> dict:
    """Import `modal_entry.py` afresh, as `modal deploy` would: with the CLI's plan, or (None)
    as a plain `modal deploy modal_entry.py`."""
    if settings is None:
        monkeypatch.delenv(PLAN_VAR, raising=False)
        monkeypatch.delenv(SETTINGS_VAR, raising=False)
    else:
        monkeypatch.setenv(PLAN_VAR, build_plan(settings).to_json())
    monkeypatch.delitem(sys.modules, "synth_ai.deploy.entry", raising=False)
    return runpy.run_path(str(ROOT / "modal_entry.py"))


def mounted_files(image: Any) -> dict[str, Path]:
    """Remote path -> local file of every file Modal would mount for `image` (its own walk)."""

    def mounts(obj: Any) -> list[_Mount]:
        found = []
        for dep in obj._deps_():
            found += [dep] if isinstance(dep, _Mount) else mounts(dep)
        return found

    files = {}
    for mount in mounts(synchronizer._translate_in(image)):
        files.update({str(remote): local for local, remote in _select_files(mount.entries)})
    return files


def test_the_entry_builds_one_web_function_from_the_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ModalDeploySettings(
        task_app="math-single-step",
        name="my-math",
        min_containers=1,
        max_containers=3,
        scaledown_window=120,
        max_inputs=8,
        target_inputs=4,
        timeout_s=900,
        cpu=2.0,
        memory_mb=4096,
        gpu="A10G",
        region=("us-east",),
        secret_names=("team-keys",),
    )
    entry = load_entry(monkeypatch, settings)
    assert entry["app"].name == "my-math"
    functions = [v for v in entry.values() if isinstance(v, modal.Function)]
    assert functions == [entry["web"]] and entry["web"]._is_web_endpoint()
    options = entry["function_kwargs"]
    assert {k: options[k] for k in ("min_containers", "max_containers", "scaledown_window")} == {
        "min_containers": 1,
        "max_containers": 3,
        "scaledown_window": 120,
    }
    assert (options["timeout"], options["gpu"], options["region"]) == (900, "A10G", "us-east")
    assert options["include_source"] is False  # only the plan's sources are mounted
    assert (entry["settings"].max_inputs, entry["settings"].target_inputs) == (8, 4)
    spec = entry["web"]._spec_
    assert (spec.cpu, spec.memory, spec.gpus) == (2.0, 4096, "A10G")
    assert "us-east" in str(spec.scheduler_placement)
    # the key is shipped (no CLI pipe here: taken from this environment by name)
    assert [repr(s) for s in options["secrets"]] == [
        "modal.Secret.from_name('team-keys')",
        "Secret.from_dict([ENVIRONMENT_API_KEY])",
    ]
    env = options["env"]
    assert env["SYNTH_TASK_APP"] == "math" and env["SYNTH_TASK_APP_MODULE"] == (
        "synth_ai.examples.math_task_app.app"
    )
    assert json.loads(env[SETTINGS_VAR])["max_containers"] == 3
    defaults = load_entry(monkeypatch, ModalDeploySettings())
    assert defaults["app"].name == "synth-math"
    assert defaults["function_kwargs"]["min_containers"] == 0


def test_plain_modal_deploy_ships_the_key_or_refuses_saying_how(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`modal deploy modal_entry.py` with no CLI: the key goes as `from_local_environ`, or a
    named secret carries it, or the deploy refuses before anything is built."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    plain = load_entry(monkeypatch, None)
    assert [repr(s) for s in plain["function_kwargs"]["secrets"]] == [
        "Secret.from_dict([ENVIRONMENT_API_KEY, OPENAI_API_KEY])"
    ]
    monkeypatch.delenv("ENVIRONMENT_API_KEY")
    monkeypatch.setenv("SYNTH_MODAL_SECRETS", "team-keys")
    named = load_entry(monkeypatch, None)
    assert [repr(s) for s in named["function_kwargs"]["secrets"]] == [
        "modal.Secret.from_name('team-keys')",
        "Secret.from_dict([OPENAI_API_KEY])",
    ]
    monkeypatch.delenv("SYNTH_MODAL_SECRETS")
    with pytest.raises(MissingKeyError) as refused:
        load_entry(monkeypatch, None)
    message = str(refused.value)
    assert "Export ENVIRONMENT_API_KEY=" in message and "SYNTH_MODAL_SECRETS" in message


def test_the_image_is_this_package_and_settings_never_change_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = build_plan(ModalDeploySettings())
    ours = [r for r in distribution("synth-ai").requires or [] if "extra ==" not in r]
    assert sorted(plan.image.requirements) == sorted(ours)
    assert not any(r.lower().startswith(("synth-ai", "synth_ai")) for r in plan.image.requirements)
    files = mounted_files(modal_image(plan.image))
    expected = {
        f"/root/synth_ai/{p.relative_to(ROOT / 'synth_ai').as_posix()}"
        for p in (ROOT / "synth_ai").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    assert set(files) == expected and "/root/synth_ai/deploy/entry.py" in files
    assert "/root/synth_ai/examples/math_task_app/app.py" in files  # the app ships inside
    other = build_plan(
        ModalDeploySettings(
            max_containers=9,
            min_containers=2,
            scaledown_window=30,
            max_inputs=4,
            target_inputs=2,
            gpu="T4",
            region=("eu-west",),
            env={"FEATURE": "on"},
            timeout_s=60,
            secret_names=("other",),
        )
    )
    assert other.image == plan.image and other.function_env != plan.function_env
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector.example:4318")
    from synth_ai.deploy.settings import default_secret_env

    otlp = build_plan(ModalDeploySettings(secret_env=default_secret_env(os.environ, {})))
    assert "otlp" in otlp.extras and "OTEL_EXPORTER_OTLP_ENDPOINT" in otlp.secret_env
    assert any(r.startswith("opentelemetry-exporter-otlp") for r in otlp.image.requirements)


def test_requirements_expand_this_package_s_own_extras_instead_of_asking_the_index() -> None:
    requires = [
        "a>=1",
        'b; extra == "otlp"',
        'synth-ai[otlp]; extra == "all"',
        'c; python_version < "4" and extra == "all"',
        'd; extra == "modal"',
    ]
    assert select_requirements(requires, ("all",), "synth-ai") == [
        "a>=1",
        "b",
        'c; python_version < "4"',
    ]


def test_the_asgi_factory_serves_health_with_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = load_entry(monkeypatch, ModalDeploySettings())
    client = InProcess(entry["build_task_app"]())
    assert client.get("/health").status_code == 401
    health = client.get("/health", headers={"X-API-Key": KEY})
    assert health.status_code == 200 and health.json()["service"] == "math"


def test_a_missing_token_is_a_clear_error(no_modal_token: Path) -> None:
    for dry in ([], ["--dry-run"]):
        result = CliRunner().invoke(main, ["deploy", "math", "--runtime", "modal", *dry])
        assert result.exit_code == 2
        assert "modal token new" in result.output


def test_a_missing_extra_says_how_to_get_it(modal_token: None) -> None:
    blocked = "import sys; sys.modules['modal'] = None; from synth_ai.cli import main; main()"
    for dry in ([], ["--dry-run"]):
        result = subprocess.run(
            [sys.executable, "-c", blocked, "deploy", "math", *dry],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2
        assert "uvx --from 'synth-ai[modal]' synth-ai deploy" in result.stderr


def test_dry_run_shows_the_plan_names_never_values(
    monkeypatch: pytest.MonkeyPatch, modal_token: None
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    args = ["deploy", "math", "--dry-run", "--max-containers", "4", "--scaledown-window", "120"]
    args += ["--target-inputs", "8", "--gpu", "A10G", "--secret", "team-keys", "--env", "X=1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "modal.Image.debian_slim(python_version=" in out
    assert f"local source: synth_ai: {ROOT / 'synth_ai'} -> /root/synth_ai" in out
    assert "pip install:  " in out and "starlette>=" in out and "synth-ai" not in out.lower()
    assert "max_containers=4" in out and "scaledown_window=120" in out and "gpu='A10G'" in out
    assert "max_inputs=32, target_inputs=8" in out
    assert "team-keys" in out and "OPENAI_API_KEY" in out and "ENVIRONMENT_API_KEY" in out
    assert "modal deploy" in out and "modal_entry.py" in out
    assert SECRET not in out and KEY not in out
    assert "a deploy would go ahead" in out


class Broken(Exception):
    pass


def broken_config() -> Any:
    raise Broken("needs MATH_DATASET_PATH")


register_task_app(TaskAppEntry(app_id="broken-deploy-app", config_factory=broken_config))


@pytest.mark.parametrize(
    ("case", "args", "unset", "message"),
    [
        ("no key", [], "ENVIRONMENT_API_KEY", "ENVIRONMENT_API_KEY is not set"),
        ("factory raises", ["--name", "b"], None, "Broken: needs MATH_DATASET_PATH"),
        ("asked-for env unset", ["--secret-env", "NOPE_KEY"], None, "NOPE_KEY"),
        ("fine", [], None, None),
    ],
)
def test_dry_run_exits_non_zero_exactly_when_a_deploy_refuses(
    monkeypatch: pytest.MonkeyPatch,
    stand_in: Path,
    modal_token: None,
    case: str,
    args: list[str],
    unset: str | None,
    message: str | None,
) -> None:
    if unset:
        monkeypatch.delenv(unset)
    app = "broken-deploy-app" if case == "factory raises" else "math"
    dry = CliRunner().invoke(main, ["deploy", app, "--dry-run", *args])
    assert not stand_in.exists()
    real = CliRunner().invoke(main, ["deploy", app, *args])
    if message is None:
        assert (dry.exit_code, real.exit_code) == (0, 0), dry.output + real.output
        assert stand_in.exists()
        return
    assert (dry.exit_code, real.exit_code) == (2, 2), dry.output + real.output
    assert message in dry.output and message in real.output
    assert not stand_in.exists(), "a refused deploy ran `modal deploy`"


def test_tracing_that_would_be_lost_is_warned_and_urls_travel_as_secrets(
    monkeypatch: pytest.MonkeyPatch, modal_token: None
) -> None:
    local = CliRunner().invoke(main, ["deploy", "math", "--dry-run", "--trace"])
    assert local.exit_code == 0
    assert "/root/traces/v3/synth_ai.db on the container's own disk" in local.output
    on_volume = ["--volume", "/traces=tv", "--env", "TASKAPP_TRACE_DB=/traces/synth_ai.db"]
    kept = CliRunner().invoke(main, ["deploy", "math", "--dry-run", "--trace", *on_volume])
    assert kept.exit_code == 0 and "Warning" not in kept.output
    monkeypatch.setenv("TASKAPP_TRACE_DB", f"postgresql://synth:{PASSWORD}@db.example/traces")
    pg = CliRunner().invoke(main, ["deploy", "math", "--dry-run", "--trace"])
    assert pg.exit_code == 0
    assert "environment (names only): ENVIRONMENT_API_KEY, TASKAPP_TRACE_DB" in pg.output
    assert "PostgreSQL URL" in pg.output and PASSWORD not in pg.output
    assert "--extra postgres" in pg.output
    driver = ["--extra", "postgres"]
    with_driver = CliRunner().invoke(main, ["deploy", "math", "--dry-run", "--trace", *driver])
    assert with_driver.exit_code == 0 and "Warning" not in with_driver.output


def test_secrets_reach_the_entry_by_pipe_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stand_in: Path, modal_token: None
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.chdir(tmp_path)
    args = ["deploy", "math", "--runtime", "modal", "--min-containers", "1"]
    result = subprocess.run(
        [sys.executable, "-m", "synth_ai", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Deployed: https://team--synth-math-web.modal.run" in result.stdout
    seen = json.loads(stand_in.read_text())
    assert seen["argv"][1:] == ["deploy", str(ROOT / "modal_entry.py"), "--name", "synth-math"]
    assert json.loads(seen["function_env"][SETTINGS_VAR])["min_containers"] == 1
    assert seen["secrets"] == ["Secret.from_dict([ENVIRONMENT_API_KEY, OPENAI_API_KEY])"]
    for value in (KEY, SECRET):
        assert value not in json.dumps(seen["env"]), "a secret value reached the child's env"
        assert value not in json.dumps(seen["function_env"])
        assert value not in result.stdout + result.stderr
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert value not in path.read_text(errors="ignore"), f"{path} holds a secret"


def test_local_runtime_and_unknown_apps() -> None:
    result = CliRunner().invoke(main, ["deploy", "nope", "--dry-run"])
    assert result.exit_code == 2 and "no task app named 'nope'" in result.output
    bad = CliRunner().invoke(main, ["deploy", "math", "--dry-run", "--volume", "data"])
    assert bad.exit_code == 2 and "/mount/path=volume-name" in bad.output
    over = CliRunner().invoke(
        main, ["deploy", "math", "--dry-run", "--max-inputs", "4", "--target-inputs", "8"]
    )
    assert over.exit_code == 2 and "--target-inputs" in over.output
    plain = CliRunner().invoke(
        main, ["deploy", "math", "--dry-run", "--env", f"OPENAI_API_KEY={KEY}"]
    )
    assert plain.exit_code == 2 and "use --secret-env" in plain.output
