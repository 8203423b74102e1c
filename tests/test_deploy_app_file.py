"""`synth-ai deploy` of an author's own app file: the plan mounts the file, and the container
(`modal.is_local()` false, only the mounted sources there) builds and serves that app, whether
the file registers it or only names it."""

from __future__ import annotations

import runpy
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from synth_ai.cli import main
from synth_ai.deploy.plan import PLAN_VAR, build_plan
from synth_ai.deploy.settings import SETTINGS_VAR, ModalDeploySettings
from synth_ai.task.registry import registry

from .conftest import InProcess

pytest.importorskip("modal")

ROOT = Path(__file__).resolve().parent.parent
KEY = "deploy-file-key-0123456789"

APP = """
from synth_ai.task import (
    RolloutMetrics, RolloutResponse, TaskAppConfig, TaskAppEntry, TaskDescriptor, TaskInfo,
)

BASE = TaskInfo(task=TaskDescriptor(id="{app_id}", name="Shout"), environment="shout")


async def rollout(request, context):
    return RolloutResponse(metrics=RolloutMetrics(outcome_score=1.0))


def build_config():
    return TaskAppConfig(
        app_id="{app_id}", name="Shout", description="d", base_task_info=BASE, rollout=rollout,
    )


ENTRY = TaskAppEntry(app_id="{app_id}", config_factory=build_config)
"""


def write_app(folder: Path, stem: str, app_id: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.py"
    path.write_text(APP.replace("{app_id}", app_id))
    return path


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT_API_KEY", KEY)
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-test")  # looks configured; never reaches Modal
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-test")


def test_dry_run_of_a_file_mounts_it_and_builds_its_app(tmp_path: Path) -> None:
    path = write_app(tmp_path / "mine", "shout_app", "shout-dry")
    result = CliRunner().invoke(main, ["deploy", str(path), "--runtime", "modal", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "task app 'shout-dry' as Modal app 'synth-shout-dry'" in result.output
    assert f"local source: shout_app: {path} -> /root/shout_app.py" in result.output
    assert "the config factory of 'shout-dry' builds the app" in result.output


@pytest.mark.parametrize(
    ("suffix", "app_id"),
    [("", "shout-file"), (":ENTRY", "shout-attr"), (":build_config", "shout-fn")],
)
def test_the_container_serves_an_app_deployed_by_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str, app_id: str
) -> None:
    stem = f"shout_{app_id.split('-')[1]}"
    local = write_app(tmp_path / "mine", stem, app_id)
    plan = build_plan(ModalDeploySettings(task_app=f"{local}{suffix}"))
    assert plan.settings.reference == f"{stem}.py{suffix}"
    remote = {s.remote_path: Path(s.local_path) for s in plan.image.sources}
    assert remote[f"/root/{stem}.py"] == local

    # the container: only the mounted copy of the file, and nothing registered
    mounted = tmp_path / "root"
    mounted.mkdir()
    shutil.copy(local, mounted / f"{stem}.py")
    monkeypatch.setattr(registry, "_entries", {})
    monkeypatch.setattr(registry, "_names", {})
    monkeypatch.setattr(registry, "_discovered", True)
    monkeypatch.syspath_prepend(str(mounted))
    monkeypatch.delitem(sys.modules, stem, raising=False)
    monkeypatch.setattr("synth_ai.deploy.modal.REMOTE_ROOT", str(mounted))
    monkeypatch.setattr("modal.is_local", lambda: False)
    monkeypatch.delenv(PLAN_VAR, raising=False)
    monkeypatch.setenv(SETTINGS_VAR, plan.settings.to_json())
    for name, value in plan.function_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delitem(sys.modules, "synth_ai.deploy.entry", raising=False)
    entry = runpy.run_path(str(ROOT / "modal_entry.py"))

    client = InProcess(entry["build_task_app"]())
    health = client.get("/health", headers={"X-API-Key": KEY})
    assert health.status_code == 200 and health.json()["service"] == app_id
    answer = client.post(
        "/rollout", json={"run_id": "r1", "env": {"seed": 1}}, headers={"X-API-Key": KEY}
    )
    assert answer.status_code == 200 and answer.json()["metrics"]["outcome_score"] == 1.0
    assert Path(sys.modules[stem].__file__ or "").parent == mounted
