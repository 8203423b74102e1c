"""Calling an OpenAI-compatible chat-completions endpoint from an executor.

Any failure of the endpoint (unreachable, timed out, non-2xx, unreadable answer) is an
`InferenceError`, an infrastructure error: the framework reports it apart from task rewards.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any

import httpx

from .errors import InfrastructureError

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"


class InferenceError(InfrastructureError):
    """The inference endpoint failed; `kind` says how (unreachable, timeout, http_status...)."""


def inference_api_key(policy_config: Mapping[str, Any]) -> str | None:
    """The vendor key named by `policy.config.api_key_env` (default `OPENAI_API_KEY`)."""
    name = policy_config.get("api_key_env") or DEFAULT_API_KEY_ENV
    return os.environ.get(str(name)) or None


class SharedHttpClient:
    """One pooled `httpx.AsyncClient` per event loop, opened on first use, closed on shutdown."""

    def __init__(self, timeout: float = 60.0) -> None:
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop or self._client.is_closed:
            limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
            self._client = httpx.AsyncClient(timeout=self._timeout, limits=limits)
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = None


async def chat_completion(
    client: httpx.AsyncClient,
    url: str,
    payload: Mapping[str, Any],
    *,
    api_key: str | None = None,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """POST a chat-completions payload and answer the decoded JSON response."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = await client.post(url, json=dict(payload), headers=headers, timeout=timeout)
    except httpx.TimeoutException as exc:
        raise InferenceError(
            "inference_timeout", f"inference endpoint did not answer within {timeout:g} s"
        ) from exc
    except httpx.TransportError as exc:
        raise InferenceError(
            "inference_unreachable", f"inference endpoint unreachable: {type(exc).__name__}"
        ) from exc
    if response.status_code >= 400:
        raise InferenceError(
            "inference_http_error",
            f"inference endpoint answered HTTP {response.status_code}",
            status=response.status_code,
        )
    try:
        data = response.json()
        data["choices"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise InferenceError(
            "inference_bad_response", "inference endpoint answered something not a chat completion"
        ) from exc
    return data
