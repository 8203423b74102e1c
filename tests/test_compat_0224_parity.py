"""The same 0.2.24-style app file answers here as on synth-ai 0.2.24 (issue 30, item 4).

`examples/published_0224_app/app.py` is served twice with `uvicorn app:app`: by the published
0.2.24 (in the bench's cached virtualenv, `bench/.cache/published`; skipped, saying so, where it
is absent) and by this project. Each route is asked the same thing on both; the answers must
be equal, except where COMPATIBILITY.md lists an intended difference, under the id the case
names, and then the difference must be exactly that one. The vendor behind the proxy routes is
an OFFLINE FAKE (an OpenAI-compatible endpoint that records what it is sent).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from synth_ai.task import serve_in_background
from tests.conftest import KEY
from tests.processes import free_port
from tests.published import published_python

ROOT = Path(__file__).resolve().parents[1]
APP_DIR = ROOT / "examples" / "published_0224_app"
VENDOR_KEY = "xjqzwvvkkvvkkvvkkvvkkvvk"
HEADERS = {"X-API-Key": KEY}
ROLLOUT = {
    "run_id": "parity-1",
    "env": {"seed": 3, "config": {}},
    "policy": {"config": {"answer": "60"}},
    "ops": [],
    "mode": "eval",
}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "1+1"}]}


class FakeVendor:
    """OFFLINE FAKE of an OpenAI-compatible endpoint: records the headers and body it gets."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    async def chat(self, request: Request) -> JSONResponse:
        self.seen.append((request.headers.get("authorization", ""), await request.json()))
        message = {"role": "assistant", "content": "Actions: add"}
        return JSONResponse({"id": "fake-1", "choices": [{"index": 0, "message": message}]})


@dataclass
class Served:
    url: str
    process: subprocess.Popen[str]
    output: list[str]


def serve(python: Path | str, env: dict[str, str]) -> Served:
    """`python -m uvicorn app:app` in the example's folder, once it says it is up."""
    port = free_port()
    process = subprocess.Popen(
        [str(python), "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=APP_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    output: list[str] = []
    for line in process.stdout:
        output.append(line)
        if "Application startup complete" in line:
            threading.Thread(
                target=lambda: output.extend(process.stdout or ()), daemon=True
            ).start()
            return Served(f"http://127.0.0.1:{port}", process, output)
    process.wait(timeout=10)
    raise AssertionError(f"{python} could not serve app.py:\n" + "".join(output[-40:]))


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[str, str, FakeVendor]]:
    python = published_python()
    vendor = FakeVendor()
    with serve_in_background(vendor.app) as vendor_url:
        home = ROOT / "bench" / ".cache" / "parity-home"
        home.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "ENVIRONMENT_API_KEY": KEY,
            "OPENAI_API_KEY": VENDOR_KEY,
            "ARITH_OPENAI_URL": f"{vendor_url}/v1/chat/completions",
            "ARITH_GROQ_URL": f"{vendor_url}/v1/chat/completions",
            "SYNTH_AUTO_TRACE": "0",
            "NO_PROXY": "127.0.0.1,localhost",
        }
        published = serve(python, env)
        ours = serve(sys.executable, env)
        try:
            yield published.url, ours.url, vendor
        finally:
            for served in (published, ours):
                served.process.terminate()
                served.process.wait(timeout=15)


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    headers: dict[str, str] | None = None
    body: Any = None
    raw: bytes | None = None
    difference: str | None = None
    """The COMPATIBILITY.md id of the one intended difference; None: the answers are equal."""


def superset(ours: Any, theirs: Any, where: str = "") -> list[str]:
    """Where `ours` does not hold `theirs` (more keys in objects are fine)."""
    if isinstance(theirs, dict) and isinstance(ours, dict):
        return [
            problem
            for key, value in theirs.items()
            for problem in (
                superset(ours[key], value, f"{where}.{key}")
                if key in ours
                else [f"{where}.{key} missing"]
            )
        ]
    if isinstance(theirs, list) and isinstance(ours, list) and len(theirs) == len(ours):
        pairs = enumerate(zip(ours, theirs, strict=True))
        return [p for i, (o, t) in pairs for p in superset(o, t, f"{where}[{i}]")]
    return [] if ours == theirs else [f"{where}: {ours!r} != {theirs!r}"]


def error(response: httpx.Response) -> dict[str, Any]:
    detail = response.json()["detail"]
    assert isinstance(detail, dict) and set(detail) == {"error"}, response.text
    return dict(detail["error"])


def auth_401(published: httpx.Response, ours: httpx.Response) -> None:
    assert published.status_code == 400
    assert error(published)["code"] == "unauthorised"
    assert ours.status_code == 401 and error(ours)["code"] == "unauthorised"
    assert KEY[:4] in published.text  # what 0.2.24 gave away
    assert KEY[:4] not in ours.text + str(ours.headers)


def health_superset(published: httpx.Response, ours: httpx.Response) -> None:
    theirs, mine = published.json(), ours.json()
    assert theirs["auth"].pop("expected_prefix") == f"{KEY[:6]}..."
    assert mine["auth"].pop("expected_prefix") == f"{KEY[:4]}..."
    assert superset(mine, theirs) == []


def debug_env_no_prefix(published: httpx.Response, ours: httpx.Response) -> None:
    theirs, mine = published.json(), ours.json()
    assert theirs["has_ENVIRONMENT_API_KEY"] is mine["has_ENVIRONMENT_API_KEY"] is True
    assert theirs["OPENAI_API_KEY_prefix"] == f"{VENDOR_KEY[:6]}…"
    assert mine["has_OPENAI_API_KEY"] is True and mine["has_GROQ_API_KEY"] is False
    assert not any(name.endswith("_prefix") for name in mine)
    assert VENDOR_KEY[:4] not in ours.text


def info_superset(published: httpx.Response, ours: httpx.Response) -> None:
    theirs, mine = published.json(), ours.json()
    garbled = [key for key, value in theirs.items() if value == "<circular type=dict>"]
    assert garbled  # 0.2.24's serialiser answers some objects as this string
    for key in garbled:
        del theirs[key]
        assert isinstance(mine.pop(key), dict)
    assert superset(mine, theirs) == []


def plain_superset(published: httpx.Response, ours: httpx.Response) -> None:
    assert published.status_code == ours.status_code == 200
    assert superset(ours.json(), published.json()) == []


def rollout_superset(published: httpx.Response, ours: httpx.Response) -> None:
    theirs, mine = published.json(), ours.json()
    assert theirs.pop("trace_correlation_id") is None
    assert mine.pop("trace_correlation_id") == ROLLOUT["run_id"]
    plain = superset(mine, theirs)
    assert plain == [], plain


def envelope_of_detail(published: httpx.Response, ours: httpx.Response) -> None:
    assert published.status_code == ours.status_code
    detail = published.json()["detail"]
    assert isinstance(detail, str)
    mine = error(ours)
    if detail in ("Not Found", "Method Not Allowed"):
        assert mine["code"] in ("not_found", "method_not_allowed")
    else:
        assert mine["message"] == detail


def validation_envelope(published: httpx.Response, ours: httpx.Response) -> None:
    assert published.status_code == ours.status_code == 422
    theirs = [{k: e[k] for k in ("loc", "msg", "type")} for e in published.json()["detail"]]
    assert error(ours)["errors"] == theirs
    assert "zzhostile" not in ours.text


def mode_optional(published: httpx.Response, ours: httpx.Response) -> None:
    assert published.status_code == 422
    assert ours.status_code == 200


def hostile_4xx(published: httpx.Response, ours: httpx.Response) -> None:
    assert 400 <= ours.status_code < 500, ours.text
    assert set(ours.json()["detail"]["error"]) >= {"code", "message"}


CHECKS: dict[str, Callable[[httpx.Response, httpx.Response], None]] = {
    "auth-401": auth_401,
    "health-superset": health_superset,
    "debug-env-no-prefix": debug_env_no_prefix,
    "info-superset": info_superset,
    "task-info-superset": plain_superset,
    "rollout-superset": rollout_superset,
    "rollout-mode-optional": mode_optional,
    "http-exception-envelope": envelope_of_detail,
    "validation-envelope": validation_envelope,
    "not-found-envelope": envelope_of_detail,
    "hostile-4xx": hostile_4xx,
}
NO_MODE = {k: v for k, v in ROLLOUT.items() if k != "mode"}
CASES = [
    Case("root", "GET", "/"),
    Case("root-head", "HEAD", "/"),
    Case("done", "POST", "/done"),
    Case("taskset", "GET", "/task_info"),
    Case("author-route", "GET", "/arith/problem/3"),
    Case("author-route-checking-the-key", "GET", "/arith/admin"),
    Case(
        "rollout-http-exception",
        "POST",
        "/rollout",
        body={**ROLLOUT, "env": {"seed": 3, "config": {"difficulty": "x"}}},
    ),
    Case("proxy-openai", "POST", "/proxy/v1/chat/completions", body=CHAT),
    Case("proxy-groq-without-key", "POST", "/proxy/groq/v1/chat/completions", body=CHAT),
    Case("health", "GET", "/health", difference="health-superset"),
    Case("health-without-key", "GET", "/health", headers={}, difference="auth-401"),
    Case(
        "author-route-wrong-key",
        "GET",
        "/arith/admin",
        headers={"X-API-Key": "zzwrongzz"},
        difference="auth-401",
    ),
    Case(
        "rollout-without-key", "POST", "/rollout", headers={}, body=ROLLOUT, difference="auth-401"
    ),
    Case("debug-env", "GET", "/debug/env", difference="debug-env-no-prefix"),
    Case("info", "GET", "/info", difference="info-superset"),
    Case("task-info-seed", "GET", "/task_info?seed=3", difference="task-info-superset"),
    Case("task-info-seeds", "GET", "/task_info?seed=1&seed=2", difference="task-info-superset"),
    Case("rollout", "POST", "/rollout", body=ROLLOUT, difference="rollout-superset"),
    Case(
        "rollout-without-mode", "POST", "/rollout", body=NO_MODE, difference="rollout-mode-optional"
    ),
    Case(
        "author-http-exception", "GET", "/arith/problem/300", difference="http-exception-envelope"
    ),
    Case("author-validation", "GET", "/arith/problem/zzhostile", difference="validation-envelope"),
    Case("unknown-route", "GET", "/no/such/route", difference="not-found-envelope"),
    Case("wrong-method", "POST", "/health", difference="not-found-envelope"),
    Case(
        "rollout-malformed-json", "POST", "/rollout", raw=b'{"run_id": ', difference="hostile-4xx"
    ),
    Case(
        "rollout-huge-seed",
        "POST",
        "/rollout",
        raw=b'{"run_id":"h","env":{"seed":'
        + b"9" * 10_000
        + b'},"policy":{},"ops":[],"mode":"eval"}',
        difference="hostile-4xx",
    ),
    Case(
        "rollout-non-finite",
        "POST",
        "/rollout",
        raw=b'{"run_id":"h","env":{"seed":NaN},"policy":{},"ops":[],"mode":"eval"}',
        difference="hostile-4xx",
    ),
    Case("task-info-bad-seed", "GET", "/task_info?seed=zz", difference="hostile-4xx"),
]


def ask(base: str, case: Case) -> httpx.Response:
    headers = HEADERS if case.headers is None else case.headers
    if case.raw is not None:
        headers = {**headers, "Content-Type": "application/json"}
        return httpx.request(
            case.method, base + case.path, content=case.raw, headers=headers, timeout=60
        )
    return httpx.request(case.method, base + case.path, json=case.body, headers=headers, timeout=60)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_answer_is_0224s_or_differs_only_as_listed(
    servers: tuple[str, str, FakeVendor], case: Case
) -> None:
    published_url, our_url, _ = servers
    published, ours = ask(published_url, case), ask(our_url, case)
    if case.difference is None:
        assert (ours.status_code, ours.text and ours.json()) == (
            published.status_code,
            published.text and published.json(),
        )
    else:
        CHECKS[case.difference](published, ours)


def test_both_forward_the_same_proxy_call(servers: tuple[str, str, FakeVendor]) -> None:
    published_url, our_url, vendor = servers
    vendor.seen.clear()
    for base in (published_url, our_url):
        assert (
            httpx.post(
                f"{base}/proxy/v1/chat/completions", json=CHAT, headers=HEADERS, timeout=60
            ).status_code
            == 200
        )
    (theirs_auth, theirs_body), (our_auth, our_body) = vendor.seen
    assert theirs_auth == our_auth == f"Bearer {VENDOR_KEY}"
    assert our_body == theirs_body
    assert our_body["messages"][0] == {"role": "system", "content": "Answer with one integer."}


def test_every_listed_difference_is_exercised_and_every_used_one_listed() -> None:
    text = (ROOT / "COMPATIBILITY.md").read_text(encoding="utf-8")
    section = text.split("## Intended differences in answers", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([a-z0-9-]+)` \|", section, flags=re.MULTILINE))
    used = {case.difference for case in CASES if case.difference}
    assert listed == used == set(CHECKS)
