"""The probes `synth-ai check` sends (DESIGN.md 3): each answers a one-line detail, or raises
`CheckFailed` (the rule is broken), `CheckSkipped` (it could not be checked here) or
`CannotCheck` (nothing more can be checked: nothing answers, it is not a task app, or the key
is refused).

Answers are described by status, error code and content type, never by pasting a body: a
proxy's HTML page must not end up in a report.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import ValidationError

from synth_ai.offline_policy.tally import Count, count_unanswered
from synth_ai.tracing_v3.sft import CHECK_PURPOSE

from .answers import error_from_response, excerpt
from .auth import expected_prefix
from .contracts import ErrorEnvelope, RolloutResponse, TaskInfo, every_generation
from .correlation import stamp_inference_url, url_correlation_id
from .older_generation import KEYLESS, OLDER, with_step_info
from .outcome import NO_POLICY, result_from_answer, result_from_error
from .validators import validate_rollout_response_for_rl

RESPONSE_FIELDS = ("run_id", "trace_correlation_id", "trajectories", "metrics", "pipeline_metadata")
TASK_INFO_FIELDS = ("task", "environment", "dataset", "rubric", "inference", "limits")
INFO_FIELDS = ("service", "dataset", "inference", "limits", "contract_version")
REFUSED = (401, 403)
MALFORMED_JSON = b'{"run_id": "check-malformed", "env": {'


class CheckFailed(Exception):
    """The app breaks this rule; the message says how. Not `required`: shown as a warning,
    for a fault of the framework generation the app is built on rather than of its code."""

    def __init__(self, message: str, *, required: bool = True) -> None:
        super().__init__(message)
        self.required = required


GENERATION_LEAK = re.compile(r'"(?:allowed|got)_first15"\s*:\s*\[[^\]]*\]')
"""The fields 0.2.x frameworks add to their key refusals: the first 15 characters of the valid
keys and of the presented ones."""


class CheckSkipped(Exception):
    """This rule could not be checked against this app; the message says why."""


class CannotCheck(Exception):
    """No further check can run; the message is the one line `check` prints."""


def one_line(text: str, limit: int = 160) -> str:
    return " ".join(text.split())[:limit]


def describe(response: httpx.Response) -> str:
    """`404 not_found: ...` for an answer in the error envelope, the status and a one-line
    excerpt for other JSON, else the status and content type only."""
    kind = response.headers.get("content-type", "no content type").split(";")[0].strip()
    error = error_from_response(response)
    if not error.code.startswith("http_"):
        return f"{response.status_code} {one_line(error.code, 60)}: {one_line(error.message)}"
    if kind.endswith("json"):
        return f"{response.status_code} {excerpt(response)[:160]}"
    return f"{response.status_code} ({kind})"


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The body when the answer is a 200 JSON object, else None."""
    if response.status_code != 200:
        return None
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def require(data: Any, fields: Sequence[str], where: str) -> None:
    if not isinstance(data, dict):
        raise CheckFailed(f"{where} is not a JSON object")
    missing = [f for f in fields if f not in data]
    if missing:
        raise CheckFailed(f"{where} lacks {', '.join(missing)}")


MEANINGFUL_RUN = 8
"""Characters of a key in a row that say something about it: shorter runs are found in common
words (a key starting `auth` would match `authentication`)."""


def leaks(text: str, secret: str, size: int = MEANINGFUL_RUN) -> bool:
    """Whether `text` holds a meaningful part of `secret`: a run of `size` of its characters
    (all of it when shorter), or its prefix as the app shows it (`/health`'s hint)."""
    if not secret:
        return False
    size = min(size, len(secret))
    if len(secret) > 4 and str(expected_prefix([secret])) in text:
        return True
    return any(secret[i : i + size] in text for i in range(len(secret) - size + 1))


@dataclass
class Probe:
    """What the probes share: the client, the key, the policy, and the rollout answers that
    later probes look at again."""

    http: httpx.AsyncClient
    url: str
    key: str
    seeds: Sequence[int]
    inference_url: str | None = None
    model: str | None = None
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    unanswered: Count | None = None
    """What a stand-in policy tallied for the rollouts: None when the policy is not one."""
    older: bool = False
    """An app of an older generation, judged by its contract (`older_generation.py`)."""

    @property
    def auth(self) -> dict[str, str]:
        return {"X-API-Key": self.key, "Authorization": f"Bearer {self.key}"}

    def refused(self, response: httpx.Response, what: str) -> None:
        """A key refused on an authenticated call stops the run: every later probe would
        only say the same. The error code is named, not the message: it might echo the key."""
        if response.status_code in REFUSED:
            code = one_line(error_from_response(response).code, 60)
            named = "" if code.startswith("http_") else f" {code}"
            raise CannotCheck(f"the key is refused: {what} answered {response.status_code}{named}")

    async def get_json(self, path: str, **params: Any) -> Any:
        response = await self.http.get(path, headers=self.auth, params=params)
        self.refused(response, f"GET {path}")
        if response.status_code != 200:
            raise CheckFailed(f"GET {path} answered {describe(response)}")
        try:
            return response.json()
        except ValueError:
            raise CheckFailed(f"GET {path} answered {describe(response)}, not JSON") from None


async def liveness(p: Probe) -> str:
    response = await p.http.get("/")
    data = json_object(response)
    if data is None:
        raise CheckFailed(f"GET / answered {describe(response)}, not a JSON object")
    require(data, ("status",), "GET /")
    return f"status={data['status']}"


async def health_with_key(p: Probe) -> str:
    data = await p.get_json("/health")
    if not isinstance(data, dict) or data.get("healthy") is not True:
        raise CheckFailed(f"healthy is {data.get('healthy') if isinstance(data, dict) else data!r}")
    return "healthy"


async def health_without_key(p: Probe) -> str:
    response = await p.http.get("/health")
    if p.older and response.status_code in KEYLESS:
        return f"{response.status_code} without a key ({OLDER})"
    if response.status_code != 401:
        raise CheckFailed(f"GET /health without a key answered {describe(response)}, not 401")
    return "401 without a key"


async def no_key_material(p: Probe) -> str:
    """Only refusals (any 4xx) are inspected (a 200 /health may show the key's first 4
    characters); skipped when there was none: an app without auth proves nothing here. An
    older generation's own `allowed_first15` and `got_first15` are a warning that blames the
    framework; any other key material in the same answer still fails."""
    wrong = f"wrong-{uuid.uuid4().hex}"
    statuses, framework_leak = [], 0
    for headers in ({}, {"X-API-Key": wrong}, {"Authorization": f"Bearer {wrong}"}):
        response = await p.http.get("/health", headers=headers)
        statuses.append(response.status_code)
        if not 400 <= response.status_code < 500:  # a refusal, whatever its status
            continue
        body = response.text + " ".join(f"{k}: {v}" for k, v in response.headers.items())
        if p.older and GENERATION_LEAK.search(body):
            body, framework_leak = GENERATION_LEAK.sub("", body), response.status_code
        if leaks(body, p.key):
            raise CheckFailed(f"a {response.status_code} answer contains part of the valid key")
        if headers and leaks(body, wrong):
            raise CheckFailed(f"a {response.status_code} answer echoes the presented key")
    if not any(400 <= status < 500 for status in statuses):
        answered = ", ".join(str(s) for s in sorted(set(statuses)))
        raise CheckSkipped(f"GET /health without a valid key was never refused ({answered})")
    if framework_leak:
        raise CheckFailed(
            f"a {framework_leak} answer shows the first 15 characters of the valid key and "
            "of the presented one (`allowed_first15`, `got_first15`: added by the synth-ai "
            "0.2.x framework, not by this app's code; a current synth-ai refuses without them)",
            required=False,
        )
    return "no key material in the refusals"


async def info_shape(p: Probe) -> str:
    data = await p.get_json("/info")
    if p.older:
        require(data, [f for f in INFO_FIELDS if f != "contract_version"], "/info")
        return OLDER
    require(data, INFO_FIELDS, "/info")
    return f"contract_version={data['contract_version']}"


async def taskset(p: Probe) -> str:
    data = await p.get_json("/task_info")
    if not isinstance(data, dict) or not data:
        raise CheckFailed("/task_info without seeds is not a non-empty object")
    return "taskset described"


async def task_info_seeds(p: Probe) -> str:
    for seed in p.seeds:
        data = await p.get_json("/task_info", seed=seed)
        require(data, TASK_INFO_FIELDS, f"/task_info?seed={seed}")
        if p.older:  # its fields' shapes are its generation's
            continue
        try:
            TaskInfo.model_validate(data)
        except ValidationError as exc:
            raise CheckFailed(f"/task_info?seed={seed}: {exc.errors()[0]['msg']}") from None
    return f"{len(p.seeds)} seeds" + (f" ({OLDER})" if p.older else "")


async def determinism(p: Probe) -> str:
    seed = p.seeds[0]
    first = await p.get_json("/task_info", seed=seed)
    second = await p.get_json("/task_info", seed=seed)
    if first != second:
        raise CheckFailed(f"/task_info?seed={seed} differs between two calls")
    return f"seed {seed} stable"


def rollout_body(p: Probe, mode: str, cid: str) -> dict[str, Any]:
    """Marked `record.purpose: check`, so the app can keep this probe out of training data.
    The cid rides on the inference URL too, as trainers send it (0.2.24's apps read it there)."""
    seed = p.seeds[0]
    url = p.inference_url and stamp_inference_url(p.inference_url, cid)
    return every_generation(
        {
            "run_id": cid,
            "trace_correlation_id": cid,
            "mode": mode,
            "env": {"seed": seed, "config": {"seed": seed}},
            "policy": {"config": {"inference_url": url, "model": p.model or "policy"}},
            "record": {
                "return_trace": True,
                "trace_format": "structured",
                "purpose": CHECK_PURPOSE,
            },
        }
    )


async def rollout(p: Probe, mode: str) -> str:
    """One rollout; an answer that reports an infrastructure error (classified as `eval`
    classifies it) fails: nothing of the app's rollout was checked."""
    if not p.inference_url:
        raise CheckFailed(NO_POLICY)
    cid = f"check-{mode}-{uuid.uuid4().hex[:10]}"
    seed = p.seeds[0]
    started = time.perf_counter()
    response = await p.http.post("/rollout", json=rollout_body(p, mode, cid), headers=p.auth)
    latency = time.perf_counter() - started
    p.refused(response, "POST /rollout")
    if response.status_code != 200:
        failed = result_from_error(seed, cid, latency, error_from_response(response))
        infra = ", an infrastructure error" if failed.status == "infra_error" else ""
        raise CheckFailed(f"POST /rollout ({mode}) answered {describe(response)}{infra}")
    data = json_object(response)
    if data is None:
        raise CheckFailed(f"POST /rollout ({mode}) answered {describe(response)}, not an object")
    require(data, RESPONSE_FIELDS, f"rollout response ({mode})")
    carried_by = correlation(data, cid)
    try:
        parsed = RolloutResponse.model_validate(with_step_info(data) if p.older else data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise CheckFailed(f"rollout response ({mode}) {where}: {error['msg']}") from None
    result = result_from_answer(seed, cid, latency, parsed)
    if result.status == "infra_error":
        raise CheckFailed(
            f"the rollout ({mode}) answered an infrastructure error, not a result: "
            f"{result.error_kind}: {result.error}"
        )
    await unanswerable(p, mode, cid)
    p.answers[mode] = data
    if mode == "rl" and carried_by == "trace_correlation_id":
        problems = validate_rollout_response_for_rl(data, warn_only=True)
        if problems:
            raise CheckFailed("; ".join(problems[:3]))
    if carried_by != "trace_correlation_id":
        return f"reward={result.reward}; cid from the trajectories' inference_url (0.2.24)"
    return f"reward={result.reward}"


def correlation(data: dict[str, Any], cid: str) -> str:
    """Where the answer carries the rollout's cid: `trace_correlation_id`, or, where that is
    null (optional up to 0.2.24, whose trainers read it there), the `cid` of every trajectory's
    `inference_url`. Anything else is a `CheckFailed` naming what was found."""
    given = data["trace_correlation_id"]
    if given is not None:
        if given != cid:
            raise CheckFailed(f"trace_correlation_id is {given!r}, not {cid!r}")
        return "trace_correlation_id"
    trajectories = data.get("trajectories")
    urls = [t.get("inference_url") for t in trajectories or [] if isinstance(t, dict)]
    found = [url_correlation_id(u) if isinstance(u, str) else None for u in urls]
    if found and all(f == cid for f in found):
        return "inference_url"
    raise CheckFailed(
        f"trace_correlation_id is None and the trajectories' inference_url carry cid "
        f"{found!r}, not {cid!r}: a trainer cannot join this rollout to its inference calls"
    )


async def unanswerable(p: Probe, mode: str, cid: str) -> None:
    """A rollout whose every policy call the stand-in could not answer checked nothing of the
    app: it fails, saying so. Counts add up in `p.unanswered` for the report."""
    count = await count_unanswered(p.inference_url, [cid])
    if count is None:
        return
    p.unanswered = count if p.unanswered is None else p.unanswered + count
    if count.calls and count.unanswered == count.calls:
        raise CheckFailed(
            f"the rollout ({mode}) made {count.calls} policy call(s) and the stand-in policy "
            "could not answer any: nothing of the app's rollout was checked (script an answer)"
        )


async def reward_names(p: Probe) -> str:
    """`outcome_reward` (new) and `outcome_score` (legacy) carry the same value; an app of an
    older generation that sends only one is skipped, not failed."""
    if not p.answers:
        raise CheckSkipped("no rollout answered a result to look at")
    compared = []
    for mode, data in p.answers.items():
        metrics = data.get("metrics")
        score = metrics.get("outcome_score") if isinstance(metrics, dict) else None
        reward = metrics.get("outcome_reward") if isinstance(metrics, dict) else None
        if score is None or reward is None:
            continue
        if score != reward:
            raise CheckFailed(f"({mode}) outcome_reward is {reward!r}, outcome_score {score!r}")
        compared.append(mode)
    if not compared:
        raise CheckSkipped("the answers lack outcome_reward or outcome_score (older generation)")
    return f"equal ({', '.join(compared)})"


def in_envelope(response: httpx.Response, what: str, older: bool = False) -> str:
    """The answer's error code when its body is the error envelope (DESIGN.md 3.3); an older
    generation answers FastAPI's `{"detail": ...}` instead."""
    if older:
        return f"({OLDER}: its own error body)"
    try:
        return ErrorEnvelope.model_validate_json(response.content).detail.error.code
    except ValidationError:
        raise CheckFailed(
            f"{what} answered {describe(response)}, not in the error envelope"
        ) from None


async def malformed_json(p: Probe) -> str:
    what = "malformed JSON to POST /rollout"
    # an app that crashes on it may drop the connection: do not leave it for the next probe
    headers = {**p.auth, "Content-Type": "application/json", "Connection": "close"}
    response = await p.http.post("/rollout", content=MALFORMED_JSON, headers=headers)
    p.refused(response, "POST /rollout")
    if not 400 <= response.status_code < 500:
        raise CheckFailed(f"{what} answered {describe(response)}, not a 4xx")
    return f"{response.status_code} {in_envelope(response, what, p.older)}"


async def unknown_route(p: Probe) -> str:
    path = f"/no-such-route-{uuid.uuid4().hex[:8]}"
    response = await p.http.get(path, headers=p.auth)
    if response.status_code != 404:
        raise CheckFailed(f"GET {path} answered {describe(response)}, not 404")
    return f"404 {in_envelope(response, f'GET {path}', p.older)}"


PROBES: tuple[tuple[str, Callable[[Probe], Awaitable[str]]], ...] = (
    ("liveness", liveness),
    ("health_with_key", health_with_key),
    ("health_401_without_key", health_without_key),
    ("no_key_material_in_401", no_key_material),
    ("info_shape", info_shape),
    ("task_info_taskset", taskset),
    ("task_info_seeds", task_info_seeds),
    ("task_info_deterministic", determinism),
    ("rollout_eval", lambda p: rollout(p, "eval")),
    ("rollout_rl_cid_rules", lambda p: rollout(p, "rl")),
    ("rollout_reward_names_agree", reward_names),
    ("rollout_malformed_json_4xx", malformed_json),
    ("unknown_route_404", unknown_route),
)
"""Every probe in the order it runs; later rollout probes read `Probe.answers`."""
