"""The outbound client's httpx parts: a transport that defers TLS set-up, and the auth that
attaches a server key where the credential map binds it.

`SharedHttpClient` (inference.py) imports this module when it makes its first client, so an app
that never calls out never loads httpx (about 14 ms of every server's start, measured in issue 15).
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Generator
from urllib.parse import urlsplit

import httpx

from .credentials import CredentialMap


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


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY; none
    for a NO_PROXY host), as httpx reads them, for a client that takes one proxy URL (aiohttp).
    Only an http(s) proxy is taken: any other would be spoken to as one, the call's key with
    it, and fail every call; `ValueError` (naming its scheme, never the URL) says so at once."""
    parts = urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    scheme = urlsplit(proxy).scheme if proxy else "http"
    if scheme not in ("http", "https"):
        raise ValueError(
            f"the environment's proxy for {parts.scheme} URLs is a {scheme or 'schemeless'} "
            "proxy; only http and https proxies are supported here"
        )
    return proxy


class DestinationAuth(httpx.Auth):
    """Adds `Authorization: Bearer <key>` to a request whose destination the map binds.

    A request that already carries Authorization keeps it (a caller's own key for its own
    endpoint). httpx runs an auth flow once per request, not per redirect, and drops
    Authorization on a redirect to another origin, so a key never follows a redirect away.
    """

    def __init__(self, credentials: CredentialMap) -> None:
        self.credentials = credentials

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if "authorization" not in request.headers:
            key = self.credentials.key_for(request.url)
            if key is not None:
                request.headers["Authorization"] = f"Bearer {key}"
        yield request
