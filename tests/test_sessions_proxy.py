"""Behind a proxy: the session cookie is `Secure` when the page came over https through a proxy
the operator named with `--forwarded-allow-ips`, and only then; and a session ended at one
`synth-ai jobs serve` process is refused by another on the same PostgreSQL database. Real
server processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from synth_ai.tracing_v3 import SessionTrace, TraceStore

from .conftest import KEY
from .processes import start_server, stop_server

HTTPS = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
PROXIED = {"Host": "jobs.example", **HTTPS}
Server = tuple[subprocess.Popen[str], str, list[str]]


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for process, _, output in started:
        stop_server(process, output)


def serve(servers: list[Server], *args: str) -> str:
    env = {**os.environ, "ENVIRONMENT_API_KEY": KEY}
    env.pop("FORWARDED_ALLOW_IPS", None)
    servers.append(start_server(list(args), env))
    return servers[-1][1]


def signed_in(url: str, **headers: str) -> httpx.Response:
    answer = httpx.post(f"{url}/ui/api/signin", json={"key": KEY}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer


def secure(answer: httpx.Response) -> bool:
    return "Secure" in [flag.strip() for flag in answer.headers["set-cookie"].split(";")]


def test_the_cookie_is_secure_over_https_through_a_named_proxy_and_sessions_end_everywhere(
    postgres_url: str, servers: list[Server]
) -> None:
    trusting = serve(
        servers, "jobs", "serve", "--db", postgres_url, "--forwarded-allow-ips", "127.0.0.1"
    )
    elsewhere = serve(
        servers, "jobs", "serve", "--db", postgres_url, "--forwarded-allow-ips", "10.9.8.7"
    )
    assert secure(signed_in(trusting, **HTTPS))
    assert not secure(signed_in(trusting))  # plain http, said by nobody
    assert not secure(signed_in(elsewhere, **HTTPS))  # said by an address not named
    # one session, two processes: signed out at one, refused at the other
    answer = signed_in(trusting, **PROXIED)
    cookie = {"Cookie": answer.headers["set-cookie"].split(";", 1)[0], **PROXIED}
    assert httpx.get(f"{elsewhere}/api/jobs", headers=cookie).status_code == 200
    out = httpx.post(
        f"{elsewhere}/ui/api/signout", headers={**cookie, "X-CSRF-Token": answer.json()["csrf"]}
    )
    assert out.status_code == 204
    for url in (trusting, elsewhere):
        assert httpx.get(f"{url}/api/jobs", headers=cookie).status_code == 401


def test_the_trace_viewer_takes_its_proxies_too(tmp_path: Path, servers: list[Server]) -> None:
    db = tmp_path / "traces.db"
    store = TraceStore(db)
    asyncio.run(store.write(SessionTrace(session_id="s")))
    store.close()
    named = serve(
        servers, "traces", "serve", "--db", str(db), "--forwarded-allow-ips", "127.0.0.0/8"
    )
    other = serve(servers, "traces", "serve", "--db", str(db), "--forwarded-allow-ips", "10.9.8.7")
    assert secure(signed_in(named, **HTTPS))
    assert not secure(signed_in(other, **HTTPS))
