"""Credentials follow destinations: a server key goes only where the author's map binds it.

A loopback "capture server" stands in for an attacker's inference endpoint and records every
byte it is sent; the matcher is checked with properties over lookalike destinations.
"""

from __future__ import annotations

import asyncio
import json
import posixpath
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from starlette.types import Receive, Scope, Send

import synth_ai.task
from synth_ai.examples.math_task_app import build_config
from synth_ai.task import (
    DEFAULT_CREDENTIALS,
    CredentialMap,
    TaskAppConfig,
    chat_completion,
    create_task_app,
    serve_in_background,
)
from synth_ai.task.inference import SharedHttpClient

from .conftest import KEY, make_config

HEADERS = {"X-API-Key": KEY}
OPENAI_SECRET = "sk-openai-vvqzkxjwvvqzkxjw"
THIRD_SECRET = "third-secret-jjqxvzkwjjqxvzkw"
THIRD_ENV = "SYNTH_TEST_THIRD_SECRET"
SECRETS = {"OPENAI_API_KEY": OPENAI_SECRET, "ENVIRONMENT_API_KEY": KEY, THIRD_ENV: THIRD_SECRET}


class CaptureServer:
    """Records every request it gets, whole, and answers a chat completion with a tool call."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.seen.append(
            {
                "target": scope["raw_path"] + b"?" + scope["query_string"],
                "headers": {k.decode().lower(): v.decode() for k, v in scope["headers"]},
                "raw": b"\n".join(k + b": " + v for k, v in scope["headers"]) + body,
            }
        )
        call = {"function": {"name": "math_submit", "arguments": json.dumps({"answer": "0"})}}
        answer = {"choices": [{"message": {"role": "assistant", "tool_calls": [call]}}]}
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(answer).encode()})


@pytest.fixture
def secrets_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def capture() -> Iterator[tuple[CaptureServer, str]]:
    server = CaptureServer()
    with serve_in_background(server) as url:
        yield server, url


def rollout(seed: int, inference_url: str, **policy: Any) -> dict[str, Any]:
    return {
        "run_id": f"cred-{seed}",
        "env": {"seed": seed},
        "policy": {"config": {"model": "m", "inference_url": inference_url, **policy}},
    }


def assert_no_secret(record: dict[str, Any]) -> None:
    for secret in SECRETS.values():
        assert secret.encode() not in record["raw"], "a server secret reached the capture server"
    assert "authorization" not in record["headers"]


# --- end to end: a request cannot send the server's keys anywhere ---------------------------


@pytest.mark.parametrize(
    "policy",
    [
        {},
        {"api_key_env": "OPENAI_API_KEY"},
        {"api_key_env": "ENVIRONMENT_API_KEY"},
        {"api_key_env": THIRD_ENV},
        {"api_key_env": "OPENAI_API_KEY", "provider": "openai", "api_base": "ignored"},
    ],
    ids=["no-name", "names-openai", "names-environment", "names-third", "openai-provider"],
)
def test_no_server_secret_reaches_a_destination_the_request_names(
    secrets_set: None, capture: tuple[CaptureServer, str], math_app_url: str, policy: Any
) -> None:
    server, url = capture
    before = len(server.seen)
    body = rollout(1, f"{url}/v1", **policy)
    response = httpx.post(f"{math_app_url}/rollout", json=body, headers=HEADERS, timeout=30)
    assert response.status_code == 200, response.text
    assert len(server.seen) == before + 1, "the math app did not call the capture server"
    assert_no_secret(server.seen[-1])


def test_an_author_map_naming_the_secrets_for_other_places_sends_none_here(
    secrets_set: None, capture: tuple[CaptureServer, str]
) -> None:
    server, url = capture
    credentials = {
        **DEFAULT_CREDENTIALS,
        "https://vault.example/v1": THIRD_ENV,
        f"https://{url.removeprefix('http://')}/v1": THIRD_ENV,  # https: not this http server
        f"{url}/v1evil": "ENVIRONMENT_API_KEY",  # a prefix the request's path only resembles
    }
    config = build_config()
    config.credentials = credentials
    with serve_in_background(create_task_app(config)) as app_url:
        for target in (f"{url}/v1", f"{url}/v1evilx", f"{url}/v1ev"):
            before = len(server.seen)
            body = rollout(2, target, api_key_env=THIRD_ENV)
            response = httpx.post(f"{app_url}/rollout", json=body, headers=HEADERS, timeout=30)
            assert response.status_code == 200, response.text
            assert len(server.seen) == before + 1
            assert_no_secret(server.seen[-1])


def test_a_bound_prefix_gets_its_key_and_rotation_needs_no_restart(
    secrets_set: None, capture: tuple[CaptureServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, url = capture
    config = build_config()
    config.credentials = {f"{url}/v1": THIRD_ENV}
    with serve_in_background(create_task_app(config)) as app_url:
        for value in (THIRD_SECRET, "rotated-kkxqvwjzz"):
            monkeypatch.setenv(THIRD_ENV, value)
            body = rollout(3, f"{url}/v1")
            assert httpx.post(f"{app_url}/rollout", json=body, headers=HEADERS).status_code == 200
            assert server.seen[-1]["headers"]["authorization"] == f"Bearer {value}"


def test_a_callers_own_key_reaches_the_callers_own_endpoint(
    secrets_set: None, capture: tuple[CaptureServer, str], math_app_url: str
) -> None:
    server, url = capture
    body = rollout(4, f"{url}/v1", api_key="callers-own-key-123")
    response = httpx.post(f"{math_app_url}/rollout", json=body, headers=HEADERS, timeout=30)
    assert response.status_code == 200, response.text
    assert server.seen[-1]["headers"]["authorization"] == "Bearer callers-own-key-123"
    assert_no_secret({**server.seen[-1], "headers": {}})
    for bad in (42, "two words", "line\nbreak", "x" * 5000):
        response = httpx.post(
            f"{math_app_url}/rollout", json=rollout(4, f"{url}/v1", api_key=bad), headers=HEADERS
        )
        assert response.status_code == 422, bad
        assert response.json()["detail"]["error"]["errors"][0]["loc"][-1] == "api_key"


def test_the_request_chosen_key_helper_is_gone() -> None:
    assert not hasattr(synth_ai.task, "inference_api_key")
    assert "inference_api_key" not in synth_ai.task.__all__


# --- the shared client: keys at the transport, redirects --------------------------------------


def sent_through(
    credentials: Any, url: str, *, headers: dict[str, str] | None = None, **options: Any
) -> list[httpx.Request]:
    """The requests the app's shared client puts on the wire for one POST to `url`."""
    wire: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        wire.append(request)
        if request.url.host == "api.openai.com" and request.url.path == "/redirect-away":
            return httpx.Response(307, headers={"location": "https://collector.evil.example/x"})
        if request.url.host == "api.openai.com" and request.url.path == "/redirect-home":
            return httpx.Response(307, headers={"location": "/v1/chat/completions"})
        return httpx.Response(200, json={"choices": [{"message": {"content": "ok"}}]})

    async def call() -> None:
        shared = SharedHttpClient(credentials=credentials, transport=httpx.MockTransport(handler))
        try:
            await shared.get().post(url, json={}, headers=headers, **options)
        finally:
            await shared.aclose()

    asyncio.run(call())
    return wire


def test_a_matching_destination_gets_the_key_at_the_transport(secrets_set: None) -> None:
    (request,) = sent_through(DEFAULT_CREDENTIALS, "https://api.openai.com/v1/chat/completions")
    assert request.headers["authorization"] == f"Bearer {OPENAI_SECRET}"
    (own,) = sent_through(
        DEFAULT_CREDENTIALS,
        "https://api.openai.com/v1/chat/completions",
        headers={"Authorization": "Bearer mine"},
    )
    assert own.headers["authorization"] == "Bearer mine"
    (none,) = sent_through({}, "https://api.openai.com/v1/chat/completions")
    assert "authorization" not in none.headers


def test_a_cross_origin_redirect_from_a_matching_host_drops_the_key(secrets_set: None) -> None:
    first, second = sent_through(
        DEFAULT_CREDENTIALS, "https://api.openai.com/redirect-away", follow_redirects=True
    )
    assert first.headers["authorization"] == f"Bearer {OPENAI_SECRET}"
    assert second.url.host == "collector.evil.example"
    assert "authorization" not in second.headers
    assert OPENAI_SECRET not in str(second.headers) + str(second.url)
    # a same-origin redirect keeps it: the key stays with its destination, no further
    home = sent_through(
        DEFAULT_CREDENTIALS, "https://api.openai.com/redirect-home", follow_redirects=True
    )
    assert home[-1].headers["authorization"] == f"Bearer {OPENAI_SECRET}"


def test_chat_completion_prefers_the_authors_key_and_follows_no_redirect(
    secrets_set: None,
) -> None:
    wire: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        wire.append(request)
        return httpx.Response(307, headers={"location": "https://collector.evil.example/"})

    async def call() -> None:
        shared = SharedHttpClient(transport=httpx.MockTransport(handler))
        url = "https://api.openai.com/v1/chat/completions"
        for api_key in ("author-chosen-key", None):
            with pytest.raises(synth_ai.task.InferenceError, match="not a chat completion"):
                await chat_completion(shared.get(), url, {}, api_key=api_key)
        await shared.aclose()

    asyncio.run(call())
    assert [r.headers["authorization"] for r in wire] == [
        "Bearer author-chosen-key",
        f"Bearer {OPENAI_SECRET}",
    ]


# --- the matcher -----------------------------------------------------------------------------

DEFAULT_HOSTS = sorted(DEFAULT_CREDENTIALS)
MAP = CredentialMap(
    {**DEFAULT_CREDENTIALS, "https://gw.example.com/v1": "GW_KEY", "http://10.0.0.5:8000/": "VLLM"}
)


def random_case(draw: Any, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if flip else c for c, flip in zip(text, flips, strict=True))


@st.composite
def lookalike_urls(draw: Any) -> tuple[str, str]:
    """A URL that resembles a bound host but goes elsewhere, and the host it resembles."""
    host = draw(st.sampled_from(DEFAULT_HOSTS))
    evil = draw(st.sampled_from(["evil.net", "attacker.example", "127.0.0.1", "[::1]"]))
    label = draw(st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True))
    shaped = draw(
        st.sampled_from(
            [
                f"https://{host}.",  # trailing dot: a different name to a resolver's search
                f"https://{host}.{evil}",
                f"https://{label}{host}",
                f"https://{label}.{host}",
                f"https://{host[:-1]}",
                f"https://{host}@{evil}",
                f"https://{host}:{label}@{evil}",
                f"https://{evil}/{host}",
                f"https://{evil}?{host}",
                f"https://{evil}#@{host}",
                f"http://{host}",
                f"https://{host}:{draw(st.integers(1, 65535).filter(lambda p: p != 443))}",
                f"wss://{host}",
            ]
        )
    )
    path = draw(st.sampled_from(["", "/", "/v1", "/v1/chat/completions"]))
    return random_case(draw, shaped) + path, host


@given(lookalike_urls())
def test_lookalike_destinations_get_no_key(case: tuple[str, str]) -> None:
    url, _host = case
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return  # httpx would not send it anywhere either
    assert MAP.env_name_for(parsed) is None, url


@given(
    host=st.sampled_from(DEFAULT_HOSTS),
    data=st.data(),
    port=st.sampled_from(["", ":443"]),
    userinfo=st.sampled_from(["", "user:pw@"]),
    path=st.sampled_from(["", "/", "/v1/chat/completions?cid=x"]),
)
def test_a_bound_host_matches_in_any_case_on_the_default_port(
    host: str, data: Any, port: str, userinfo: str, path: str
) -> None:
    cased = random_case(data.draw, host)
    assert MAP.env_name_for(f"https://{userinfo}{cased}{port}{path}") == DEFAULT_CREDENTIALS[host]
    assert MAP.env_name_for(f"HTTPS://{cased}{port}{path}") == DEFAULT_CREDENTIALS[host]


SEGMENTS = ["v1", "V1", "v1evil", "v2", "..", ".", "%2e%2e", "%2E", "%2f", "%2F", "%5c", "a b"]


@given(
    scheme=st.sampled_from(["https", "http", "HTTPS"]),
    host=st.sampled_from(["gw.example.com", "GW.example.COM", "gw.example.com.", "gw.example.co"]),
    port=st.sampled_from(["", ":443", ":8443"]),
    segments=st.lists(st.sampled_from([*SEGMENTS, "chat", "completions"]), max_size=5),
    trailing=st.booleans(),
)
@example(scheme="HTTPS", host="gw.example.com", port=":443", segments=["v1"], trailing=False)
def test_a_prefix_matches_only_what_a_server_would_route_under_it(
    scheme: str, host: str, port: str, segments: list[str], trailing: bool
) -> None:
    """Sound: whenever the key is given, the destination is the bound origin and the path,
    however a server decodes and normalises it, lies at or under `/v1`."""
    url = f"{scheme}://{host}{port}/" + "/".join(segments) + ("/" if trailing else "")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return
    name = MAP.env_name_for(parsed)
    if name is None:
        # complete for plain paths: the bound origin with a clean /v1 path always matches
        plain = all(s in ("v1", "chat", "completions") for s in segments)
        bound_origin = host.lower() == "gw.example.com" and port != ":8443"
        if scheme.lower() == "https" and bound_origin and plain and segments[:1] == ["v1"]:
            raise AssertionError(f"{url} should match the /v1 prefix")
        return
    assert name == "GW_KEY"
    # httpx keeps an explicit :443 when the scheme was written in capitals: the same origin
    assert parsed.scheme == "https" and parsed.raw_host == b"gw.example.com"
    assert parsed.port in (None, 443)
    served = posixpath.normpath(unquote(parsed.path.replace("\\", "/")))
    assert served == "/v1" or served.startswith("/v1/"), url


@given(suffix=st.from_regex(r"[A-Za-z0-9._~-]{1,12}", fullmatch=True))
def test_a_prefix_ends_at_a_path_boundary(suffix: str) -> None:
    assert MAP.env_name_for(f"https://gw.example.com/v1{suffix}") is None
    assert MAP.env_name_for(f"https://gw.example.com/v1{suffix}/chat") is None
    assert MAP.env_name_for(f"https://gw.example.com.{suffix}/v1/chat") is None
    if suffix not in (".", ".."):
        assert MAP.env_name_for(f"https://gw.example.com/v1/{suffix}") == "GW_KEY"


def test_an_http_prefix_matches_only_its_own_scheme_host_and_port() -> None:
    assert MAP.env_name_for("http://10.0.0.5:8000/v1/chat/completions") == "VLLM"
    for other in (
        "https://10.0.0.5:8000/v1",
        "http://10.0.0.5/v1",
        "http://10.0.0.5:8001/v1",
        "http://10.0.0.50:8000/v1",
    ):
        assert MAP.env_name_for(other) is None, other


def test_the_longest_prefix_wins() -> None:
    credentials = CredentialMap(
        {"https://gw.example.com/": "ANY", "https://gw.example.com/team-a": "TEAM_A"}
    )
    assert credentials.env_name_for("https://gw.example.com/team-a/v1") == "TEAM_A"
    assert credentials.env_name_for("https://gw.example.com/team-b/v1") == "ANY"
    assert credentials.env_name_for("https://gw.example.com/team-a%2f..%2fteam-b") is None


@pytest.mark.parametrize(
    ("destination", "env_name"),
    [
        ("api.openai.com.", "OPENAI_API_KEY"),
        ("api.openai.com:8443", "OPENAI_API_KEY"),
        ("*.openai.com", "OPENAI_API_KEY"),
        ("", "OPENAI_API_KEY"),
        ("ftp://files.example.com/", "K"),
        ("https://user:pw@example.com/v1", "K"),
        ("https://example.com/v1?key=1", "K"),
        ("https://example.com/v1#x", "K"),
        ("https://example.com/a%2f..", "K"),
        ("https://", "K"),
        ("api.openai.com", ""),
        ("api.openai.com", "1PASSWORD"),
        ("api.openai.com", "OPENAI-KEY"),
        ("api.openai.com", "$OPENAI_API_KEY"),
        ("api.openai.com", "sk-live-abc123 value"),
    ],
)
def test_malformed_entries_are_refused_when_the_config_is_built(
    destination: str, env_name: str
) -> None:
    with pytest.raises(ValueError, match="credentials"):
        make_config(credentials={destination: env_name})


def test_config_defaults_and_opt_out() -> None:
    config = make_config()
    assert dict(config.credentials) == dict(DEFAULT_CREDENTIALS)
    assert config.credentials is not make_config().credentials
    assert isinstance(make_config(credentials={}), TaskAppConfig)
    assert not CredentialMap({})
    assert CredentialMap(DEFAULT_CREDENTIALS).env_name_for("https://api.groq.com/openai/v1") == (
        "GROQ_API_KEY"
    )
