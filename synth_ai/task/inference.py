"""Calling an OpenAI-compatible chat-completions endpoint from an executor.

Any failure of the endpoint (unreachable, timed out, non-2xx, unreadable answer) is an
`InferenceError`, an infrastructure error: the framework reports it apart from task rewards.
Server-held keys ride along only where the author's credential map says (`credentials.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .credentials import DEFAULT_CREDENTIALS, CredentialMap
from .errors import InfrastructureError

if TYPE_CHECKING:
    import httpx


class InferenceError(InfrastructureError):
    """The inference endpoint failed; `kind` says how (unreachable, timeout, http_status...)."""


class SharedHttpClient:
    """One pooled `httpx.AsyncClient` per event loop, opened on first use, closed on shutdown.

    Its requests carry a server key only to destinations bound in `credentials`
    (`TaskAppConfig.credentials`, checked here, at start-up). `transport` replaces the network
    (tests, custom stacks); without it, `outbound.OutboundTransport` defers TLS set-up to the
    first https request (unless the environment names a proxy). httpx is imported with the
    first client: an app that never calls out never loads it.
    """

    def __init__(
        self,
        timeout: float = 60.0,
        *,
        credentials: Mapping[str, str] = DEFAULT_CREDENTIALS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._timeout = timeout
        self._credentials = CredentialMap(credentials)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop or self._client.is_closed:
            import httpx

            from .outbound import DestinationAuth, OutboundTransport, env_proxies

            limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
            transport = self._transport
            if transport is None and not env_proxies():
                transport = OutboundTransport(limits)
            self._client = httpx.AsyncClient(
                timeout=self._timeout,
                limits=limits,
                auth=DestinationAuth(self._credentials),
                transport=transport,
            )
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = None


def shown(url: str) -> str:
    """The endpoint a message names: scheme, host, port and path; never the userinfo or the
    query (either may hold a credential)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


async def chat_completion(
    client: httpx.AsyncClient,
    url: str,
    payload: Mapping[str, Any],
    *,
    api_key: str | None = None,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """POST a chat-completions payload and answer the decoded JSON response.

    `api_key` is for a key the author chose (or a caller sent for its own endpoint); without
    it, the client's credential map decides whether a server key goes along.
    """
    import httpx  # loaded with the client already

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = await client.post(url, json=dict(payload), headers=headers, timeout=timeout)
    except httpx.TimeoutException as exc:
        raise InferenceError(
            "inference_timeout",
            f"inference endpoint {shown(url)} did not answer within {timeout:g} s",
        ) from exc
    except httpx.TransportError as exc:
        raise InferenceError(
            "inference_unreachable",
            f"inference endpoint {shown(url)} unreachable: {type(exc).__name__}",
        ) from exc
    if response.status_code >= 400:
        raise InferenceError(
            "inference_http_error",
            f"inference endpoint {shown(url)} answered HTTP {response.status_code}",
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
