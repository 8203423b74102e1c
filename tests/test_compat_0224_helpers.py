"""0.2.24's helper functions behave as they did there (issue 30, item 1): rubrics, datasets,
tracing utils, vendor keys, key helpers, HTTPException mapping and the proxy payload helpers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from synth_ai.task.auth import (
    allowed_environment_api_keys,
    is_api_key_header_authorized,
    normalize_environment_api_key,
)
from synth_ai.task.datasets import TaskDatasetRegistry, TaskDatasetSpec
from synth_ai.task.errors import error_payload, from_http_exception, http_exception
from synth_ai.task.proxy import inject_system_hint, prepare_for_groq, prepare_for_openai
from synth_ai.task.rubrics import (
    Criterion,
    Rubric,
    blend_rubrics,
    load_rubric,
    score_events_against_rubric,
    score_outcome_against_rubric,
)
from synth_ai.task.tracing_utils import (
    build_tracer_factory,
    resolve_sft_output_dir,
    resolve_tracing_db_url,
    tracing_env_enabled,
)
from synth_ai.task.vendors import get_openai_key_or_503, normalize_vendor_keys
from tests.conftest import KEY

RUBRIC = {"version": "1", "goal_text": "g", "criteria": [{"id": "a", "description": "A"}]}


def test_load_rubric_from_a_file_text_mapping_or_rubric(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(json.dumps(RUBRIC))
    (tmp_path / "r.yaml").write_text("version: '1'\ncriteria:\n  - {id: a, description: A}\n")
    from_json = load_rubric(str(tmp_path / "r.json"))
    assert from_json == load_rubric(json.dumps(RUBRIC)) == load_rubric(RUBRIC)
    assert load_rubric(str(tmp_path / "r.yaml")).criteria[0].id == "a"  # type: ignore[union-attr]
    assert load_rubric(from_json) is from_json and load_rubric(None) is None
    with pytest.raises(ValueError, match="backend judge format"):
        load_rubric({"event": [], "outcome": []})
    with pytest.raises(ValidationError):
        load_rubric({"version": "1", "criteria": [{"id": "a", "description": "A", "weight": 0}]})
    with pytest.raises(ValidationError):
        Rubric(version="1", aggregation="median")


def test_blend_rubrics_merges_weights_and_inherits_aggregation() -> None:
    base = Rubric(
        version="1",
        aggregation="sum",
        criteria=[
            Criterion(id="a", description="A", weight=2.0),
            Criterion(id="b", description="B", weight=3.0),
        ],
    )
    override = Rubric(
        version="2",
        aggregation="inherit",
        criteria=[Criterion(id="a", description="", weight=0.5, required=True)],
    )
    blended = blend_rubrics(base, override)
    assert blended is not None
    assert [(c.id, c.weight, c.description, c.required) for c in blended.criteria] == [
        ("a", 1.0, "A", True),
        ("b", 3.0, "B", False),
    ]
    assert blended.aggregation == "sum" and blended.version == "2"
    assert blend_rubrics(None, base) is base and blend_rubrics(base, None) is base


@given(st.dictionaries(st.sampled_from("abc"), st.floats(0, 1), max_size=3))
def test_weighted_scores_are_a_weighted_mean(values: dict[str, float]) -> None:
    weights = {"a": 1.0, "b": 2.0, "c": 3.0}
    rubric = Rubric(
        version="1",
        criteria=[Criterion(id=c, description=c, weight=w) for c, w in weights.items()],
    )
    outcome = score_outcome_against_rubric(dict(values), rubric)
    nested = score_outcome_against_rubric({"criteria": dict(values)}, rubric)
    events = score_events_against_rubric(
        [{"criterion_id": k, "score": v} for k, v in values.items()], rubric
    )
    expected = sum(values.get(c, 0.0) * w for c, w in weights.items()) / 6
    assert outcome["score"] == pytest.approx(expected)
    assert outcome == nested == events
    assert score_outcome_against_rubric(dict(values), None)["score"] is None


def test_dataset_registry_speaks_both_forms() -> None:
    calls: list[str | None] = []
    registry = TaskDatasetRegistry()
    spec = TaskDatasetSpec(id="d", name="D", splits=["train", "test"], default_split="train")

    def load(info: object) -> list[int]:
        calls.append(getattr(info, "default_split", None))
        return [1, 2]

    registry.register(spec, load)
    assert registry.get("d") is registry.get("d") and calls == ["train"]
    assert registry.get(TaskDatasetSpec(id="d", name="D", default_split="test", splits=["test"]))
    assert calls == ["train", "test"]
    assert registry.describe("d") is spec and registry.describe() == [spec] == registry.list()
    with pytest.raises(KeyError, match="unknown dataset"):
        registry.get("nope")
    uncached = TaskDatasetRegistry()
    uncached.register(spec, load, cache=False)
    uncached.get("d"), uncached.get("d")
    assert len(calls) == 4
    with pytest.raises(ValidationError):
        TaskDatasetSpec(id="d", name="D", splits=["a"], default_split="b")
    assert TaskDatasetRegistry.ensure_split(spec, None) == "train"
    with pytest.raises(ValueError):
        TaskDatasetRegistry.ensure_split(spec, "dev")
    assert TaskDatasetRegistry.normalise_seed(-7, cardinality=5) == 2


def test_tracing_utils_read_this_projects_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TASKAPP_TRACING_ENABLED", raising=False)
    assert tracing_env_enabled() is False and tracing_env_enabled(default=True) is True
    monkeypatch.setenv("TASKAPP_TRACING_ENABLED", "yes")
    assert tracing_env_enabled() is True
    monkeypatch.setenv("TASKAPP_TRACING_ENABLED", "maybe")
    assert tracing_env_enabled(default=True) is True
    monkeypatch.setenv("TASKAPP_TRACING_ENABLED", "0")
    monkeypatch.setenv("TASKAPP_TRACE_DB", str(tmp_path / "t.db"))
    assert resolve_tracing_db_url() == str(tmp_path / "t.db")
    monkeypatch.setenv("TASKAPP_SFT_OUTPUT_DIR", str(tmp_path / "sft"))
    assert resolve_sft_output_dir() == str(tmp_path / "sft") and (tmp_path / "sft").is_dir()
    assert build_tracer_factory(dict, enabled=False, db_url="x") is None
    factory = build_tracer_factory(dict, enabled=True, db_url="x")
    assert factory is not None and factory() == {"db_url": "x"}


def test_vendor_keys_fall_back_to_dev_names_and_print_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # set, then removed: monkeypatch then restores both, although normalize_vendor_keys writes
    # OPENAI_API_KEY into os.environ (as 0.2.24's does)
    for name in ("OPENAI_API_KEY", "GROQ_API_KEY"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    with pytest.raises(HTTPException) as refused:
        get_openai_key_or_503()
    assert refused.value.status_code == 503
    assert refused.value.detail == error_payload(  # type: ignore[comparison-overlap]
        "missing_openai_api_key", "OPENAI_API_KEY is not configured"
    )
    monkeypatch.setenv("DEV_OPENAI_API_KEY", "xjqzdevkey")
    assert normalize_vendor_keys() == {"OPENAI_API_KEY": "xjqzdevkey", "GROQ_API_KEY": None}
    assert get_openai_key_or_503() == "xjqzdevkey"
    assert "xjqz" not in capsys.readouterr().out


def test_key_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    assert normalize_environment_api_key() == KEY
    monkeypatch.setenv("ENVIRONMENT_API_KEY_ALIASES", "second")
    assert allowed_environment_api_keys() == {KEY, "second"}
    assert is_api_key_header_authorized({"x-api-key": "second"})
    assert is_api_key_header_authorized({"Authorization": f"Bearer {KEY}"})
    assert not is_api_key_header_authorized({"x-api-key": "nope"})
    monkeypatch.delenv("ENVIRONMENT_API_KEY")
    monkeypatch.setenv("DEV_ENVIRONMENT_API_KEY", "devkey")
    assert normalize_environment_api_key() == "devkey"


@given(st.integers(400, 599), st.text(max_size=50))
def test_an_http_exception_keeps_its_status_in_the_envelope(status: int, detail: str) -> None:
    plain = from_http_exception(HTTPException(status, detail=detail or None))
    assert plain.status == status and isinstance(plain.code, str)
    shaped = from_http_exception(http_exception(status, "c", "m", extra={"status": 1}))
    body = json.loads(bytes(shaped.to_response().body))
    assert shaped.status == status
    assert body == {"detail": {"error": {"code": "c", "message": "m", "status": 1}}}


def test_proxy_payload_helpers_as_published() -> None:
    payload = {"messages": [{"role": "system", "content": "Be kind."}], "reasoning": "x"}
    hinted = inject_system_hint(payload, "Be brief.")
    assert hinted["messages"][0]["content"] == "Be kind.\n\nBe brief."
    assert inject_system_hint(hinted, "Be brief.") == hinted  # idempotent
    assert payload["messages"][0]["content"] == "Be kind."  # not mutated
    gpt5 = prepare_for_openai("gpt-5-mini", {"max_tokens": 10, "temperature": 0.2, **payload})
    assert gpt5["max_completion_tokens"] == 16000 and "temperature" not in gpt5
    assert "reasoning" not in gpt5 and gpt5["parallel_tool_calls"] is False
    assert prepare_for_groq("llama", {"max_completion_tokens": 5})["max_tokens"] == 5
