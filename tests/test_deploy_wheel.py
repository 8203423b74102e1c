"""Deploying from an install with no checkout: the wheel, a fresh virtualenv, real processes.

Once per session: build the wheel with `uv build`, install it with its `modal` extra into a
fresh virtualenv (uv, from the package index, its cache kept under pytest's temporary root),
and drive the installed `synth-ai` from a directory outside the checkout. Then play Modal's
part offline: a second virtualenv holds only what the plan says to pip install (plus Modal's
client, which Modal puts in every container), the files Modal would mount are copied to where
Modal would put them, and the entry is imported with `modal.is_local()` false and served, as a
container would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from synth_ai.task.serving import listening_socket

from .conftest import KEY, rollout_body

ROOT = Path(__file__).resolve().parents[1]
UV = [sys.executable, "-m", "uv"]
STEP_TIMEOUT_S = 600

REPORTER = """\
import json, os, runpy, sys
from modal._utils.async_utils import synchronizer
from modal.mount import _Mount, _select_files

module = sys.argv[sys.argv.index("-m") + 1]
entry = runpy.run_module(module, run_name=module)
kwargs = entry["function_kwargs"]

def mounts(obj):
    found = []
    for dep in obj._deps_():
        found += [dep] if isinstance(dep, _Mount) else mounts(dep)
    return found

files = {}
for mount in mounts(synchronizer._translate_in(kwargs["image"])):
    files.update({str(remote): str(local) for local, remote in _select_files(mount.entries)})
seen = {"argv": sys.argv, "plan": json.loads(os.environ["SYNTH_MODAL_PLAN"]),
        "function_env": kwargs["env"], "secrets": [repr(s) for s in kwargs["secrets"]],
        "include_source": kwargs["include_source"], "files": files}
json.dump(seen, open(os.environ["REPORT_PATH"], "w"))
print("Created web function web => https://team--synth-math-web.modal.run")
"""

CONTAINER = """\
import importlib, importlib.metadata, json, socket, sys

# What Modal's container runtime has done before it imports the function's module.
from modal._runtime.task_lifecycle_manager import _TaskLifecycleManager
_TaskLifecycleManager._singleton = object()

import modal
import uvicorn

entry = importlib.import_module(sys.argv[2])
try:
    installed = importlib.metadata.version("synth-ai")
except importlib.metadata.PackageNotFoundError:
    installed = None
import synth_ai
print(json.dumps({"is_local": modal.is_local(), "synth_ai": synth_ai.__file__,
                  "installed": installed, "functions": entry.function_kwargs}), flush=True)
sock = socket.socket(fileno=int(sys.argv[1]))
config = uvicorn.Config(entry.web.local(), lifespan="on", log_level="warning")
uvicorn.Server(config).run(sockets=[sock])
"""


@dataclass
class Install:
    work: Path
    wheel: Path
    venv: Path
    env: dict[str, str]

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / "synth-ai"), *args],
            cwd=self.work,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_S,
        )


def uv(*args: str, env: dict[str, str]) -> None:
    subprocess.run([*UV, *args], env=env, check=True, timeout=STEP_TIMEOUT_S, capture_output=True)


def outside_environment(home: Path, cache: Path) -> dict[str, str]:
    """This environment without anything pointing at the checkout or its venv, a clean HOME,
    a token that looks configured (nothing reaches Modal), the tests' key, and uv's cache kept
    across sessions under pytest's temporary root."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(
        HOME=str(home),
        MODAL_TOKEN_ID="ak-test",
        MODAL_TOKEN_SECRET="as-test",
        ENVIRONMENT_API_KEY=KEY,
        UV_CACHE_DIR=str(cache),
    )
    return env


@pytest.fixture(scope="session")
def install(tmp_path_factory: pytest.TempPathFactory) -> Install:
    work = tmp_path_factory.mktemp("outside")
    (work / "home").mkdir()
    env = outside_environment(work / "home", tmp_path_factory.getbasetemp().parent / "uv-cache")
    uv("build", "--wheel", "--out-dir", str(work / "dist"), str(ROOT), env=env)
    (wheel,) = (work / "dist").glob("synth_ai-*.whl")
    uv("venv", "--python", sys.executable, str(work / "venv"), env=env)
    spec = f"synth-ai[modal] @ {wheel.as_uri()}"
    uv("pip", "install", "--python", str(work / "venv" / "bin" / "python"), spec, env=env)
    return Install(work, wheel, work / "venv", env)


def site_packages(venv: Path) -> Path:
    (found,) = venv.glob("lib/python*/site-packages")
    return found


def wheel_requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        lines = archive.read(name).decode().splitlines()
    found = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Requires-Dist:")]
    return [req for req in found if "extra ==" not in req]


def test_an_installed_wheel_plans_its_own_source_and_no_index_lookup(install: Install) -> None:
    result = install.run("deploy", "math", "--runtime", "modal", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    site = site_packages(install.venv)
    assert f"local source: synth_ai: {site / 'synth_ai'} -> /root/synth_ai" in out
    assert "local source: math_task_app" not in out  # the app is inside the package
    assert not (site / "math_task_app").exists() and not (site / "examples").exists()
    (pip_line,) = [line for line in out.splitlines() if "pip install:" in line]
    assert pip_line.split("pip install:", 1)[1].strip().split(", ") == wheel_requirements(
        install.wheel
    )
    assert "synth-ai" not in pip_line and "synth_ai" not in pip_line
    assert "-m synth_ai.deploy.entry" in out and str(ROOT) not in out
    assert not (site / "modal_entry.py").exists()
    assert "a deploy would go ahead" in out
    asked = install.run("deploy", "math", "--dry-run", "--package", "synth-ai==0.2.24")
    assert "package:      synth-ai==0.2.24 (from the index, as asked by --package)" in asked.stdout


@pytest.fixture(scope="session")
def deployed(install: Install) -> dict[str, Any]:
    """`synth-ai deploy math --runtime modal` from the wheel, a recorder standing in for the
    `modal` CLI: it imports the installed entry module as `modal deploy -m` does and reports
    what would be deployed, down to the files Modal would mount (Modal's own walk of them)."""
    reporter = install.work / "reporter.py"
    reporter.write_text(REPORTER)
    report = install.work / "report.json"
    python = install.venv / "bin" / "python"
    result = install.run(
        "deploy",
        "math",
        "--runtime",
        "modal",
        "--max-containers",
        "2",
        SYNTH_MODAL_CLI=f"{python} {reporter}",
        REPORT_PATH=str(report),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Deployed: https://team--synth-math-web.modal.run" in result.stdout
    return json.loads(report.read_text())


def test_a_deploy_from_the_wheel_mounts_that_install(
    install: Install, deployed: dict[str, Any]
) -> None:
    assert deployed["argv"][1:] == ["deploy", "-m", "synth_ai.deploy.entry", "--name", "synth-math"]
    assert deployed["secrets"] == ["Secret.from_dict([ENVIRONMENT_API_KEY])"]
    assert deployed["include_source"] is False
    site = site_packages(install.venv)
    files = deployed["files"]
    assert files["/root/synth_ai/deploy/entry.py"] == str(site / "synth_ai/deploy/entry.py")
    app = "synth_ai/examples/math_task_app/app.py"
    assert files[f"/root/{app}"] == str(site / app)
    assert all(Path(local).is_relative_to(site) for local in files.values())
    assert not any("__pycache__" in remote for remote in files)
    assert json.loads(deployed["function_env"]["SYNTH_MODAL_SETTINGS"])["max_containers"] == 2


@pytest.fixture(scope="session")
def container(install: Install, deployed: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The deployment as a container runs it: the plan's requirements (and Modal's client) in
    their own virtualenv, the mounted files under a stand-in /root, the function environment
    and the secret's variables set, the entry imported with `modal.is_local()` false."""
    work = install.work / "container"
    python = work / "venv" / "bin" / "python"
    modal_version = subprocess.run(
        [str(install.venv / "bin" / "python"), "-c", "import modal; print(modal.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    uv("venv", "--python", sys.executable, str(work / "venv"), env=install.env)
    requirements = [*deployed["plan"]["image"]["requirements"], f"modal=={modal_version}"]
    uv("pip", "install", "--python", str(python), *requirements, env=install.env)
    root = work / "root"
    for remote, local in deployed["files"].items():
        target = root / Path(remote).relative_to("/root")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, target)
    (work / "container.py").write_text(CONTAINER)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(work),
        "PYTHONPATH": str(root),
        **deployed["function_env"],
        "ENVIRONMENT_API_KEY": KEY,  # what Modal injects from the deployment's secret
    }
    sock = listening_socket()
    process = subprocess.Popen(
        [str(python), str(work / "container.py"), str(sock.fileno()), "synth_ai.deploy.entry"],
        cwd=root,
        env=env,
        pass_fds=(sock.fileno(),),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, f"the container did not start (exit {process.wait(30)})"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", {**json.loads(line), "root": root}
    finally:
        process.terminate()
        process.wait(30)
        sock.close()


def test_the_container_path_builds_and_serves_the_app_from_that_install(
    container: tuple[str, dict[str, Any]], offline_policy_url: str
) -> None:
    url, seen = container
    assert seen["is_local"] is False and seen["functions"] == {}
    assert seen["installed"] is None, "synth-ai is installed in the container: not the source"
    assert Path(seen["synth_ai"]).is_relative_to(seen["root"])
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/health").status_code == 401
        health = client.get("/health", headers={"X-API-Key": KEY})
        assert health.status_code == 200 and health.json()["service"] == "math"
        body = rollout_body(3, policy={"config": {"inference_url": offline_policy_url}})
        rollout = client.post("/rollout", json=body, headers={"X-API-Key": KEY})
    assert rollout.status_code == 200, rollout.text
    assert rollout.json()["metrics"]["outcome_score"] in (0.0, 1.0)
