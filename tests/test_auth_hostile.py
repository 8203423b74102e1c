"""Hostile key values: whatever a client can put in a key header or the sign-in form is a 4xx
in the error envelope, never a 500, and never comes back in the answer.

Found by hand: a non-latin-1 key typed into the sign-in form was a 500 on the jobs server
and the trace viewer. The property tests send what h11 lets a client send.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import h11
import httpx
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from synth_ai.jobs import create_jobs_app
from synth_ai.task import create_task_app, serve_in_background
from synth_ai.task.attempts import FailedAttempts
from synth_ai.ui.traces_app import create_traces_app

from .conftest import make_config

# server -> (a protected path, whether it signs browsers in)
PATHS = {
    "task_app": ("/info", False),
    "jobs": ("/api/jobs", True),
    "traces": ("/ui/api/session", True),
}
KEY_ALPHABET = "jkmnqvwxzJKMNQVWXZ"  # never a run of four in any answer (see test_auth)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The three servers that check keys, each with a limit on failed checks no example can
    reach (the limit has tests of its own; here every value must reach the key check)."""
    folder = tmp_path_factory.mktemp("hostile")
    apps: dict[str, Starlette] = {
        "task_app": create_task_app(make_config()),
        "jobs": create_jobs_app(folder / "jobs.db"),
        "traces": create_traces_app(folder / "traces.db"),
    }
    urls: dict[str, str] = {}
    stacks = []
    for name, app in apps.items():
        app.state.failed_attempts = FailedAttempts(limit=10**9)
        stack = serve_in_background(app)
        urls[name] = stack.__enter__()
        stacks.append(stack)
    try:
        yield urls
    finally:
        for stack in stacks:
            stack.__exit__(None, None, None)


def assert_refused_in_envelope(answer: httpx.Response) -> None:
    assert 400 <= answer.status_code < 500, answer.text
    error = answer.json()["detail"]["error"]
    assert error["code"] and error["message"]


@pytest.mark.parametrize("server", PATHS)
@pytest.mark.parametrize("form", ["X-API-Key", "X-API-Keys", "Authorization"])
def test_a_non_latin1_key_header_is_a_401(servers: dict[str, str], server: str, form: str) -> None:
    path, _ = PATHS[server]
    value = "ключ".encode()  # what a client sends for it: UTF-8 bytes
    if form == "Authorization":
        value = b"Bearer " + value
    answer = httpx.get(f"{servers[server]}{path}", headers={form: value})
    assert_refused_in_envelope(answer)
    assert answer.status_code == 401


@pytest.mark.parametrize("server", ["jobs", "traces"])
@pytest.mark.parametrize("field", ["key", "login_token"])
def test_a_non_latin1_sign_in_is_a_4xx(servers: dict[str, str], server: str, field: str) -> None:
    for value in ("ключ", "clé", "\U0001f511", "a\ud800b"):
        body = json.dumps({field: value})  # ASCII: a lone surrogate travels escaped
        answer = httpx.post(
            f"{servers[server]}/ui/api/signin",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert_refused_in_envelope(answer)
        assert "set-cookie" not in answer.headers


# Bytes h11 lets a client put in a header value: all but these (tested below), commas too.
H11_REFUSES = b"\x00\n\x0b\x0c\r"
hostile = st.binary(max_size=24).map(lambda raw: raw.translate(None, H11_REFUSES))
secrets_ = st.text(alphabet=KEY_ALPHABET, min_size=8, max_size=24)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    server=st.sampled_from(sorted(PATHS)),
    form=st.sampled_from(["X-API-Key", "X-API-Keys", "Authorization", "Bearer"]),
    before=hostile,
    secret=secrets_,
    after=hostile,
)
def test_any_key_header_value_is_a_4xx_that_never_echoes_it(
    servers: dict[str, str], server: str, form: str, before: bytes, secret: str, after: bytes
) -> None:
    path, _ = PATHS[server]
    value = before + secret.encode() + after
    name = "Authorization" if form == "Bearer" else form
    if form == "Bearer":
        value = b"Bearer " + value
    try:
        answer = httpx.get(f"{servers[server]}{path}", headers={name: value})
    except httpx.LocalProtocolError:
        reject()  # not a value h11 sends
    assert 400 <= answer.status_code < 500, answer.text
    if answer.headers.get("content-type") == "application/json":
        assert_refused_in_envelope(answer)
    else:  # uvicorn's parser refuses some bytes (httptools: controls) before any app sees them
        assert answer.text == "Invalid HTTP request received."
    seen = answer.content + b"".join(v for _, v in answer.headers.raw)
    assert secret.encode() not in seen


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    server=st.sampled_from(["jobs", "traces"]),
    field=st.sampled_from(["key", "login_token"]),
    before=st.text(st.characters(exclude_categories=()), max_size=12),
    secret=secrets_,
    after=st.text(st.characters(exclude_categories=()), max_size=12),
)
def test_any_sign_in_value_is_a_4xx_that_never_echoes_it(
    servers: dict[str, str], server: str, field: str, before: str, secret: str, after: str
) -> None:
    body = json.dumps({field: before + secret + after})
    answer = httpx.post(
        f"{servers[server]}/ui/api/signin",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert_refused_in_envelope(answer)
    assert secret.encode() not in answer.content + b"".join(v for _, v in answer.headers.raw)


def test_h11_refuses_what_the_strategy_leaves_out() -> None:
    """The header strategy leaves out only bytes h11 would not send anyway."""
    for byte in range(256):
        headers = [("Host", "x"), ("X-API-Key", bytes([0x61, byte, 0x62]))]
        if byte in H11_REFUSES:
            with pytest.raises(h11.LocalProtocolError):
                h11.Request(method="GET", target="/", headers=headers)
        else:
            h11.Request(method="GET", target="/", headers=headers)
