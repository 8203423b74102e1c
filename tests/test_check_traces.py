"""The rollouts `synth-ai check` sends are marked `purpose: check` in their traces (a mark the
server reads from the request and accepts only from a fixed set), and SFT export leaves them out
unless `--include-checks` asks for them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from synth_ai.offline_policy import OFFLINE_MODEL
from synth_ai.task import SyncTaskAppClient
from synth_ai.tracing_v3 import TraceReader

from .conftest import KEY
from .processes import start_server, stop_server
from .test_check_cli import synth_check

USER_PURPOSES = (None, "training", "check\nplus free text", ["check"])
"""What users' own rollouts send as `record.purpose`: nothing, or values outside the set."""


def export(db: Path, out: Path, *flags: str) -> list[str]:
    command = ["traces", "export-sft", str(out), "--db", str(db), *flags]
    result = subprocess.run(
        [sys.executable, "-m", "synth_ai", *command],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result
    return out.read_text().splitlines()


def test_check_rollouts_are_marked_and_left_out_of_sft_export(
    tmp_path: Path, offline_policy_url: str
) -> None:
    db, sft = tmp_path / "traces.db", tmp_path / "sft"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TASKAPP_"))}
    env |= {
        "ENVIRONMENT_API_KEY": KEY,
        "TASKAPP_TRACING_ENABLED": "1",
        "TASKAPP_TRACE_DB": str(db),
        "TASKAPP_SFT_OUTPUT_DIR": str(sft),
    }
    process, url, output = start_server(["serve", "math"], env=env)
    try:
        assert synth_check(url, "--api-key", KEY, "--offline-policy").returncode == 0
        policy = {"inference_url": offline_policy_url, "model": OFFLINE_MODEL}
        with SyncTaskAppClient(url, KEY) as client:
            for index, purpose in enumerate(USER_PURPOSES):
                record = {} if purpose is None else {"purpose": purpose}
                body = {"run_id": f"user-{index}", "env": {"seed": index}, "record": record}
                client.rollout({**body, "policy": {"config": policy}})
    finally:
        stop_server(process, output)  # a clean stop flushes the live SFT file

    with TraceReader(db) as reader:
        metadata = {row["session_id"]: row["metadata"] for row in reader.list_sessions()}
    checks = {sid for sid in metadata if sid.startswith("check-")}
    users = {sid for sid in metadata if sid.startswith("user-")}
    assert len(checks) == 2 and len(users) == len(USER_PURPOSES)
    assert all(metadata[sid]["purpose"] == "check" for sid in checks)
    assert all("purpose" not in metadata[sid] for sid in users)  # never stored as sent

    live = (sft / "sft_examples.jsonl").read_text().splitlines()
    assert len(live) == len(USER_PURPOSES)  # one LLM call per rollout, none from the check
    exported = export(db, tmp_path / "out.jsonl")
    assert sorted(exported) == sorted(live)
    everything = export(db, tmp_path / "all.jsonl", "--include-checks")
    assert len(everything) == len(USER_PURPOSES) + len(checks)
