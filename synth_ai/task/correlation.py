"""The correlation-id rule (DESIGN.md 3.4), applied by the framework to every rollout.

Trainers join rollouts to the inference calls they made by a correlation id carried as the
`cid` query parameter of the inference URL. The id is taken from
`policy.config.trace_correlation_id`, else from the inference URL's `cid`/`trace_correlation_id`/
`trace` query parameter, else from the request's `trace_correlation_id`/`run_id`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:
    from .contracts import RolloutResponse

CID_PARAM = "cid"
URL_CID_PARAMS = ("cid", "trace_correlation_id", "trace")
INFERENCE_URL_KEYS = ("inference_url", "api_base", "base_url")
MAX_URL_CHARS = 8192
"""Longer than any real endpoint; well under what httpx refuses (64 KiB)."""
_VERSION_SEGMENT = re.compile(r"/v\d+$")
_MISPLACED_PATH = re.compile(r"^(?P<query>[^/]*)(?P<path>/(?:v\d+/)?chat/completions)$")


def policy_inference_url(policy_config: Mapping[str, Any]) -> str | None:
    """The inference URL a policy config names, under any of its accepted keys."""
    for key in INFERENCE_URL_KEYS:
        value = policy_config.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def normalize_inference_url(url: str) -> str:
    """Point an OpenAI-compatible base URL at its chat-completions route, keeping the query.

    `http://h:8000` and `http://h:8000/v1` both become `http://h:8000/v1/chat/completions`; a URL
    already ending in `/chat/completions` is kept. A query that was glued in front of the path
    (`http://h?cid=x/v1/chat/completions`, a mistake older clients made) is put back after it.
    """
    url = url.strip()
    if len(url) > MAX_URL_CHARS:
        raise ValueError(f"inference URL is longer than {MAX_URL_CHARS} characters")
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"inference URL needs a scheme and a host: {url!r}")
    path, query = parts.path, parts.query
    if misplaced := _MISPLACED_PATH.match(query):
        query = misplaced["query"]
        path = path.rstrip("/") + misplaced["path"]
    path = path.rstrip("/")
    if not path.endswith("/chat/completions"):
        path += "/chat/completions" if _VERSION_SEGMENT.search(path) else "/v1/chat/completions"
    normalized = urlunsplit((parts.scheme, parts.netloc, path, query, parts.fragment))
    check_callable(normalized)
    return normalized


def check_callable(url: str) -> None:
    """Raise ValueError unless an HTTP client can call `url`: http(s), a host, a port that
    parses and is in range. Checked here, at the edge, so the caller hears a 422 rather than
    an executor failing on it later."""
    import httpx  # here: an app whose rollouts name no inference URL never loads it

    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("inference URL must be http:// or https://")
    try:
        parts.port  # noqa: B018  (raises for a port that is not a number in range)
        host = httpx.URL(url).host
    except (ValueError, httpx.InvalidURL) as exc:
        raise ValueError(f"inference URL is malformed: {exc}"[:200]) from None
    if not host:
        raise ValueError("inference URL has no host")


def url_correlation_id(url: str | None) -> str | None:
    """The correlation id carried in an inference URL's query, if any."""
    if not url:
        return None
    query = urlsplit(url).query
    if misplaced := _MISPLACED_PATH.match(query):
        query = misplaced["query"]  # what `normalize_inference_url` keeps of it
    params = dict(parse_qsl(query, keep_blank_values=True))
    for name in URL_CID_PARAMS:
        if params.get(name):
            return params[name]
    return None


def extract_trace_correlation_id(
    policy_config: Mapping[str, Any] | None = None,
    inference_url: str | None = None,
    fallback: str | None = None,
) -> str | None:
    """Apply the cid rule: policy config, then the inference URL's query, then the fallback."""
    policy_config = policy_config or {}
    from_policy = policy_config.get("trace_correlation_id")
    if isinstance(from_policy, str) and from_policy:
        return from_policy
    url = inference_url if inference_url is not None else policy_inference_url(policy_config)
    return url_correlation_id(url) or fallback


def stamp_inference_url(url: str, correlation_id: str) -> str:
    """Set `cid=<correlation_id>` on a URL, keeping every other query parameter in order."""
    parts = urlsplit(url)
    params = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != CID_PARAM]
    params.append((CID_PARAM, correlation_id))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(params), parts.fragment))


def apply_correlation(
    response: RolloutResponse, run_id: str | None, cid: str, inference_url: str | None
) -> RolloutResponse:
    """Enforce the cid rule on whatever the executor answered, in place: `run_id` (the
    request's, where the answer has none), `cid` and the stamped `inference_url` (the
    request's; else the answer's own, stamped here) on the answer and every trajectory."""
    metadata = response.pipeline_metadata
    url = inference_url or metadata.get("inference_url") or response.inference_url
    if url:
        url = stamp_inference_url(url, cid)
    # a field already right is left alone: a model's assignment costs ~5x a comparison
    if not response.run_id:
        response.run_id = run_id
    if response.trace_correlation_id != cid:
        response.trace_correlation_id = cid
    if response.inference_url != url:
        response.inference_url = url
    metadata["run_id"] = response.run_id
    metadata["trace_correlation_id"] = cid
    metadata["inference_url"] = url
    for trajectory in response.trajectories:
        if trajectory.trace_correlation_id != cid:
            trajectory.trace_correlation_id = cid
        if not url:
            continue
        trajectory.inference_url = url
        for step in trajectory.steps:
            meta = step.info.get("meta")
            if not isinstance(meta, dict):
                step.info["meta"] = {"inference_url": url}
            elif meta.get("inference_url") != url:
                # a copy: the executor may share one meta dict between steps or rollouts
                step.info["meta"] = {**meta, "inference_url": url}
    return response
