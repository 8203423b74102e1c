"""The CLI takes a 0.2.24-style app file unchanged (issue 30, item 4): `synth-ai serve app.py`,
`check`, `eval` and `deploy --dry-run`, on `examples/published_0224_app/app.py`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import KEY
from tests.processes import start_server, stop_server

APP = Path(__file__).resolve().parents[1] / "examples" / "published_0224_app" / "app.py"


def synth_ai(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "synth_ai", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "ENVIRONMENT_API_KEY": KEY, **env},
    )


def test_serve_takes_the_file_and_serves_its_routes(tmp_path: Path) -> None:
    process, url, output = start_server(["serve", str(APP)], cwd=tmp_path)
    try:
        headers = {"X-API-Key": KEY}
        problem = httpx.get(f"{url}/arith/problem/3", headers=headers, timeout=30)
        body = {"run_id": "s", "env": {"seed": 3}, "policy": {"config": {"answer": "60"}}}
        rollout = httpx.post(f"{url}/rollout", json=body, headers=headers, timeout=30)
        refused = httpx.get(f"{url}/arith/admin", timeout=30)
    finally:
        log = stop_server(process, output)
    assert problem.json() == {"seed": 3, "a": 21, "b": 39, "split": "train"}
    assert rollout.json()["metrics"]["outcome_score"] == 1.0
    assert refused.status_code == 401
    assert KEY[:4] not in log


def test_check_passes_it(tmp_path: Path) -> None:
    done = synth_ai("check", str(APP), "--offline-policy", "--seeds", "0-1", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["passed"] is True
    assert {check["name"] for check in report["checks"]} >= {"rollout_eval", "task_info_seeds"}


def test_eval_runs_it(tmp_path: Path) -> None:
    done = synth_ai("eval", str(APP), "--offline-policy", "--seeds", "0-2", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["summary"]["completed"] == 3 and report["verdict"] == "passed"


def test_deploy_dry_run_plans_it_with_its_modal_pip_packages(tmp_path: Path) -> None:
    done = synth_ai(
        "deploy",
        str(APP),
        "--dry-run",
        cwd=tmp_path,
        MODAL_TOKEN_ID="ak-test",  # looks configured; a dry run never reaches Modal
        MODAL_TOKEN_SECRET="as-test",
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    plan = done.stdout + done.stderr
    assert "task app 'arith-0224'" in plan
    pip = next(line for line in plan.splitlines() if "pip install:" in line)
    assert "fastapi" in pip  # ModalDeploymentConfig(pip_packages=("fastapi",))
    assert "the config factory of 'arith-0224' builds the app" in plan


@pytest.mark.parametrize("reference", ["arith-0224", "arith-published"])
def test_the_app_is_found_by_id_and_alias_once_the_file_is_imported(reference: str) -> None:
    from synth_ai.task.references import find_task_app

    entry = find_task_app(str(APP))
    assert find_task_app(reference) is entry
    assert entry.modal is not None and entry.modal.app_name == "arith-0224"


def test_python_app_py_serves_through_run_task_app(tmp_path: Path) -> None:
    """0.2.24's `__main__` block: `run_task_app(build_config, host=..., port=...)`."""
    from tests.processes import free_port

    port = free_port()
    env = {**os.environ, "ENVIRONMENT_API_KEY": KEY, "PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, str(APP)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    process_out = process.stdout
    assert process_out is not None
    try:
        for line in process_out:
            output.append(line)
            if "Uvicorn running on" in line or f":{port}" in line:
                break
        else:
            pytest.fail("app.py exited:\n" + "".join(output))
        info = httpx.get(f"http://127.0.0.1:{port}/info", headers={"X-API-Key": KEY}, timeout=30)
    finally:
        process.terminate()
        process.wait(timeout=15)
    assert info.json()["service"]["app_id"] == "arith-0224"
