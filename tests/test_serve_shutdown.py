"""Ctrl-C on `synth-ai serve` (issue 26 item 14): the first tells every rollout in flight
(`context.cancelled`), so a cooperative executor ends and is answered; a second exits at once,
even with a worker thread stuck in a blocking call."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import KEY
from .processes import free_port

APP = """
import threading

from synth_ai.task import TaskAppConfig, TaskAppEntry, TaskDescriptor, TaskInfo, register_task_app

base = TaskInfo(task=TaskDescriptor(id="stop", name="stop"), environment="stop")


def rollout(request, context):
    if request.env.seed == 0:
        threading.Event().wait(120)  # a blocking call that never looks at context.cancelled
        return {"run_id": request.run_id, "metrics": {"outcome_score": 0.0}}
    told = context.cancelled.wait(120)
    return {"run_id": request.run_id, "metrics": {"outcome_score": 1.0 if told else 0.0}}


def build_config():
    return TaskAppConfig(app_id="stop", name="stop", description="d", base_task_info=base,
                         rollout=rollout, max_rollout_seconds=300)


ENTRY = register_task_app(TaskAppEntry(app_id="stop", config_factory=build_config))
"""


class Served:
    """`synth-ai serve` as a real process, its output lines in a queue as they come."""

    def __init__(self, app_file: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "synth_ai", "serve", str(app_file), "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "ENVIRONMENT_API_KEY": KEY},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for("Uvicorn running on")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put("")  # the end of the output

    def wait_for(self, text: str, timeout_s: float = 30) -> None:
        while True:
            line = self.lines.get(timeout=timeout_s)
            self.seen.append(line)
            if text in line:
                return
            if not line:
                raise AssertionError(f"no {text!r} in:\n" + "".join(self.seen))

    def rollout_in_thread(self, seed: int) -> tuple[threading.Thread, dict[str, Any]]:
        answer: dict[str, Any] = {}

        def post() -> None:
            try:
                response = httpx.post(
                    f"{self.url}/rollout",
                    json={"run_id": f"r{seed}", "env": {"seed": seed}},
                    headers={"X-API-Key": KEY},
                    timeout=60,
                )
                answer["status"], answer["text"] = response.status_code, response.text
            except httpx.HTTPError as exc:
                answer["error"] = exc

        thread = threading.Thread(target=post, daemon=True)
        thread.start()
        with httpx.Client(base_url=self.url, headers={"X-API-Key": KEY}) as client:
            deadline = time.monotonic() + 30  # polled, no sleeps; a deadline, not a count
            while time.monotonic() < deadline:
                if client.get("/health").json()["rollouts"]["running"] == 1:
                    return thread, answer
        raise AssertionError("the rollout never started")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def app_file(tmp_path: Path) -> Path:
    path = tmp_path / "stop_app.py"
    path.write_text(APP)
    return path


def test_the_first_ctrl_c_sets_cancelled_for_rollouts_in_flight(app_file: Path) -> None:
    served = Served(app_file)
    try:
        thread, answer = served.rollout_in_thread(seed=1)
        served.process.send_signal(signal.SIGINT)
        thread.join(20)
        assert answer.get("status") == 200, answer
        assert json.loads(answer["text"])["metrics"]["outcome_score"] == 1.0  # it was told
        assert served.process.wait(20) is not None
    finally:
        served.stop()


@pytest.mark.parametrize("round_", range(2))
def test_a_second_ctrl_c_exits_at_once_past_a_stuck_worker(app_file: Path, round_: int) -> None:
    served = Served(app_file)
    try:
        served.rollout_in_thread(seed=0)
        served.process.send_signal(signal.SIGINT)
        served.wait_for("Waiting for connections to close")
        served.process.send_signal(signal.SIGINT)
        try:
            code = served.process.wait(15)
        except subprocess.TimeoutExpired:
            raise AssertionError("serve did not exit after a second Ctrl-C") from None
        assert code != 0
    finally:
        served.stop()
