"""API-key auth: header forms, aliases, rotation, 503 without keys, and no key material leaks."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.responses import JSONResponse
from starlette.routing import Route

from synth_ai.task import create_task_app, serve_in_background

from .conftest import KEY, InProcess, make_config, rollout_body

# Keys are drawn from letters that never form a 4-letter run in any message or log line, so a
# 4-character window of a key found in output can only have come from the key.
KEY_ALPHABET = "jkmnqvwxzJKMNQVWXZ"
keys = st.text(alphabet=KEY_ALPHABET, min_size=8, max_size=48)


def windows(secret: str, size: int = 4) -> set[str]:
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    async def extra(request: object) -> JSONResponse:
        return JSONResponse({"extra": True})

    config = make_config(routes=[Route("/extra", extra)], public_routes=[Route("/open", extra)])
    with serve_in_background(create_task_app(config)) as url:
        yield url


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": KEY},
        {"X-API-Keys": f"someother, {KEY}"},
        {"Authorization": f"Bearer {KEY}"},
        {"authorization": f"bearer {KEY}"},
    ],
    ids=["x-api-key", "x-api-keys", "bearer", "bearer-lowercase"],
)
def test_each_header_form_is_accepted(served: str, headers: dict[str, str]) -> None:
    response = httpx.get(f"{served}/health", headers=headers)
    assert response.status_code == 200
    assert response.json()["auth"] == {"required": True, "expected_prefix": f"{KEY[:4]}..."}


def test_missing_and_wrong_keys_get_401_with_www_authenticate(served: str) -> None:
    for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Basic abc"}):
        response = httpx.post(f"{served}/rollout", json=rollout_body(), headers=headers)
        assert response.status_code == 401
        assert response.json()["detail"]["error"]["code"] == "unauthorised"
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_aliases_and_rotation_without_restart(served: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT_API_KEY_ALIASES", "aliasone, aliastwo")
    assert httpx.get(f"{served}/health", headers={"X-API-Key": "aliastwo"}).status_code == 200
    assert httpx.get(f"{served}/health", headers={"X-API-Key": KEY}).status_code == 200
    monkeypatch.setenv("ENVIRONMENT_API_KEY", "rotatedkey")
    monkeypatch.delenv("ENVIRONMENT_API_KEY_ALIASES")
    assert httpx.get(f"{served}/health", headers={"X-API-Key": KEY}).status_code == 401
    assert httpx.get(f"{served}/health", headers={"X-API-Key": "rotatedkey"}).status_code == 200


def test_no_key_configured_is_503_and_dev_keys_stand_in(
    served: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ENVIRONMENT_API_KEY")
    response = httpx.get(f"{served}/info", headers={"X-API-Key": KEY})
    assert response.status_code == 503
    assert response.json()["detail"]["error"]["code"] == "missing_environment_api_key"
    for name in ("DEV_ENVIRONMENT_API_KEY", "dev_environment_api_key"):
        monkeypatch.setenv(name, "devkey")
        assert httpx.get(f"{served}/info", headers={"X-API-Key": "devkey"}).status_code == 200
        monkeypatch.delenv(name)


def test_public_and_protected_routes(served: str) -> None:
    assert httpx.get(f"{served}/").json() == {"status": "ok", "service": "echo"}
    assert httpx.head(f"{served}/").status_code == 200
    assert httpx.get(f"{served}/openapi.json").status_code == 200
    assert httpx.get(f"{served}/open").status_code == 200
    assert httpx.get(f"{served}/extra").status_code == 401
    assert httpx.get(f"{served}/extra", headers={"X-API-Key": KEY}).json() == {"extra": True}


def test_auth_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENVIRONMENT_API_KEY")
    client = InProcess(create_task_app(make_config(require_api_key=False)))
    assert client.post("/rollout", json=rollout_body()).status_code == 200
    assert client.get("/health").json()["auth"] == {"required": False, "expected_prefix": None}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    valid=keys,
    alias=keys,
    presented=keys,
    form=st.sampled_from(["x-api-key", "x-api-keys", "bearer", "none"]),
    path=st.sampled_from(["/health", "/info", "/task_info", "/rollout", "/nope"]),
)
def test_no_key_material_in_error_bodies_or_logs(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    valid: str,
    alias: str,
    presented: str,
    form: str,
    path: str,
) -> None:
    if presented in (valid, alias):
        return
    monkeypatch.setenv("ENVIRONMENT_API_KEY", valid)
    monkeypatch.setenv("ENVIRONMENT_API_KEY_ALIASES", alias)
    headers = {
        "x-api-key": {"X-API-Key": presented},
        "x-api-keys": {"X-API-Keys": f"{presented},{presented[::-1]}"},
        "bearer": {"Authorization": f"Bearer {presented}"},
        "none": {},
    }[form]
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        client = InProcess(create_task_app(make_config()))
        response = client.request("POST" if path == "/rollout" else "GET", path, headers=headers)
    assert response.status_code == 401
    output = (
        response.text
        + str(dict(response.headers))
        + "\n".join(record.getMessage() for record in caplog.records)
    )
    for secret in (valid, alias, presented):
        leaked = [w for w in windows(secret) if w in output]
        assert not leaked, f"key material {leaked} leaked"


# --- the primary key first, held to the whole check ------------------------------------------

key_env = st.fixed_dictionaries(
    {},
    optional={
        "ENVIRONMENT_API_KEY": st.sampled_from(["", "  ", "prim-key", " prim-key "]),
        "DEV_ENVIRONMENT_API_KEY": st.sampled_from(["", "dev-key"]),
        "dev_environment_api_key": st.sampled_from(["", "dev-low"]),
        "ENVIRONMENT_API_KEY_ALIASES": st.sampled_from(
            ["", ",", "old-key", "old-key, older-key", " prim-key ,old-key", "dev-key"]
        ),
    },
)
presentable = st.lists(
    st.sampled_from(["prim-key", "dev-key", "dev-low", "old-key", "older-key", "wrong", ""]),
    max_size=3,
)


@settings(max_examples=300)
@given(environ=key_env, presented=presentable)
def test_the_primary_key_first_accepts_what_the_whole_check_accepts(
    environ: dict[str, str], presented: list[str]
) -> None:
    """`refusal_for` tests the primary key alone first, and reads the aliases only for a
    request that does not carry it: it accepts and refuses exactly as testing every
    configured key at once does, whatever the environment holds."""
    from unittest import mock

    from synth_ai.task.auth import _matches, configured_keys, refusal_for

    variables = ("ENVIRONMENT_API_KEY", "DEV_ENVIRONMENT_API_KEY", "dev_environment_api_key")
    cleared = {name: "" for name in (*variables, "ENVIRONMENT_API_KEY_ALIASES")}
    with mock.patch.dict("os.environ", {**cleared, **environ}):
        valid = configured_keys()
        refusal = refusal_for(presented, "POST", "/rollout")
    if valid and _matches(presented, valid):
        assert refusal is None
    else:
        assert refusal is not None
        assert refusal.status_code == (401 if valid else 503)
