"""The `/proxy/...` routes of 0.2.24's `ProxyConfig`.

They forward a chat-completions body to the configured vendor URL through the app's shared
client, with the key the credential rule (`credentials.py`) binds to that URL: the author's
`credentials`, plus `openai_url` -> `OPENAI_API_KEY` and `groq_url` -> `GROQ_API_KEY` (naming
a URL in `ProxyConfig` is the author binding it). The key is read from the environment per
request (dev fallbacks as in 0.2.24, `vendors.py`); a request never names it, and a vendor
whose key is unset is a 503, as in 0.2.24.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .credentials import CredentialMap
from .errors import TaskAppError, http_exception, invalid_request
from .json_body import json_body
from .proxy import (
    ProxyConfig,
    inject_system_hint,
    prepare_for_groq,
    prepare_for_openai,
    synthesize_tool_call_if_missing,
)
from .vendors import normalize_vendor_keys

if TYPE_CHECKING:
    from .inference import SharedHttpClient

logger = logging.getLogger("synth_ai.task.proxy")


@dataclass(frozen=True, slots=True)
class _Vendor:
    name: str
    path: str
    url: str
    prepare: Any
    env_name: str


class ProxyRoutes:
    """The enabled `/proxy/...` routes of one app, forwarding through its shared client."""

    def __init__(
        self, config: ProxyConfig, credentials: Mapping[str, str], http: SharedHttpClient
    ) -> None:
        self.config = config
        self.http = http
        openai = _Vendor(
            "openai",
            "/proxy/v1/chat/completions",
            config.openai_url,
            prepare_for_openai,
            "OPENAI_API_KEY",
        )
        groq = _Vendor(
            "groq",
            "/proxy/groq/v1/chat/completions",
            config.groq_url.rstrip("/"),
            prepare_for_groq,
            "GROQ_API_KEY",
        )
        self.vendors = [
            vendor
            for vendor, enabled in ((openai, config.enable_openai), (groq, config.enable_groq))
            if enabled
        ]
        # one map per vendor (both may name one URL); a malformed URL fails here, naming it
        self.credentials = {
            vendor.name: CredentialMap({**credentials, vendor.url: vendor.env_name})
            for vendor in self.vendors
        }

    def routes(self) -> list[Route]:
        return [
            Route(vendor.path, self._endpoint(vendor), methods=["POST"]) for vendor in self.vendors
        ]

    def _endpoint(self, vendor: _Vendor) -> Any:
        async def forward(request: Request) -> Response:
            return await self.forward(vendor, request)

        return forward

    async def forward(self, vendor: _Vendor, request: Request) -> Response:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise invalid_request(
                "The body is a chat-completions request: a JSON object.",
                loc=["body"],
                msg="not an object",
                type="dict_type",
            )
        normalize_vendor_keys()
        credentials = self.credentials[vendor.name]
        key = credentials.key_for(vendor.url)
        if key is None:
            variable = credentials.env_name_for(vendor.url) or vendor.env_name
            raise http_exception(
                503, f"missing_{vendor.name}_api_key", f"{variable} is not configured"
            )
        model = body.get("model") if isinstance(body.get("model"), str) else None
        payload = inject_system_hint(vendor.prepare(model, body), self.config.system_hint or "")
        import httpx

        try:
            answer = await self.http.get().post(
                vendor.url, json=payload, headers={"Authorization": f"Bearer {key}"}, timeout=600.0
            )
        except httpx.HTTPError as exc:
            logger.warning("proxy %s: %s failed: %s", vendor.name, vendor.url, type(exc).__name__)
            raise TaskAppError(
                502, "vendor_unreachable", f"The {vendor.name} endpoint could not be reached."
            ) from None
        data: Any
        try:
            data = answer.json()
        except ValueError:
            data = {"raw": answer.text[:10_000]}
        if answer.status_code >= 300:  # redirects are not followed: a key stays put
            code = "vendor_error"  # 0.2.24's codes, from the URL
            if vendor.url.startswith("https://api.openai.com"):
                code = "openai_error"
            elif "groq" in vendor.url:
                code = "groq_error"
            raise http_exception(
                answer.status_code,
                code,
                "Vendor proxy error",
                extra={"status": answer.status_code, "body": data},
            )
        return JSONResponse(synthesize_tool_call_if_missing(data))
