"""0.2.24-style apps served here (issue 30, items 1-3): routers, app_state, a (request,
fastapi_request) executor, HTTPException, require_api_key_dependency and the vendor proxy.

Real uvicorn servers on loopback and real HTTP clients; the only stand-in is the vendor, an
OFFLINE FAKE of an OpenAI-compatible endpoint that records what it was sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, Request
from fastapi import HTTPException as FastAPIHTTPException
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse
from starlette.routing import Route

from synth_ai.task import serve_in_background
from synth_ai.task.apps import ModalDeploymentConfig, TaskAppEntry, register_task_app, registry
from synth_ai.task.contracts import RolloutRequest, RolloutResponse, TaskDescriptor, TaskInfo
from synth_ai.task.datasets import TaskDatasetRegistry, TaskDatasetSpec
from synth_ai.task.errors import http_exception
from synth_ai.task.rubrics import Criterion, Rubric
from synth_ai.task.server import (
    ProxyConfig,
    RubricBundle,
    TaskAppConfig,
    create_task_app,
    require_api_key_dependency,
)
from tests.conftest import KEY, auth_headers

BASE = TaskInfo(task=TaskDescriptor(id="compat", name="Compat"), environment="compat")
BODY = {"run_id": "r1", "env": {"seed": 4, "config": {}}, "policy": {"config": {}}, "ops": []}


def answer(request: RolloutRequest, value: Any) -> RolloutResponse:
    return RolloutResponse.model_validate(
        {
            "run_id": request.run_id,
            "trajectories": [
                {
                    "env_id": "e",
                    "policy_id": "p",
                    "steps": [{"obs": {"value": value}, "tool_calls": [], "reward": 1.0}],
                    "length": 1,
                    "inference_url": "",
                }
            ],
            "metrics": {"episode_returns": [1.0], "mean_return": 1.0, "num_steps": 1},
        }
    )


async def state_rollout(request: RolloutRequest, fastapi_request: Request) -> RolloutResponse:
    return answer(request, fastapi_request.app.state.greeting)


def sync_state_rollout(request: RolloutRequest, http_request: Any) -> RolloutResponse:
    return answer(request, http_request.app.state.greeting)


def published_config(**options: Any) -> TaskAppConfig:
    settings: dict[str, Any] = {
        "app_id": "compat",
        "name": "Compat",
        "description": "0.2.24 style",
        "base_task_info": BASE,
        "describe_taskset": lambda: {"id": "compat"},
        "provide_task_instances": lambda seeds: [BASE for _ in seeds],
        "rollout": state_rollout,
        "app_state": {"greeting": "hello"},
    }
    settings.update(options)
    return TaskAppConfig(**settings)


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[str]:
    config = request.param if hasattr(request, "param") else published_config()
    with serve_in_background(create_task_app(config)) as url:
        yield url


def rollout(url: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.post(f"{url}/rollout", json=body or BODY, headers=auth_headers(), timeout=30)


@pytest.mark.parametrize("executor", [state_rollout, sync_state_rollout])
def test_an_executor_taking_the_http_request_reads_app_state(executor: Any) -> None:
    with serve_in_background(create_task_app(published_config(rollout=executor))) as url:
        response = rollout(url)
    assert response.status_code == 200, response.text
    assert response.json()["trajectories"][0]["steps"][0]["obs"] == {"value": "hello"}


def test_a_native_executor_still_gets_the_rollout_context() -> None:
    def native(request: RolloutRequest, context: Any) -> RolloutResponse:
        return answer(request, type(context).__name__)

    with serve_in_background(create_task_app(published_config(rollout=native))) as url:
        response = rollout(url)
    assert response.json()["trajectories"][0]["steps"][0]["obs"] == {"value": "RolloutContext"}


def raising(exc: Exception) -> Any:
    async def executor(request: RolloutRequest, fastapi_request: Request) -> RolloutResponse:
        raise exc

    return executor


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422, 429, 503])
@pytest.mark.parametrize("kind", ["fastapi", "starlette", "http_exception"])
def test_an_http_exception_from_an_executor_is_the_envelope_with_its_status(
    status: int, kind: str
) -> None:
    exc: Exception = {
        "fastapi": FastAPIHTTPException(status, detail="bad seed"),
        "starlette": StarletteHTTPException(status, detail="bad seed"),
        "http_exception": http_exception(status, "bad_seed", "bad seed", extra={"seed": 4}),
    }[kind]
    with serve_in_background(create_task_app(published_config(rollout=raising(exc)))) as url:
        response = rollout(url)
    assert response.status_code == status
    error = response.json()["detail"]["error"]
    assert error["message"] == "bad seed"
    if kind == "http_exception":
        assert error == {"code": "bad_seed", "message": "bad seed", "seed": 4}


router = APIRouter(prefix="/author")


@router.get("/state")
async def author_state(request: Request) -> dict[str, Any]:
    return {"greeting": request.app.state.greeting}


@router.get("/item/{item_id}")
async def author_item(item_id: int) -> dict[str, Any]:
    if item_id > 10:
        raise FastAPIHTTPException(status_code=404, detail=f"no item {item_id}")
    if item_id < 0:
        raise StarletteHTTPException(status_code=409, detail="negative")
    return {"item": item_id}


@router.get("/checked")
async def author_checked(request: Request) -> dict[str, Any]:
    require_api_key_dependency(request)
    return {"ok": True}


@router.get("/depends", dependencies=[Depends(require_api_key_dependency)])
async def author_depends() -> dict[str, Any]:
    return {"ok": True}


@pytest.mark.parametrize("served", [published_config(routers=(router,))], indirect=True)
def test_routers_are_served_behind_the_key_with_app_state_and_the_envelope(served: str) -> None:
    with httpx.Client(base_url=served, headers=auth_headers(), timeout=30) as client:
        assert client.get("/author/state").json() == {"greeting": "hello"}
        assert client.get("/author/item/3").json() == {"item": 3}
        missing = client.get("/author/item/11")
        conflict = client.get("/author/item/-1")
        invalid = client.get("/author/item/zzz-secret-input")
        assert client.get("/author/nothing").status_code == 404
        assert client.post("/author/state").status_code == 405
        assert client.post("/health").status_code == 405  # a standard route's 405 stays
    assert missing.status_code == 404
    assert missing.json() == {"detail": {"error": {"code": "not_found", "message": "no item 11"}}}
    assert conflict.status_code == 409
    assert conflict.json()["detail"]["error"]["message"] == "negative"
    assert invalid.status_code == 422
    assert invalid.json()["detail"]["error"]["errors"][0]["loc"] == ["path", "item_id"]
    assert "zzz-secret-input" not in invalid.text
    refused = httpx.get(f"{served}/author/state", timeout=30)
    assert refused.status_code == 401


@pytest.mark.parametrize(
    "served", [published_config(routers=(router,), require_api_key=False)], indirect=True
)
@pytest.mark.parametrize("path", ["/author/checked", "/author/depends"])
def test_require_api_key_dependency_refuses_with_401_and_never_echoes_a_key(
    served: str, path: str
) -> None:
    wrong = "zzwrongkeyzzqqqqqqqqqqqq"
    for headers in ({}, {"X-API-Key": wrong}, {"Authorization": f"Bearer {wrong}"}):
        refused = httpx.get(f"{served}{path}", headers=headers, timeout=30)
        assert refused.status_code == 401
        assert refused.json()["detail"]["error"]["code"] == "unauthorised"
        assert refused.headers["www-authenticate"].startswith("Bearer")
        shown = refused.text + str(refused.headers)
        assert wrong[:4] not in shown and KEY[:4] not in shown
    accepted = httpx.get(f"{served}{path}", headers=auth_headers(), timeout=30)
    assert accepted.json() == {"ok": True}


@pytest.mark.parametrize(
    "served", [published_config(routers=(router,), require_api_key=False)], indirect=True
)
def test_require_api_key_dependency_is_503_when_no_key_is_configured(
    served: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ENVIRONMENT_API_KEY")
    response = httpx.get(f"{served}/author/checked", headers=auth_headers(), timeout=30)
    assert response.status_code == 503
    assert response.json()["detail"]["error"]["code"] == "missing_environment_api_key"


def test_hooks_datasets_rubrics_and_debug_env() -> None:
    seen: list[Any] = []
    datasets = TaskDatasetRegistry()
    spec = TaskDatasetSpec(id="d", name="D", splits=["a"], default_split="a", cardinality=3)
    datasets.register(spec, lambda s: list(range(s.cardinality or 0)))
    rubric = Rubric(version="1", criteria=[Criterion(id="c", description="C", required=True)])
    config = published_config(
        dataset_registry=datasets,
        rubrics=RubricBundle(outcome=rubric),
        startup_hooks=(lambda app: seen.append(("up", app.state.greeting)),),
        shutdown_hooks=(lambda: seen.append("down"),),
        expose_debug_env=True,
    )
    assert config.datasets is datasets
    with serve_in_background(create_task_app(config)) as url:
        info = httpx.get(f"{url}/info", headers=auth_headers(), timeout=30).json()
        debug = httpx.get(f"{url}/debug/env", headers=auth_headers(), timeout=30)
        done = httpx.post(f"{url}/done", headers=auth_headers(), timeout=30).json()
    assert seen == [("up", "hello"), "down"]
    assert info["datasets"][0]["cardinality"] == 3
    assert info["rubrics"] == {"outcome": rubric.model_dump(mode="json"), "events": None}
    assert debug.json()["has_ENVIRONMENT_API_KEY"] is True
    assert KEY[:4] not in debug.text
    assert done == {"ok": True, "service": "compat"}
    assert datasets.get("d") == [0, 1, 2]
    assert datasets.describe("d") is spec


def test_task_app_entry_takes_0224s_fields_and_forms() -> None:
    def factory() -> TaskAppConfig:
        return published_config()

    entry = TaskAppEntry(
        "compat-entry",
        "0.2.24 positional order",
        factory,  # type: ignore[arg-type]
        aliases=["compat-alias"],  # type: ignore[arg-type]
        env_files=["x.env"],  # type: ignore[arg-type]
        modal=ModalDeploymentConfig(app_name="compat"),
    )
    assert entry.config_factory is factory and entry.description == "0.2.24 positional order"
    assert entry.aliases == ("compat-alias",) and entry.env_files == ("x.env",)
    register_task_app(entry=entry)
    assert registry.get("compat-alias") is entry
    assert entry in registry.list() and entry in list(registry)


# --- the vendor proxy -------------------------------------------------------------------------


class FakeVendor:
    """OFFLINE FAKE of an OpenAI-compatible chat-completions endpoint: records each request's
    headers and body and answers a fixed assistant message (or `status`, when set)."""

    def __init__(self) -> None:
        self.seen: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.status = 200
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    async def chat(self, request: StarletteRequest) -> JSONResponse:
        self.seen.append((dict(request.headers), await request.json()))
        if self.status != 200:
            return JSONResponse({"error": {"message": "slow down"}}, status_code=self.status)
        message = {"role": "assistant", "content": "Actions: add, check"}
        return JSONResponse({"id": "fake-1", "choices": [{"index": 0, "message": message}]})


@pytest.fixture
def vendor() -> Iterator[tuple[FakeVendor, str]]:
    fake = FakeVendor()
    with serve_in_background(fake.app) as url:
        yield fake, f"{url}/v1/chat/completions"


VENDOR_KEY = "xjqzwvvkkvvkkvvkkvvkkvvk"


def test_the_proxy_forwards_to_the_configured_url_with_the_vendor_key_and_hint(
    vendor: tuple[FakeVendor, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, vendor_url = vendor
    monkeypatch.setenv("OPENAI_API_KEY", VENDOR_KEY)
    proxy = ProxyConfig(enable_openai=True, system_hint="Be brief.", openai_url=vendor_url)
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "1+1"}],
        "thinking_budget": 5,
        "api_key": "zzrequestchosenkeyzz",
    }
    with serve_in_background(create_task_app(published_config(proxy=proxy))) as url:
        headers = {**auth_headers(), "Authorization": "Bearer zzrequestchosenkeyzz"}
        answered = httpx.post(
            f"{url}/proxy/v1/chat/completions", json=body, headers=headers, timeout=30
        )
        refused = httpx.post(f"{url}/proxy/v1/chat/completions", json=body, timeout=30)
        not_object = httpx.post(
            f"{url}/proxy/v1/chat/completions", json=[1], headers=auth_headers(), timeout=30
        )
        fake.status = 429
        vendor_error = httpx.post(
            f"{url}/proxy/v1/chat/completions", json=body, headers=auth_headers(), timeout=30
        )
        monkeypatch.delenv("OPENAI_API_KEY")
        no_key = httpx.post(
            f"{url}/proxy/v1/chat/completions", json=body, headers=auth_headers(), timeout=30
        )
        groq_off = httpx.post(
            f"{url}/proxy/groq/v1/chat/completions", json=body, headers=auth_headers(), timeout=30
        )
    assert answered.status_code == 200, answered.text
    call = answered.json()["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "interact"  # 0.2.24's synthesized tool call
    assert len(fake.seen) == 2  # the answered call and the vendor error; nothing else
    sent_headers, sent_body = fake.seen[0]
    assert sent_headers["authorization"] == f"Bearer {VENDOR_KEY}"
    assert "x-api-key" not in sent_headers and KEY not in str(sent_headers)
    assert sent_body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert "thinking_budget" not in sent_body
    assert refused.status_code == 401
    assert not_object.status_code == 422
    assert vendor_error.status_code == 429
    assert vendor_error.json()["detail"]["error"]["code"] == "vendor_error"
    assert no_key.status_code == 503
    assert no_key.json()["detail"]["error"] == {
        "code": "missing_openai_api_key",
        "message": "OPENAI_API_KEY is not configured",
    }
    assert groq_off.status_code == 404
    assert VENDOR_KEY[:4] not in answered.text + vendor_error.text + no_key.text


def test_the_proxy_forwards_nowhere_but_the_configured_url(
    vendor: tuple[FakeVendor, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request cannot redirect the proxy: URL-ish fields in the body or headers are data."""
    fake, vendor_url = vendor
    monkeypatch.setenv("GROQ_API_KEY", VENDOR_KEY)
    proxy = ProxyConfig(enable_groq=True, groq_url=vendor_url + "/")
    body = {"model": "llama", "messages": [], "url": "http://127.0.0.1:1/steal"}
    with serve_in_background(create_task_app(published_config(proxy=proxy))) as url:
        headers = {**auth_headers(), "X-Forwarded-Host": "evil.example", "Host": "evil.example"}
        answered = httpx.post(
            f"{url}/proxy/groq/v1/chat/completions", json=body, headers=headers, timeout=30
        )
    assert answered.status_code == 200, answered.text
    assert len(fake.seen) == 1 and fake.seen[0][0]["authorization"] == f"Bearer {VENDOR_KEY}"


# --- concurrent rollouts each see their own HTTP request ------------------------------------

CONCURRENT = 8


def overlapping_executors() -> tuple[Any, Any]:
    """An async and a sync executor that answer only once CONCURRENT rollouts are inside
    (an event and a barrier: every request is in flight at once, no sleeps), each answering
    its own request's `X-Probe` header and body."""
    import asyncio
    import threading

    arrived = 0
    all_in = asyncio.Event()
    barrier = threading.Barrier(CONCURRENT, timeout=30)

    async def async_executor(request: RolloutRequest, fastapi_request: Request) -> Any:
        nonlocal arrived
        arrived += 1
        if arrived == CONCURRENT:
            all_in.set()
        await asyncio.wait_for(all_in.wait(), 30)
        body = await fastapi_request.json()
        return answer(request, [fastapi_request.headers["x-probe"], body["run_id"]])

    def sync_executor(request: RolloutRequest, fastapi_request: Request) -> Any:
        barrier.wait()
        return answer(request, [fastapi_request.headers["x-probe"], request.run_id])

    return async_executor, sync_executor


@pytest.mark.parametrize("round_", range(15))
@pytest.mark.parametrize("kind", ["async", "sync"])
def test_concurrent_rollouts_each_see_their_own_request(round_: int, kind: str) -> None:
    import asyncio

    async_executor, sync_executor = overlapping_executors()
    executor = async_executor if kind == "async" else sync_executor
    config = published_config(rollout=executor)

    async def run_all(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/rollout",
                        json={**BODY, "run_id": f"run-{n}"},
                        headers={**auth_headers(), "X-Probe": f"probe-{n}"},
                    )
                    for n in range(CONCURRENT)
                )
            )

    with serve_in_background(create_task_app(config)) as url:
        responses = asyncio.run(run_all(url))
    for n, response in enumerate(responses):
        assert response.status_code == 200, response.text
        seen = response.json()["trajectories"][0]["steps"][0]["obs"]["value"]
        assert seen == [f"probe-{n}", f"run-{n}"]
