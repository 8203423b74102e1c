"""Tokens and spend: priced models cost, unpriced ones count tokens only and are named, limits
stop the run, and a resumed run carries what was spent before."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synth_ai.optimize.spend import TokenMeter, usage_counts

from .test_optimize_apps import optimize
from .test_optimize_e2e import config_text


def test_priced_and_unpriced_models() -> None:
    meter = TokenMeter(prices={"mine": (1.0, 2.0)})
    meter.add("policy", "mine", 1_000_000, 500_000)
    meter.add("reflection", "gpt-4o-mini", 1_000_000, 0)
    meter.add("reflection", "nobody-knows", 10, 10)
    snapshot = meter.snapshot()
    assert snapshot["spend_usd"] == pytest.approx(2.0 + 0.15)
    assert snapshot["unpriced_models"] == ["nobody-knows"]
    assert snapshot["policy"] == {"prompt": 1_000_000, "completion": 500_000}
    assert snapshot["total"] == 2_500_020


def test_limits_and_carry_over() -> None:
    before = TokenMeter(prices={"m": (10.0, 10.0)})
    before.add("policy", "m", 60_000, 0)
    resumed = TokenMeter(prices={"m": (10.0, 10.0)}, max_tokens=100_000, max_spend_usd=1.0)
    resumed.carry(before.snapshot())
    assert resumed.exceeded() is None
    resumed.add("policy", "m", 40_000, 0)
    assert (resumed.exceeded() or "").startswith("token limit reached")
    spend = TokenMeter(prices={"m": (10.0, 10.0)}, max_spend_usd=0.5)
    spend.carry(before.snapshot())  # $0.60 spent before
    assert (spend.exceeded() or "").startswith("spend limit reached")
    assert spend.unpriced() == []  # what was carried is not an unpriced model


@given(st.one_of(st.none(), st.text(), st.dictionaries(st.text(), st.integers() | st.floats())))
def test_usage_from_any_answer_is_counts(usage: object) -> None:
    prompt, completion = usage_counts(usage)
    assert prompt >= 0 and completion >= 0


def test_a_spend_limit_stops_the_run(tmp_path: Path) -> None:
    from synth_ai.offline_policy import create_offline_policy_app
    from synth_ai.task import serve_in_background

    with serve_in_background(create_offline_policy_app()) as policy:
        config = tmp_path / "optimize.toml"
        config.write_text(
            config_text("math", policy)
            + "\n[prompt_learning.gepa.token]\nmax_spend_usd = 0.001\n"
            + "[prompt_learning.gepa.token.prices]\n"
            + '"offline-prompt-sensitive" = { input_per_million = 1.0, output_per_million = 1.0 }\n'
        )
        code, report, err = optimize(config, "--jobs-db", str(tmp_path / "jobs.db"))
    assert code == 0, err
    assert report["stop_reason"].startswith("spend limit reached")
    assert report["tokens"]["spend_usd"] >= 0.001
    assert "offline-prompt-sensitive" not in report["tokens"]["unpriced_models"]
