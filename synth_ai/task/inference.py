"""Calling an OpenAI-compatible chat-completions endpoint from an executor.

Any failure of the endpoint (unreachable, timed out, non-2xx, unreadable answer) is an
`InferenceError`, an infrastructure error: the framework reports it apart from task rewards.
Server-held keys ride along only where the author's credential map says (`credentials.py`).
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Mapping
from typing import Any

import httpx

from .credentials import DEFAULT_CREDENTIALS, CredentialMap, DestinationAuth
from .errors import InfrastructureError


class InferenceError(InfrastructureError):
    """The inference endpoint failed; `kind` says how (unreachable, timeout, http_status...)."""


class OutboundTransport(httpx.AsyncBaseTransport):
    """Plain `http://` without TLS material; the TLS transport built on the first `https://`.

    httpx's default transport builds an SSL context and parses the CA bundle when it is
    constructed (~45 ms measured), on the event loop, before the first rollout, even when every
    policy is a plain-http local server. Here that cost is paid only on the first https request,
    in a worker thread, once. Verification is httpx's default (`SSL_CERT_FILE`/`SSL_CERT_DIR`
    honoured), read when that first https request is made.
    """

    def __init__(self, limits: httpx.Limits) -> None:
        self._limits = limits
        # http:// never negotiates TLS, so this pool's SSL context is never used: verify=False
        # only skips loading the CA bundle, it trusts nothing.
        self._plain = httpx.AsyncHTTPTransport(verify=False, limits=limits)
        self._tls: httpx.AsyncHTTPTransport | None = None
        self._tls_lock = asyncio.Lock()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme == "http":  # only exactly http: https, wss... all need TLS
            return await self._plain.handle_async_request(request)
        return await (await self._tls_transport()).handle_async_request(request)

    async def _tls_transport(self) -> httpx.AsyncHTTPTransport:
        if self._tls is None:
            async with self._tls_lock:
                if self._tls is None:
                    self._tls = await asyncio.to_thread(
                        httpx.AsyncHTTPTransport, limits=self._limits
                    )
        return self._tls

    async def aclose(self) -> None:
        await self._plain.aclose()
        async with self._tls_lock:  # a TLS transport still being built is closed too
            if self._tls is not None:
                await self._tls.aclose()


def env_proxies() -> bool:
    """Whether the environment names a proxy (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY), as httpx
    reads it. httpx drops its env proxy mounts when given a `transport=`, so with a proxy set
    the client keeps httpx's own transports (and their eager TLS setup)."""
    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))


class SharedHttpClient:
    """One pooled `httpx.AsyncClient` per event loop, opened on first use, closed on shutdown.

    Its requests carry a server key only to destinations bound in `credentials`
    (`TaskAppConfig.credentials`). `transport` replaces the network (tests, custom stacks);
    without it, `OutboundTransport` defers TLS setup to the first https request (unless the
    environment names a proxy, see `env_proxies`).
    """

    def __init__(
        self,
        timeout: float = 60.0,
        *,
        credentials: Mapping[str, str] = DEFAULT_CREDENTIALS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._timeout = timeout
        self._auth = DestinationAuth(CredentialMap(credentials))
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop or self._client.is_closed:
            limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
            transport = self._transport
            if transport is None and not env_proxies():
                transport = OutboundTransport(limits)
            self._client = httpx.AsyncClient(
                timeout=self._timeout, limits=limits, auth=self._auth, transport=transport
            )
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
    """POST a chat-completions payload and answer the decoded JSON response.

    `api_key` is for a key the author chose (or a caller sent for its own endpoint); without
    it, the client's credential map decides whether a server key goes along.
    """
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
