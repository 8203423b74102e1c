"""The README's "Optimize a prompt" config runs as written against the offline stand-ins, and
parses under the published parser (synth-ai 0.2.24) too."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from .conftest import KEY
from .processes import start_server, stop_server
from .published import published_python

ROOT = Path(__file__).resolve().parents[1]
"""The virtualenv with synth-ai 0.2.24 that bench/framework_overhead.py makes."""


def readme_config() -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```toml\n# optimize\.toml\n(.*?)```", text, re.S)
    assert block, "the README lost its optimize.toml"
    assert "synth-ai optimize optimize.toml" in text
    return block.group(1)


def test_the_readme_config_runs_as_written(tmp_path: Path) -> None:
    config = readme_config()
    assert config.count("http://127.0.0.1:8000/v1") == 2
    env = {**os.environ, "ENVIRONMENT_API_KEY": KEY}
    process, policy, output = start_server(["policy", "serve", "--offline"], env=env)
    try:
        (tmp_path / "optimize.toml").write_text(config.replace("http://127.0.0.1:8000", policy))
        result = subprocess.run(
            [sys.executable, "-m", "synth_ai", "optimize", "optimize.toml", "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env=env,
        )
    finally:
        stop_server(process, output)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["best_score"]["test"] > report["seed_score"]["test"]
    saved = json.loads((tmp_path / "optimize_results" / f"{report['job_id']}.json").read_text())
    assert saved["best_prompt"] == report["best_prompt"]


def test_the_readme_config_parses_under_the_published_parser(tmp_path: Path) -> None:
    python = published_python()
    path = tmp_path / "optimize.toml"
    path.write_text(readme_config())
    probe = (
        "import sys; from pathlib import Path; "
        "from synth_ai.api.train.configs.prompt_learning import PromptLearningConfig; "
        "c = PromptLearningConfig.from_path(Path(sys.argv[1])); "
        "print(c.algorithm, c.gepa._get_rollout_budget(), len(c.gepa._get_test_pool()))"
    )
    result = subprocess.run(
        [str(python), "-c", probe, str(path)],
        cwd=tmp_path,  # not the checkout, whose synth_ai would shadow the published one
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["gepa", "60", "12"]
