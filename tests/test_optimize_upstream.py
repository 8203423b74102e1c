"""The interceptor's side towards the policy (its aiohttp client), and where it is served:
on the caller's loop. Real uvicorn servers on loopback stand in for the policy."""

from __future__ import annotations

import asyncio
import signal
import threading
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from synth_ai.optimize.interceptor import Interceptor, new_cid
from synth_ai.task import serve_in_background

from .test_optimize_interceptor import MATH_PROMPT, chat_body, synchronously


def completion(content: str) -> dict[str, Any]:
    return {
        "choices": [{"message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


class Policy:
    """A stand-in policy endpoint: answers `content`, sets a cookie, notes the cookies and
    hosts it was sent, and holds its answer until `gate` opens when a test closes it."""

    def __init__(self, content: str = "4") -> None:
        self.content = content
        self.cookies: list[str | None] = []
        self.hosts: list[str | None] = []
        self.gate = threading.Event()
        self.gate.set()
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    async def chat(self, request: Request) -> Response:
        self.cookies.append(request.headers.get("cookie"))
        self.hosts.append(request.headers.get("host"))
        await asyncio.to_thread(self.gate.wait, 10)
        answer = JSONResponse(completion(self.content))
        answer.set_cookie("session", "from-the-policy")
        return answer


async def call(interceptor: Interceptor) -> tuple[httpx.Response, list[Any]]:
    cid = new_cid()
    url = interceptor.register(cid, MATH_PROMPT.seed_candidate())
    async with httpx.AsyncClient(trust_env=False) as client:  # the app's call: no proxy
        answer = await client.post(url, json=chat_body(), timeout=30)
    return answer, interceptor.release(cid)


@synchronously
async def test_a_policy_answer_past_the_cap_is_refused_and_recorded() -> None:
    policy = Policy(content="9" * 5000)
    with serve_in_background(policy.app) as policy_url:
        async with Interceptor(MATH_PROMPT, policy_url, max_response_bytes=4000) as interceptor:
            answer, [exchange] = await call(interceptor)
    assert answer.status_code == 502
    assert answer.json()["error"]["code"] == "upstream_too_large"
    assert exchange.status == 502 and "4000 bytes" in (exchange.error or "")


@synchronously
async def test_a_policy_that_does_not_answer_in_time_is_a_504_recorded() -> None:
    policy = Policy()
    policy.gate.clear()
    with serve_in_background(policy.app) as policy_url:
        try:
            async with Interceptor(MATH_PROMPT, policy_url, timeout_s=0.5) as interceptor:
                answer, [exchange] = await call(interceptor)
        finally:
            policy.gate.set()
    assert answer.status_code == 504
    assert answer.json()["error"]["code"] == "upstream_timeout"
    assert exchange.status == 504 and exchange.usage.calls == 0


@synchronously
async def test_no_cookie_is_carried_from_one_call_to_the_next() -> None:
    policy = Policy()
    with serve_in_background(policy.app) as policy_url:
        async with Interceptor(MATH_PROMPT, policy_url) as interceptor:
            for _ in range(2):
                answer, [exchange] = await call(interceptor)
                assert answer.status_code == 200 and exchange.output == "4"
    assert policy.cookies == [None, None]


def test_an_env_proxy_carries_the_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    proxy = Policy(content="proxied")  # a forward proxy sees the absolute URL's host
    with serve_in_background(proxy.app) as proxy_url:
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        interceptor = Interceptor(MATH_PROMPT, "http://policy.invalid/v1")  # never resolves

        async def main() -> tuple[httpx.Response, list[Any]]:
            async with interceptor:
                return await call(interceptor)

        answer, [exchange] = asyncio.run(main())
    assert answer.status_code == 200 and exchange.output == "proxied"
    assert proxy.hosts == ["policy.invalid"]


def test_a_proxy_that_is_not_http_is_refused_at_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """aiohttp would speak plain HTTP proxying to a SOCKS proxy, the call's key with it, and
    every rollout would fail as 'unreachable': the interceptor refuses to start instead,
    naming the scheme and not the proxy's URL (it may hold a password)."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("ALL_PROXY", "socks5://user:hunter2@127.0.0.1:1080")

    async def main() -> None:
        async with Interceptor(MATH_PROMPT, "http://policy.invalid/v1"):
            pass

    with pytest.raises(ValueError, match="socks5") as refused:
        asyncio.run(main())
    assert "hunter2" not in str(refused.value)


@synchronously
async def test_async_with_serves_on_the_callers_loop_and_leaves_its_signals() -> None:
    before = (set(threading.enumerate()), signal.getsignal(signal.SIGINT))
    with serve_in_background(Policy().app) as policy_url:
        threads = set(threading.enumerate())
        async with Interceptor(MATH_PROMPT, policy_url) as interceptor:
            started = set(threading.enumerate()) - threads
            assert all(t.name.startswith("asyncio_") for t in started)  # the loop's workers only
            assert signal.getsignal(signal.SIGINT) == before[1]
            answer, [exchange] = await call(interceptor)
        assert interceptor.base_url is None
    assert answer.status_code == 200 and exchange.output == "4"
    assert signal.getsignal(signal.SIGINT) == before[1]
