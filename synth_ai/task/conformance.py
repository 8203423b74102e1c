"""Checking any running task app, in any language, against the contract (DESIGN.md 3).

`check_conformance(url, ...)` answers a `ConformanceReport`: one `CheckResult` per rule, with the
reason for each failure and the latency of each call. `synth-ai check URL` prints it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from pydantic import ValidationError

from .client import every_generation
from .contracts import TaskInfo
from .validators import validate_rollout_response_for_rl

RESPONSE_FIELDS = ("run_id", "trace_correlation_id", "trajectories", "metrics", "pipeline_metadata")
TASK_INFO_FIELDS = ("task", "environment", "dataset", "rubric", "inference", "limits")
INFO_FIELDS = ("service", "dataset", "inference", "limits", "contract_version")


@dataclass
class CheckResult:
    name: str
    passed: bool
    required: bool = True
    detail: str = ""
    latency_ms: float | None = None


@dataclass
class ConformanceReport:
    url: str
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks if check.required)

    @property
    def failures(self) -> list[str]:
        return [check.name for check in self.checks if check.required and not check.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "passed": self.passed, "checks": [asdict(c) for c in self.checks]}


class CheckFailed(Exception):
    pass


def _leaks(text: str, secret: str, size: int = 4) -> bool:
    return len(secret) >= size and any(
        secret[i : i + size] in text for i in range(len(secret) - size + 1)
    )


class _Checker:
    def __init__(self, http: httpx.AsyncClient, key: str, report: ConformanceReport) -> None:
        self.http = http
        self.key = key
        self.report = report
        self.auth = {"X-API-Key": key, "Authorization": f"Bearer {key}"}

    async def run(
        self, name: str, check: Callable[[], Awaitable[str]], *, required: bool = True
    ) -> None:
        started = time.perf_counter()
        try:
            detail, passed = await check(), True
        except CheckFailed as exc:
            detail, passed = str(exc), False
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            detail, passed = f"{type(exc).__name__}: {exc}", False
        latency = (time.perf_counter() - started) * 1000
        self.report.checks.append(CheckResult(name, passed, required, detail, round(latency, 1)))

    async def get_json(self, path: str, *, auth: bool = True, **params: Any) -> Any:
        response = await self.http.get(path, headers=self.auth if auth else {}, params=params)
        if response.status_code != 200:
            raise CheckFailed(f"GET {path} answered {response.status_code}: {response.text[:200]}")
        return response.json()


def _require(data: Any, fields: Sequence[str], where: str) -> None:
    if not isinstance(data, dict):
        raise CheckFailed(f"{where} is not a JSON object")
    missing = [f for f in fields if f not in data]
    if missing:
        raise CheckFailed(f"{where} lacks {', '.join(missing)}")


async def check_conformance(
    url: str,
    api_key: str,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    inference_url: str | None = None,
    model: str | None = None,
    timeout_s: float = 60.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ConformanceReport:
    """Run every contract check against the app at `url`; never raises for a broken app."""
    report = ConformanceReport(url)
    async with httpx.AsyncClient(
        base_url=url.rstrip("/"), timeout=timeout_s, transport=transport
    ) as http:
        c = _Checker(http, api_key, report)

        async def liveness() -> str:
            data = await c.get_json("/", auth=False)
            _require(data, ("status",), "GET /")
            return f"status={data['status']}"

        async def health_with_key() -> str:
            data = await c.get_json("/health")
            if data.get("healthy") is not True:
                raise CheckFailed(f"healthy is {data.get('healthy')!r}")
            return "healthy"

        async def health_without_key() -> str:
            response = await http.get("/health")
            if response.status_code != 401:
                raise CheckFailed(
                    f"GET /health without a key answered {response.status_code}, not 401"
                )
            return "401 without a key"

        async def no_key_material() -> str:
            wrong = f"wrong-{uuid.uuid4().hex}"
            for headers in ({}, {"X-API-Key": wrong}, {"Authorization": f"Bearer {wrong}"}):
                response = await http.get("/health", headers=headers)
                body = response.text + " ".join(f"{k}: {v}" for k, v in response.headers.items())
                if _leaks(body, api_key):
                    raise CheckFailed("a 401 answer contains part of the valid key")
                if headers and _leaks(body, wrong):
                    raise CheckFailed("a 401 answer echoes the presented key")
            return "no key material in 401 answers"

        async def info_shape() -> str:
            data = await c.get_json("/info")
            _require(data, INFO_FIELDS, "/info")
            return f"contract_version={data['contract_version']}"

        async def taskset() -> str:
            data = await c.get_json("/task_info")
            if not isinstance(data, dict) or not data:
                raise CheckFailed("/task_info without seeds is not a non-empty object")
            return "taskset described"

        async def task_info_seeds() -> str:
            for seed in seeds:
                data = await c.get_json("/task_info", seed=seed)
                _require(data, TASK_INFO_FIELDS, f"/task_info?seed={seed}")
                try:
                    TaskInfo.model_validate(data)
                except ValidationError as exc:
                    raise CheckFailed(f"/task_info?seed={seed}: {exc.errors()[0]['msg']}") from None
            return f"{len(seeds)} seeds"

        async def determinism() -> str:
            seed = seeds[0]
            first = await c.get_json("/task_info", seed=seed)
            second = await c.get_json("/task_info", seed=seed)
            if first != second:
                raise CheckFailed(f"/task_info?seed={seed} differs between two calls")
            return f"seed {seed} stable"

        async def rollout(mode: str) -> str:
            if not inference_url:
                raise CheckFailed(
                    "no policy to roll out with: pass --inference-url or --offline-policy"
                )
            cid = f"check-{mode}-{uuid.uuid4().hex[:10]}"
            body = {
                "run_id": cid,
                "trace_correlation_id": cid,
                "mode": mode,
                "env": {"seed": seeds[0], "config": {"seed": seeds[0]}},
                "policy": {"config": {"inference_url": inference_url, "model": model or "policy"}},
                "record": {"return_trace": True, "trace_format": "structured"},
            }
            response = await http.post("/rollout", json=every_generation(body), headers=c.auth)
            if response.status_code != 200:
                raise CheckFailed(
                    f"POST /rollout ({mode}) answered {response.status_code}: {response.text[:200]}"
                )
            data = response.json()
            _require(data, RESPONSE_FIELDS, f"rollout response ({mode})")
            if data["trace_correlation_id"] != cid:
                raise CheckFailed(
                    f"trace_correlation_id is {data['trace_correlation_id']!r}, not {cid!r}"
                )
            if mode == "rl":
                problems = validate_rollout_response_for_rl(data, warn_only=True)
                if problems:
                    raise CheckFailed("; ".join(problems[:3]))
            reward = data["metrics"].get("outcome_score", data["metrics"].get("mean_return"))
            return f"reward={reward}"

        await c.run("liveness", liveness)
        await c.run("health_with_key", health_with_key)
        await c.run("health_401_without_key", health_without_key)
        await c.run("no_key_material_in_401", no_key_material)
        await c.run("info_shape", info_shape)
        await c.run("task_info_taskset", taskset)
        await c.run("task_info_seeds", task_info_seeds)
        await c.run("task_info_deterministic", determinism)
        await c.run("rollout_eval", lambda: rollout("eval"))
        await c.run("rollout_rl_cid_rules", lambda: rollout("rl"))
    return report
