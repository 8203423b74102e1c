"""The cid rule: properties over inference URLs, through the framework and the published helpers."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth_ai.task import (
    create_task_app,
    extract_trace_correlation_id,
    normalize_inference_url,
    validate_rollout_response_for_rl,
)

from .conftest import InProcess, make_config

ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=24)
param_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8).filter(
    lambda name: name not in ("cid", "trace_correlation_id", "trace")
)
param_values = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 -_.~/:", max_size=12)
bases = st.sampled_from(
    [
        "http://127.0.0.1:8000",
        "http://policy.local/v1",
        "https://api.example.com/openai/v1/chat/completions",
        "http://proxy.local/route/v2",
    ]
)


def query_of(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


@settings(max_examples=100, deadline=None)
@given(
    base=bases,
    params=st.lists(st.tuples(param_names, param_values), max_size=4, unique_by=lambda p: p[0]),
    url_cid=st.one_of(st.none(), ids),
    policy_cid=st.one_of(st.none(), ids),
    request_cid=ids,
)
def test_stamped_url_keeps_other_params_and_every_step_mirrors_it(
    base: str,
    params: list[tuple[str, str]],
    url_cid: str | None,
    policy_cid: str | None,
    request_cid: str,
) -> None:
    query = list(params) + ([("cid", url_cid)] if url_cid else [])
    url = base + ("?" + urlencode(query) if query else "")
    policy = {"inference_url": url, **({"trace_correlation_id": policy_cid} if policy_cid else {})}
    body = {
        "trace_correlation_id": request_cid,
        "env": {"seed": 2},
        "policy": {"config": policy},
        "mode": "rl",
    }
    response = InProcess(create_task_app(make_config())).post(
        "/rollout", json=body, headers={"X-API-Key": "kqzvwxjmnkqzvwxjmnQZVW"}
    )
    assert response.status_code == 200, response.text
    data = response.json()
    expected_cid = policy_cid or url_cid or request_cid
    assert data["trace_correlation_id"] == expected_cid
    stamped = data["pipeline_metadata"]["inference_url"]
    stamped_query = query_of(stamped)
    assert stamped_query[-1] == ("cid", expected_cid)
    assert [p for p in stamped_query if p[0] != "cid"] == [
        (k, v) for k, v in query_of(url) if k != "cid"
    ]
    assert urlsplit(stamped).path.endswith("/chat/completions")
    for trajectory in data["trajectories"]:
        for step in trajectory["steps"]:
            assert step["info"]["meta"]["inference_url"] == stamped
    assert validate_rollout_response_for_rl(data) == []


@pytest.mark.parametrize(
    ("given_url", "expected"),
    [
        ("http://h:8000", "http://h:8000/v1/chat/completions"),
        ("http://h:8000/", "http://h:8000/v1/chat/completions"),
        ("http://h/v1", "http://h/v1/chat/completions"),
        ("http://h/openai/v1/", "http://h/openai/v1/chat/completions"),
        ("http://h/v1/chat/completions?cid=a&x=1", "http://h/v1/chat/completions?cid=a&x=1"),
        ("http://h?cid=abc/v1/chat/completions", "http://h/v1/chat/completions?cid=abc"),
        ("  https://h/proxy  ", "https://h/proxy/v1/chat/completions"),
        ("http://h/v1?next=/a/b", "http://h/v1/chat/completions?next=/a/b"),
    ],
)
def test_normalize_inference_url(given_url: str, expected: str) -> None:
    assert normalize_inference_url(given_url) == expected


def test_normalize_rejects_urls_without_host() -> None:
    with pytest.raises(ValueError, match="scheme and a host"):
        normalize_inference_url("localhost:8000")


def test_extract_follows_the_precedence() -> None:
    url = "http://h/v1/chat/completions?trace=from-url"
    assert extract_trace_correlation_id({"trace_correlation_id": "p"}, url, "r") == "p"
    assert extract_trace_correlation_id({"inference_url": url}, None, "r") == "from-url"
    assert extract_trace_correlation_id({"api_base": "http://h/v1"}, None, "r") == "r"


def test_a_bad_inference_url_is_a_422_naming_the_field() -> None:
    body = {"run_id": "r", "policy": {"config": {"inference_url": "not a url"}}}
    response = InProcess(create_task_app(make_config())).post(
        "/rollout", json=body, headers={"X-API-Key": "kqzvwxjmnkqzvwxjmnQZVW"}
    )
    assert response.status_code == 422
    error = response.json()["detail"]["error"]
    assert error["errors"][0]["loc"] == ["body", "policy", "config", "inference_url"]


def test_validator_names_the_exact_path_that_breaks() -> None:
    good_url = "http://h/v1/chat/completions?cid=c1"
    response = {
        "trace_correlation_id": "c1",
        "pipeline_metadata": {"trace_correlation_id": "c1", "inference_url": good_url},
        "trajectories": [
            {"steps": [{"info": {"meta": {"inference_url": good_url}}}, {"info": {}}]}
        ],
    }
    problems = validate_rollout_response_for_rl(response, warn_only=True)
    assert problems == [
        f"trajectories[0].steps[1].info.meta.inference_url: None does not mirror {good_url!r}"
    ]
    with pytest.raises(ValueError, match=r"steps\[1\]"):
        validate_rollout_response_for_rl(response)
    response["pipeline_metadata"]["inference_url"] = "http://h/v1/chat/completions?cid=other"
    problems = validate_rollout_response_for_rl(response, warn_only=True)
    assert problems[0].startswith("pipeline_metadata.inference_url: cid is 'other'")
