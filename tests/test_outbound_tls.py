"""Outbound TLS is set up only when a policy is https, off the event loop, once, and verifies.

Real loopback servers: the offline policy over http, and over https with a certificate made
here by the `openssl` CLI, trusted only through `SSL_CERT_FILE`; a stand-in HTTP proxy.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from synth_ai.offline_policy import create_offline_policy_app
from synth_ai.task import InferenceError, chat_completion, serve_in_background
from synth_ai.task.inference import SharedHttpClient
from synth_ai.task.outbound import OutboundTransport
from synth_ai.task.serving import Server, listening_socket, uvicorn_settings

PAYLOAD = {"model": "offline-policy", "messages": [{"role": "user", "content": "What is 2+3?"}]}
OPENSSL = shutil.which("openssl")


@pytest.fixture
def ca_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every time an SSL context loads trust anchors (a CA bundle, a directory, the defaults)."""
    calls: list[str] = []
    for name in ("load_verify_locations", "load_default_certs", "set_default_verify_paths"):
        original = getattr(ssl.SSLContext, name)

        def counted(
            self: ssl.SSLContext, *args: Any, _o: Any = original, _n: str = name, **kwargs: Any
        ) -> Any:
            calls.append(_n)
            return _o(self, *args, **kwargs)

        monkeypatch.setattr(ssl.SSLContext, name, counted)
    return calls


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    if OPENSSL is None:
        pytest.skip("the openssl CLI is not installed: no certificate for the https server")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *(OPENSSL, "req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@contextmanager
def serve_https(cert: Path, key: Path) -> Iterator[str]:
    """`serve_in_background`'s recipe with TLS: the offline policy at an https URL."""
    sock = listening_socket()
    config = uvicorn.Config(
        create_offline_policy_app(error_rate=0.0),
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=5,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        **uvicorn_settings(),
    )
    server = Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


@pytest.fixture(scope="module")
def https_policy_url(certificate: tuple[Path, Path]) -> Iterator[str]:
    with serve_https(*certificate) as url:
        yield url


@pytest.fixture
def no_env_trust(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust only what a test sets: this machine may point SSL_CERT_* at its own bundle."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


def answer_of(data: dict[str, Any]) -> str:
    return str(data["choices"][0]["message"]["content"])


def test_a_plain_http_policy_never_loads_a_ca_bundle(
    offline_policy_url: str, ca_loads: list[str]
) -> None:
    async def call() -> dict[str, Any]:
        shared = SharedHttpClient()
        try:
            url = f"{offline_policy_url}/v1/chat/completions"
            return await chat_completion(shared.get(), url, PAYLOAD)
        finally:
            await shared.aclose()

    assert "5" in answer_of(asyncio.run(call()))
    assert ca_loads == []


def test_https_verifies_and_honours_ssl_cert_file(
    https_policy_url: str,
    certificate: tuple[Path, Path],
    no_env_trust: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"{https_policy_url}/v1/chat/completions"

    async def call() -> dict[str, Any]:
        shared = SharedHttpClient()
        try:
            return await chat_completion(shared.get(), url, PAYLOAD)
        finally:
            await shared.aclose()

    with pytest.raises(InferenceError) as untrusted:
        asyncio.run(call())
    assert untrusted.value.kind == "inference_unreachable"
    causes = []
    cause: BaseException | None = untrusted.value
    while cause is not None:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    assert any(isinstance(c, ssl.SSLCertVerificationError) for c in causes), causes

    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    assert "5" in answer_of(asyncio.run(call()))


def test_concurrent_first_https_requests_build_tls_once_off_the_loop(
    https_policy_url: str,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The TLS build is held until every request is inside the transport, so all of them
    find it unbuilt: without the lock each would build its own."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    concurrent = 8
    release = threading.Event()
    builders: list[int] = []
    loop_thread = threading.get_ident()

    class CountedTransport(httpx.AsyncHTTPTransport):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if kwargs.get("verify", True) is not False:
                builders.append(threading.get_ident())
                if builders[-1] != loop_thread:  # waiting on the loop would stop it: fail below
                    assert release.wait(timeout=30), "the requests never all reached it"
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(httpx, "AsyncHTTPTransport", CountedTransport)
    entered = 0
    original = OutboundTransport.handle_async_request

    async def main() -> list[dict[str, Any]]:
        all_in = asyncio.Event()

        async def counted(self: OutboundTransport, request: httpx.Request) -> httpx.Response:
            nonlocal entered
            entered += 1
            if entered == concurrent:
                all_in.set()
            return await original(self, request)

        monkeypatch.setattr(OutboundTransport, "handle_async_request", counted)
        shared = SharedHttpClient()
        url = f"{https_policy_url}/v1/chat/completions"
        try:
            calls = [
                asyncio.create_task(chat_completion(shared.get(), url, PAYLOAD))
                for _ in range(concurrent)
            ]
            await asyncio.wait_for(all_in.wait(), timeout=30)
            release.set()
            return await asyncio.gather(*calls)
        finally:
            release.set()
            await shared.aclose()

    answers = asyncio.run(main())
    assert all("5" in answer_of(a) for a in answers)
    assert len(builders) == 1
    assert builders[0] != loop_thread


def test_an_env_proxy_still_carries_the_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx ignores env proxies when given a transport: with one set, httpx's own are kept."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    hosts: list[str] = []

    async def proxy(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        hosts.append(dict(scope["headers"])[b"host"].decode())
        body = b'{"choices": [{"message": {"role": "assistant", "content": "proxied"}}]}'
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def call() -> dict[str, Any]:
        shared = SharedHttpClient()
        try:
            url = "http://policy.invalid/v1/chat/completions"  # .invalid never resolves
            return await chat_completion(shared.get(), url, PAYLOAD)
        finally:
            await shared.aclose()

    with serve_in_background(proxy) as proxy_url:
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        assert answer_of(asyncio.run(call())) == "proxied"
    assert hosts == ["policy.invalid"]
