"""Where a run keeps what a resumption needs, beside its artifacts: gepa's own state
(`gepa_run/`, saved by gepa at each iteration's start) and ours (`run_state.json`: the config,
rollouts spent, tokens, the seed prompt's validation results and every candidate so far).

`run_state.json` is replaced atomically after every batch of rollouts, so after a kill -9 it
holds every rollout that was paid for; a resumed run starts its budget from there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

STATE_NAME = "run_state.json"
GEPA_DIR = "gepa_run"
BEST_NAME = "best_prompt.json"
CANDIDATES_NAME = "candidates.json"


Keep = Callable[[str, int, str, Callable[[], None]], None]
"""Records an artifact as it is renamed into place: (name, size, sha256, the rename), run in
the writer's thread (a jobs server's artifact index does both in one transaction)."""


def write_json(path: Path, document: Any, keep: Keep | None = None) -> None:
    """Write beside the target, fsync, then rename over it (through `keep`, when given, which
    records the file's size and sha256 with it): a reader never sees half a file, and a crash
    leaves the previous version."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    data = json.dumps(document, indent=1, default=str).encode("utf-8")
    try:
        with open(partial, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if keep is None:
            os.replace(partial, path)
        else:
            digest = hashlib.sha256(data).hexdigest()
            keep(path.name, len(data), digest, lambda: os.replace(partial, path))
    finally:
        partial.unlink(missing_ok=True)


def read_state(folder: Path) -> dict[str, Any]:
    """A run's state; `FileNotFoundError` when it kept none."""
    document = json.loads((folder / STATE_NAME).read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"{folder / STATE_NAME} is not a run state")
    return document


def carry_over(source: Path, target: Path) -> None:
    """Copy a stopped run's state into the folder of the run that resumes it."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / STATE_NAME, target / STATE_NAME)
    if (source / GEPA_DIR).is_dir():
        shutil.copytree(source / GEPA_DIR, target / GEPA_DIR, dirs_exist_ok=True)
