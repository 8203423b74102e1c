"""The README's five-minute example runs as written."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from synth_ai.task import create_task_app, get_task_app

from .conftest import KEY, InProcess

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_guide_example_serves_rollouts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline_policy_url: str
) -> None:
    example = re.search(r"```python\n(# my_app\.py\n.*?)```", README.read_text(), re.S)
    assert example, "the README lost its my_app.py example"
    (tmp_path / "my_app.py").write_text(example.group(1))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_app", raising=False)
    __import__("my_app")
    app = create_task_app(get_task_app("echo").config_factory())
    body = {
        "run_id": "r1",
        "env": {"seed": 3},
        "policy": {"config": {"inference_url": offline_policy_url}},
    }
    response = InProcess(app).post("/rollout", json=body, headers={"X-API-Key": KEY})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["metrics"]["outcome_score"] in (0.0, 1.0)
    assert data["pipeline_metadata"]["inference_url"].endswith("cid=r1")
    assert InProcess(app).get("/task_info?seed=3", headers={"X-API-Key": KEY}).status_code == 200
