"""The interceptor's client to the real policy endpoint: one aiohttp session per serving.

aiohttp, not the project's shared httpx client: the interceptor sits in every policy call of
every rollout, and a forwarded call cost 4.2M instructions through httpx against 0.55M through
aiohttp (callgrind, concurrency 16, issue 27; 1.6 ms and 0.14 ms of CPU).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from synth_ai.task.credentials import CredentialMap
from synth_ai.task.errors import TaskAppError
from synth_ai.task.outbound import env_proxy

if TYPE_CHECKING:
    import aiohttp

IDLE_S = 4.0
"""How long an idle connection to the policy is kept: less than servers keep theirs (uvicorn
and Node: 5 s), so the policy never closes one just as a call reuses it (a failed call is a
rollout scored 0)."""


class PolicyClient:
    """POSTs chat completions to one endpoint; the answer's bytes capped.

    The key follows the destination (`credentials`, read from the environment per call); no
    header of the app's request is sent, no redirect followed, no cookie kept between calls.
    The proxy is the environment's when the client is made. `start` and `aclose` run on the
    loop that serves the calls.
    """

    def __init__(
        self,
        url: str,
        credentials: Mapping[str, str],
        timeout_s: float,
        max_response_bytes: int,
    ) -> None:
        self.url = url
        self.key_variable = CredentialMap(credentials).env_name_for(url)
        self.timeout_s = timeout_s
        self.max_response_bytes = max_response_bytes
        self.proxy = env_proxy(url)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the session; aiohttp is imported off the loop (it builds its TLS context as it
        loads, tens of milliseconds)."""
        aiohttp = await asyncio.to_thread(importlib.import_module, "aiohttp")
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=IDLE_S),
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.key_variable, "").strip() if self.key_variable else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    async def post(self, payload: Any) -> tuple[int, str, bytes]:
        """The answer's status, content type and body (decoded, as the app reads it);
        `TaskAppError`, the interceptor's own answer, when there is none to give: unreachable
        (502), too slow (504, the whole call within `timeout_s`), too large (502), a redirect
        (502: the app's client could not follow it, as its `Location` is not passed on)."""
        import aiohttp

        if self._session is None:
            raise RuntimeError("the policy client is not started")
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        try:
            async with self._session.post(
                self.url,
                data=body.encode(),
                headers=self._headers(),
                allow_redirects=False,
                proxy=self.proxy,
            ) as answer:
                if 300 <= answer.status < 400:
                    raise TaskAppError(
                        502,
                        "upstream_redirect",
                        f"The policy endpoint answered a redirect (HTTP {answer.status}), and "
                        "the interceptor follows none: give it the URL the policy answers at.",
                    )
                chunks, size = [], 0
                async for chunk in answer.content.iter_any():
                    size += len(chunk)
                    if size > self.max_response_bytes:
                        raise TaskAppError(
                            502,
                            "upstream_too_large",
                            f"The policy's answer is larger than {self.max_response_bytes} bytes.",
                        )
                    chunks.append(chunk)
                content_type = answer.headers.get("Content-Type", "application/json")
                return answer.status, content_type, b"".join(chunks)
        except TimeoutError:
            raise TaskAppError(
                504, "upstream_timeout", "The policy endpoint did not answer in time."
            ) from None
        except aiohttp.ClientError as exc:
            raise TaskAppError(
                502,
                "upstream_unreachable",
                f"The policy endpoint is unreachable ({type(exc).__name__}).",
            ) from None
