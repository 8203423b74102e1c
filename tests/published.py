"""The published synth-ai 0.2.24, in the bench's cached virtualenv (`bench/.cache/published`,
made by `make test` and by bench/framework_overhead.py). Tests that need it skip, saying why,
where it is absent; with `SYNTH_REQUIRE_PUBLISHED=1` (set by `.ci/run`) they fail instead, so CI
always runs them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED_PYTHON = ROOT / "bench" / ".cache" / "published" / "bin" / "python"


def published_python() -> Path:
    """The virtualenv's python; skips (or fails, where required) the test without it."""
    if not PUBLISHED_PYTHON.exists():
        reason = (
            f"no cached synth-ai 0.2.24 virtualenv at {PUBLISHED_PYTHON.parent.parent}: "
            "`make test` and bench/framework_overhead.py make it (ensure_published)"
        )
        if os.environ.get("SYNTH_REQUIRE_PUBLISHED") == "1":
            pytest.fail(f"the published 0.2.24 is required here: {reason}")
        pytest.skip(reason)
    return PUBLISHED_PYTHON
