"""The interceptor on real uvicorn servers, in front of the offline policy (a labelled stand-in)."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from synth_ai.examples.math_task_app import generate_problem
from synth_ai.examples.math_task_app.app import DEFAULT_PROMPT
from synth_ai.offline_policy import OfflinePolicy
from synth_ai.optimize.interceptor import Interceptor, new_cid
from synth_ai.optimize.prompt import REQUIRED, InitialPrompt, PromptMessage
from synth_ai.task import TaskAppClient, serve_in_background

from .conftest import KEY

MATH_PROMPT = InitialPrompt(
    [
        PromptMessage("system", DEFAULT_PROMPT["system"], order=0),
        PromptMessage("user", "Problem: {query}", order=1),
    ],
    {"query": REQUIRED},
)
CALLER_KEY = "callerqzvjxkwmpqzvjxkwm"
POLICY_KEY = "policyqzvjxkwmpqzvjxkwm"


def synchronously(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test body on a fresh loop (pytest sees the wrapped test's fixtures)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


class Upstream:
    """The offline policy (an LLM stand-in), noting the Authorization each call carried."""

    def __init__(self) -> None:
        self.policy = OfflinePolicy()
        self.authorizations: list[str | None] = []
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    async def chat(self, request: Request) -> Response:
        self.authorizations.append(request.headers.get("authorization"))
        return await self.policy.chat_completions(request)


@pytest.fixture
def upstream() -> Iterator[tuple[Upstream, str]]:
    stand_in = Upstream()
    with serve_in_background(stand_in.app) as url:
        yield stand_in, url


@pytest.fixture
def proxy(upstream: tuple[Upstream, str]) -> Iterator[Interceptor]:
    interceptor = Interceptor(MATH_PROMPT, f"{upstream[1]}/v1", max_cids=4, max_body_bytes=64_000)
    with interceptor.serving():
        yield interceptor


def chat_body(problem: str = "Compute 2 + 3.", system: str = DEFAULT_PROMPT["system"]) -> dict:
    return {
        "model": "offline-policy",
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": f"Problem: {problem}"},
        ],
    }


@synchronously
async def test_a_math_rollout_goes_through_with_the_candidate_and_is_recorded(
    proxy: Interceptor, upstream: tuple[Upstream, str], math_app_url: str
) -> None:
    candidate = {"system": "Be exact. Think twice.", "user": "Solve: {query}"}
    cid = new_cid()
    url = proxy.register(cid, candidate)
    async with TaskAppClient(math_app_url, KEY) as client:
        response = await client.rollout(
            {
                "run_id": "run-3",
                "env": {"seed": 3},
                "policy": {"config": {"inference_url": url, "model": "m"}},
            }
        )
    assert response.metrics.details["correct"] is True
    assert response.trace_correlation_id == cid
    seen = upstream[0].policy.requests_seen[-1].body["messages"]
    problem = generate_problem(3, "train").text
    assert seen[:2] == [
        {"role": "system", "content": "Be exact. Think twice."},
        {"role": "user", "content": f"Solve: {problem}"},
    ]
    [exchange] = proxy.release(cid)
    assert exchange.error is None and exchange.status == 200
    assert exchange.messages[:2] == seen[:2]
    assert exchange.wildcards == {"query": problem}
    assert exchange.tool_calls[0]["function"]["name"] == "math_submit"
    assert exchange.usage.total_tokens > 0 and exchange.usage.calls == 1
    assert proxy.usage == exchange.usage
    assert proxy.release(cid) == []


@synchronously
async def test_unknown_cids_are_refused_in_the_openai_shape(proxy: Interceptor) -> None:
    proxy.register("known-cid", MATH_PROMPT.seed_candidate())
    async with httpx.AsyncClient(base_url=proxy.base_url or "") as client:
        for path in ("/v1/chat/completions?cid=other", "/v1/chat/completions", "/cid/x/v1"):
            answer = await client.post(path, json=chat_body())
            assert answer.status_code == 404, path
            assert answer.json()["detail"]["error"]["code"] in ("unknown_cid", "not_found")
        wrong_method = await client.get("/v1/chat/completions?cid=known-cid")
        assert wrong_method.json()["error"]["code"] == "method_not_allowed"
        answer = await client.post("/v1/chat/completions?cid=other", json=chat_body())
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "unknown_cid"
    assert answer.json()["detail"]["error"]["code"] == "unknown_cid"
    proxy.release("known-cid")
    async with httpx.AsyncClient(base_url=proxy.base_url or "") as client:
        released = await client.post("/v1/chat/completions?cid=known-cid", json=chat_body())
    assert released.status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/v1/chat/completions?cid={cid}",
        "/chat/completions?cid={cid}",
        "/v1?cid={cid}/chat/completions",
        "/?cid={cid}/v1/chat/completions",
        "/cid/{cid}/v1/chat/completions",
        "/cid/{cid}/chat/completions",
    ],
)
@synchronously
async def test_every_url_form_an_app_may_build_reaches_the_candidate(
    proxy: Interceptor, path: str
) -> None:
    cid = new_cid()
    proxy.register(cid, MATH_PROMPT.seed_candidate())
    async with httpx.AsyncClient(base_url=proxy.base_url or "") as client:
        answer = await client.post(path.format(cid=cid), json=chat_body())
    assert answer.status_code == 200, answer.text
    assert len(proxy.release(cid)) == 1


@synchronously
async def test_a_mismatch_names_the_message_and_role_and_is_recorded(
    proxy: Interceptor, upstream: tuple[Upstream, str]
) -> None:
    cid = new_cid()
    proxy.register(cid, MATH_PROMPT.seed_candidate())
    async with httpx.AsyncClient(base_url=proxy.base_url or "") as client:
        answer = await client.post(
            f"/v1/chat/completions?cid={cid}", json=chat_body(system="You are a pirate.")
        )
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "prompt_mismatch"
    assert "message 0 (system)" in error["message"]
    [exchange] = proxy.release(cid)
    assert exchange.status == 422 and "message 0 (system)" in (exchange.error or "")
    assert upstream[0].policy.requests_seen == type(upstream[0].policy.requests_seen)()


@synchronously
async def test_huge_and_malformed_bodies_are_refused(proxy: Interceptor) -> None:
    cid = new_cid()
    proxy.register(cid, MATH_PROMPT.seed_candidate())
    url = f"/v1/chat/completions?cid={cid}"
    async with httpx.AsyncClient(base_url=proxy.base_url or "") as client:
        huge = await client.post(url, json=chat_body(problem="9" * 100_000))

        async def chunks() -> Any:  # no Content-Length: the cap holds while streaming too
            for _ in range(100):
                yield b" " * 1000

        streamed = await client.post(url, content=chunks())
        not_json = await client.post(url, content=b"{nope")
        nan = await client.post(url, content=b'{"messages": [], "temperature": NaN}')
        no_messages = await client.post(url, json={"model": "m"})
        streaming = await client.post(url, json={**chat_body(), "stream": True})
    assert (huge.status_code, huge.json()["error"]["code"]) == (413, "request_too_large")
    assert streamed.status_code == 413
    assert not_json.status_code == 400 and nan.status_code == 422
    assert no_messages.status_code == 400
    assert streaming.json()["error"]["code"] == "stream_unsupported"
    assert proxy.release(cid) == []


@synchronously
async def test_the_key_follows_the_destination_never_the_callers_header(
    upstream: tuple[Upstream, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_in, upstream_url = upstream
    monkeypatch.setenv("TEST_POLICY_KEY", POLICY_KEY)
    headers = {"Authorization": f"Bearer {CALLER_KEY}"}
    unbound = Interceptor(MATH_PROMPT, upstream_url)
    bound = Interceptor(
        MATH_PROMPT, upstream_url, credentials={f"{upstream_url}/v1": "TEST_POLICY_KEY"}
    )
    for interceptor in (unbound, bound):
        async with interceptor:
            cid = new_cid()
            url = interceptor.register(cid, MATH_PROMPT.seed_candidate())
            async with httpx.AsyncClient() as client:
                answer = await client.post(url, json=chat_body(), headers=headers)
            assert answer.status_code == 200
            assert POLICY_KEY not in repr(interceptor.release(cid))
    assert stand_in.authorizations == [None, f"Bearer {POLICY_KEY}"]


@synchronously
async def test_upstream_failures_are_answered_and_recorded(proxy: Interceptor) -> None:
    down = Interceptor(MATH_PROMPT, "http://127.0.0.1:9/v1", timeout_s=5)
    async with down:
        cid = new_cid()
        url = down.register(cid, MATH_PROMPT.seed_candidate())
        async with httpx.AsyncClient() as client:
            answer = await client.post(url, json=chat_body())
        assert answer.status_code == 502
        assert answer.json()["error"]["code"] == "upstream_unreachable"
        [exchange] = down.release(cid)
        assert exchange.status == 502 and exchange.usage.calls == 0


def test_registrations_are_bounded_and_checked(proxy: Interceptor) -> None:
    with pytest.raises(ValueError, match="missing user"):
        proxy.register("a", {"system": "x"})
    with pytest.raises(ValueError, match="cid is"):
        proxy.register("a b", MATH_PROMPT.seed_candidate())
    for n in range(4):
        proxy.register(f"c{n}", MATH_PROMPT.seed_candidate())
    with pytest.raises(ValueError, match="already registered"):
        proxy.register("c0", MATH_PROMPT.seed_candidate())
    with pytest.raises(ValueError, match="4 cids are registered already"):
        proxy.register("c4", MATH_PROMPT.seed_candidate())
    proxy.release("c0")
    proxy.register("c4", MATH_PROMPT.seed_candidate())


def plain_app() -> Starlette:
    """A task app NOT built on this framework: its own routes, its own prompt, plain httpx."""

    async def rollout(request: Request) -> JSONResponse:
        body = await request.json()
        url = body["policy"]["config"]["inference_url"]
        question = f"Compute {body['env']['seed']} + 1."
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                url,
                json={
                    "model": "whatever",
                    "messages": [
                        {"role": "system", "content": DEFAULT_PROMPT["system"]},
                        {"role": "user", "content": f"Problem: {question}"},
                    ],
                },
            )
        text = answer.json()["choices"][0]["message"]["content"]
        reward = 1.0 if text == f"\\boxed{{{body['env']['seed'] + 1}}}" else 0.0
        return JSONResponse({"reward": reward, "status": answer.status_code})

    return Starlette(routes=[Route("/rollout", rollout, methods=["POST"])])


@synchronously
async def test_an_app_not_built_on_this_framework_works_through_it(proxy: Interceptor) -> None:
    cid = new_cid()
    url = proxy.register(cid, {"system": "Answer plainly.", "user": "Q: {query}"})
    with serve_in_background(plain_app()) as app_url:
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                f"{app_url}/rollout",
                json={"env": {"seed": 41}, "policy": {"config": {"inference_url": url}}},
            )
    assert answer.json() == {"reward": 1.0, "status": 200}
    [exchange] = proxy.release(cid)
    assert exchange.messages == [
        {"role": "system", "content": "Answer plainly."},
        {"role": "user", "content": "Q: Compute 41 + 1."},
    ]
    assert exchange.output == "\\boxed{42}"


@synchronously
async def test_prompt_template_delivery_forwards_as_sent_and_model_is_the_optimizers(
    upstream: tuple[Upstream, str],
) -> None:
    interceptor = Interceptor(MATH_PROMPT, f"{upstream[1]}/v1", model="the-policy")
    async with interceptor:
        cid = new_cid()
        url = interceptor.register(cid, {"system": "S", "user": "U {query}"}, rewrite=False)
        sent = chat_body(system="S")  # the app rendered the candidate itself
        async with httpx.AsyncClient() as client:
            answer = await client.post(url, json=sent)
    assert answer.status_code == 200
    seen = upstream[0].policy.requests_seen[-1].body
    assert seen["messages"] == sent["messages"] and seen["model"] == "the-policy"
    [exchange] = interceptor.release(cid)
    assert exchange.messages == sent["messages"] and exchange.error is None


@synchronously
async def test_concurrent_rollouts_each_get_and_record_their_own_candidate(
    proxy: Interceptor, upstream: tuple[Upstream, str]
) -> None:
    cids = [new_cid() for _ in range(4)]  # the fixture's cap
    for round_number in range(5):
        urls = {
            cid: proxy.register(cid, {"system": f"S{cid}", "user": f"{cid}: {{query}}"})
            for cid in cids
        }
        async with httpx.AsyncClient() as client:
            answers = await asyncio.gather(
                *(
                    client.post(url, json=chat_body(problem=f"Compute {n} + {round_number}."))
                    for n, url in enumerate(urls.values())
                    for _ in range(3)
                )
            )
        assert {a.status_code for a in answers} == {200}
        for n, cid in enumerate(cids):
            exchanges = proxy.release(cid)
            assert len(exchanges) == 3
            for exchange in exchanges:
                assert exchange.messages[0]["content"] == f"S{cid}"
                assert exchange.wildcards == {"query": f"Compute {n} + {round_number}."}
                assert (
                    exchange.tool_calls == []
                    and exchange.output == f"\\boxed{{{n + round_number}}}"
                )
    assert proxy.usage.calls == 60


class GatedUpstream(Upstream):
    """The stand-in, holding each answer until the test opens the gate (a named delay point)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = threading.Event()
        self.gate = threading.Event()

    async def chat(self, request: Request) -> Response:
        self.arrived.set()
        await asyncio.to_thread(self.gate.wait, 10)
        return await super().chat(request)


@pytest.mark.parametrize("attempt", range(10))
def test_a_call_still_in_flight_when_its_cid_is_released_is_not_recorded(attempt: int) -> None:
    gated = GatedUpstream()
    with serve_in_background(gated.app) as upstream_url:
        interceptor = Interceptor(MATH_PROMPT, upstream_url)
        with interceptor.serving():
            cid = new_cid()
            url = interceptor.register(cid, MATH_PROMPT.seed_candidate())
            result: list[httpx.Response] = []
            caller = threading.Thread(
                target=lambda: result.append(httpx.post(url, json=chat_body(), timeout=10))
            )
            caller.start()
            assert gated.arrived.wait(10)
            assert interceptor.release(cid) == []
            interceptor.register(cid, {"system": "reused", "user": "{query}"})
            gated.gate.set()
            caller.join(10)
            assert result[0].status_code == 200  # the app still gets its answer
            assert interceptor.release(cid) == []  # not the new registration's
            assert interceptor.usage.calls == 1


@synchronously
async def test_an_upstream_refusal_reaches_the_app_unchanged_and_is_recorded(
    upstream: tuple[Upstream, str],
) -> None:
    # the stand-in's reflection model refuses a request with no instruction block
    interceptor = Interceptor(MATH_PROMPT, upstream[1], model="offline-reflection")
    async with interceptor:
        cid = new_cid()
        url = interceptor.register(cid, MATH_PROMPT.seed_candidate())
        async with httpx.AsyncClient() as client:
            answer = await client.post(url, json=chat_body())
    assert answer.status_code == 400
    assert "```" in answer.json()["error"]["message"]  # the upstream's own words
    [exchange] = interceptor.release(cid)
    assert exchange.status == 400 and exchange.error == "The policy endpoint answered HTTP 400."


@synchronously
async def test_calls_past_the_record_cap_are_summed_so_no_token_goes_uncounted(
    upstream: tuple[Upstream, str],
) -> None:
    interceptor = Interceptor(MATH_PROMPT, upstream[1], max_records_per_cid=2)
    async with interceptor:
        cid = new_cid()
        url = interceptor.register(cid, MATH_PROMPT.seed_candidate())
        async with httpx.AsyncClient() as client:
            for n in range(5):
                answer = await client.post(url, json=chat_body(problem=f"Compute {n} + 1."))
                assert answer.status_code == 200
        first, second, summary = interceptor.release(cid)
    assert first.wildcards == {"query": "Compute 0 + 1."} and second.omitted == 0
    assert (summary.omitted, summary.messages, summary.error) == (3, [], None)
    assert summary.usage.calls == 3
    assert first.usage + second.usage + summary.usage == interceptor.usage


@synchronously
async def test_calls_past_the_byte_cap_are_summed_so_a_rollout_cannot_fill_memory(
    upstream: tuple[Upstream, str],
) -> None:
    """Per cid at most `max_record_bytes_per_cid` of calls and answers are kept: a call that
    would pass it, and every call after it, is summed into the last record (tokens still
    counted), so the records are the cid's first calls, in order."""
    interceptor = Interceptor(MATH_PROMPT, upstream[1], max_record_bytes_per_cid=20_000)
    padding = {"role": "user", "content": "x" * 30_000}  # the rest of a conversation
    async with interceptor:
        cid = new_cid()
        url = interceptor.register(cid, MATH_PROMPT.seed_candidate())
        async with httpx.AsyncClient() as client:
            for n, extra in enumerate(([], [padding], [padding], [])):
                body = chat_body(problem=f"Compute {n} + 1.")
                body["messages"] += extra
                answer = await client.post(url, json=body)
                assert answer.status_code == 200
        first, summary = interceptor.release(cid)
    assert first.wildcards == {"query": "Compute 0 + 1."}
    assert (summary.omitted, summary.messages, summary.usage.calls) == (3, [], 3)
    assert first.usage + summary.usage == interceptor.usage


@synchronously
async def test_a_redirect_from_the_policy_is_answered_502_and_recorded() -> None:
    """The interceptor follows no redirect, and passing one on without its Location would
    leave the app's client with nothing to follow: it answers 502 saying so."""

    async def moved(request: Request) -> Response:
        return Response(status_code=307, headers={"Location": "http://127.0.0.1:9/v1"})

    redirecting = Starlette(routes=[Route("/v1/chat/completions", moved, methods=["POST"])])
    with serve_in_background(redirecting) as policy_url:
        interceptor = Interceptor(MATH_PROMPT, f"{policy_url}/v1")
        async with interceptor:
            cid = new_cid()
            url = interceptor.register(cid, MATH_PROMPT.seed_candidate())
            async with httpx.AsyncClient() as client:
                answer = await client.post(url, json=chat_body())
            [exchange] = interceptor.release(cid)
    assert answer.status_code == 502
    assert answer.json()["error"]["code"] == "upstream_redirect"
    assert "HTTP 307" in answer.json()["error"]["message"]
    assert exchange.status == 502 and exchange.error is not None and "redirect" in exchange.error
