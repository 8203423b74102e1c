"""The prompt-learning config: the published TOML parses; anything else is one line naming the
key and exit 2, before anything starts."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth_ai.optimize.config import ConfigError, parse_config

VALID = """
[prompt_learning]
algorithm = "gepa"
task_app_url = "http://127.0.0.1:9"

[prompt_learning.initial_prompt]
messages = [
  { role = "system", pattern = "Be careful.", order = 0 },
  { role = "user", pattern = "Problem: {problem}", order = 1 },
]
wildcards = { problem = "REQUIRED" }

[prompt_learning.policy]
model = "m"
provider = "openai"
inference_url = "http://127.0.0.1:9/v1"
temperature = 0

[prompt_learning.gepa.rollout]
budget = 40
max_concurrent = 4
minibatch_size = 3

[prompt_learning.gepa.evaluation]
seeds = [1, 2, 3]
validation_seeds = [4, 5]
test_pool = [6, 7]

[prompt_learning.gepa.mutation]
llm_model = "r"
llm_inference_url = "http://127.0.0.1:9/v1"

[prompt_learning.gepa.token]
max_limit = 100000
"""


def document() -> dict[str, Any]:
    return tomllib.loads(VALID)


def refusal(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_the_published_format_parses() -> None:
    config = parse_config(document()).prompt_learning
    assert config.gepa.rollout.budget == 40
    assert config.gepa.evaluation.test_pool == [6, 7]
    assert config.policy.temperature == 0.0


def test_flat_legacy_keys_are_nested_and_nested_values_win() -> None:
    data = document()
    gepa = data["prompt_learning"]["gepa"]
    del gepa["rollout"]["budget"]
    gepa.update(rollout_budget=30, max_concurrent_rollouts=9, mutation_llm_model="flat")
    config = parse_config(data).prompt_learning.gepa
    assert config.rollout.budget == 30
    assert config.rollout.max_concurrent == 4  # the nested value wins
    assert config.mutation.llm_model == "r"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (("prompt_learning", "typo"), "prompt_learning.typo: unknown key"),
        (("prompt_learning", "gepa", "rollout", "budgett"), "gepa.rollout.budgett: unknown key"),
        (("prompt_learning", "policy", "modle"), "policy.modle: unknown key"),
        (("top",), "top: unknown key"),
    ],
)
def test_an_unknown_key_is_named(path: tuple[str, ...], expected: str) -> None:
    data = document()
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = 1
    assert expected in refusal(data)


@pytest.mark.parametrize("key", ["population", "mutation_rate"])
def test_settings_local_gepa_lacks_are_refused_not_ignored(key: str) -> None:
    data = document()
    data["prompt_learning"]["gepa"][key] = {"initial_size": 20} if key == "population" else 0.3
    assert refusal(data).startswith(f"prompt_learning.gepa: {key} is a setting of the hosted")


def test_mipro_is_refused_in_one_line() -> None:
    data = document()
    data["prompt_learning"]["algorithm"] = "mipro"
    assert "MIPRO is not supported" in refusal(data)


def test_a_missing_required_field_is_named() -> None:
    data = document()
    del data["prompt_learning"]["gepa"]["evaluation"]["test_pool"]
    assert refusal(data) == "prompt_learning.gepa.evaluation.test_pool: Field required"


def test_the_test_pool_never_overlaps_the_search() -> None:
    data = document()
    data["prompt_learning"]["gepa"]["evaluation"]["test_pool"] = [5, 6]
    assert "test_pool must not share seeds" in refusal(data)


def test_a_seed_listed_twice_is_refused() -> None:
    data = document()
    data["prompt_learning"]["gepa"]["evaluation"]["validation_seeds"] = [4, 4]
    assert "validation_seeds lists a seed twice" in refusal(data)


def test_a_key_is_never_echoed() -> None:
    data = document()
    data["prompt_learning"]["task_app_api_key"] = ["sk-secret-value"]
    message = refusal(data)
    assert message.startswith("prompt_learning.task_app_api_key:")
    assert "sk-secret" not in message


NUMERIC = [
    ("gepa", "rollout", "budget"),
    ("gepa", "rollout", "max_concurrent"),
    ("gepa", "rollout", "minibatch_size"),
    ("gepa", "token", "max_limit"),
    ("gepa", "token", "max_spend_usd"),
    ("policy", "temperature"),
    ("policy", "max_completion_tokens"),
]
HOSTILE = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, -1, 0, 10**30, -(10**30), True, False]),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not 0 < x < 1),
)


@settings(max_examples=150, deadline=None)
@given(field=st.sampled_from(NUMERIC), value=HOSTILE)
def test_hostile_numbers_are_refused_by_name(field: tuple[str, ...], value: Any) -> None:
    data = copy.deepcopy(document())
    target = data["prompt_learning"]
    for part in field[:-1]:
        target = target.setdefault(part, {})
    target[field[-1]] = value
    try:
        parse_config(data)
    except ConfigError as exc:
        assert str(exc).startswith("prompt_learning." + ".".join(field)), str(exc)
    else:  # some values are legal for some fields (a temperature of 0, a float spend)
        assert isinstance(value, int | float) and not isinstance(value, bool)
        assert math.isfinite(value) and 0 <= value < 10**15


@settings(max_examples=60, deadline=None)
@given(seeds=st.lists(st.one_of(st.integers(), st.floats(), st.text(max_size=3)), max_size=4))
def test_hostile_seed_lists_are_refused_by_name(seeds: list[Any]) -> None:
    data = copy.deepcopy(document())
    data["prompt_learning"]["gepa"]["evaluation"]["seeds"] = seeds
    try:
        config = parse_config(data)
    except ConfigError as exc:
        assert str(exc).startswith("prompt_learning.gepa"), str(exc)
    else:
        assert all(type(seed) is int for seed in config.prompt_learning.gepa.evaluation.seeds)


def test_the_cli_refuses_a_bad_config_with_exit_2_before_starting(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(VALID.replace("budget = 40", "budget = nan"))
    jobs_db = tmp_path / "jobs.db"
    result = subprocess.run(
        [sys.executable, "-m", "synth_ai", "optimize", str(config), "--jobs-db", str(jobs_db)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "prompt_learning.gepa.rollout.budget" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not jobs_db.exists()  # nothing started


def test_the_train_alias_reads_the_same_config(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(VALID.replace('algorithm = "gepa"', 'algorithm = "mipro"'))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "synth_ai",
            "train",
            "--type",
            "prompt_learning",
            "--config",
            str(config),
            "--jobs-db",
            str(tmp_path / "jobs.db"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "MIPRO is not supported" in result.stderr
