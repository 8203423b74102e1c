"""The sign-in API the pages call: trade a login token or a key for a session, ask who is
signed in (and the session's CSRF token), sign out.

`POST /ui/api/signin` is public (it is how one gets in); the other two sit behind the server's
auth middleware, which accepts the session cookie as a principal (`TenantAuthMiddleware`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Scope

from synth_ai.task.attempts import record_failure
from synth_ai.task.auth import presented_from, screen
from synth_ai.task.errors import TaskAppError, invalid_request
from synth_ai.task.json_body import json_body

from .signin import LoginRefused, Session, SignIn, key_headers, same_origin

if TYPE_CHECKING:
    from synth_ai.jobs.tenants import Principal

Identify = Callable[[Headers], "Principal | None"]
"""Who a key names (the server's own rules: operator keys, tenant keys), None for nobody."""
PrincipalOf = Callable[[Scope], "Principal"]
"""Who the auth middleware let in."""

MAX_CREDENTIAL_CHARS = 4096


def _credential(body: Any, field: str) -> str | None:
    value = body.get(field) if isinstance(body, dict) else None
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_CREDENTIAL_CHARS
        or not value.isprintable()  # no control characters, no lone surrogates from \ud800
    ):
        raise invalid_request(
            f"{field} must be a non-empty string of printable characters.",
            loc=["body", field],
            msg="bad credential",
        )
    return value


class SignInRoutes:
    def __init__(self, signin: SignIn, identify: Identify, principal_of: PrincipalOf) -> None:
        self.signin = signin
        self.identify = identify
        self.principal_of = principal_of

    @property
    def public(self) -> list[BaseRoute]:
        return [Route("/ui/api/signin", self.sign_in, methods=["POST"])]

    @property
    def protected(self) -> list[BaseRoute]:
        return [
            Route("/ui/api/session", self.whoami, methods=["GET"]),
            Route("/ui/api/signout", self.sign_out, methods=["POST"]),
        ]

    def _answer(self, session: Session | None, tenant: str | None) -> dict[str, Any]:
        return {
            "tenant": tenant,
            "operator": tenant is None,
            "csrf": self.signin.csrf_token(session) if session else None,
            "expires_at": session.expires_at if session else None,
        }

    async def sign_in(self, request: Request) -> Response:
        """`{"login_token": ...}` (from the printed URL) or `{"key": ...}` (typed in the page);
        answers who is signed in and sets the session cookie. The key is checked and dropped:
        it is never stored, answered or logged."""
        if not same_origin(request.headers):
            raise TaskAppError(403, "forbidden", "Sign in from this server's own page.")
        body = await json_body(request)
        token, key = _credential(body, "login_token"), _credential(body, "key")
        screened = screen(request.scope, presented_from(key, None, None))
        if screened is not None:
            raise screened
        if token is not None:
            try:
                tenant, key_id = await asyncio.to_thread(self.signin.redeem, token)
            except LoginRefused as exc:
                record_failure(request.scope)
                raise TaskAppError(401, "sign_in_refused", str(exc)) from None
        elif key is not None:
            principal = self.identify(key_headers(key))
            if principal is None:
                record_failure(request.scope)
                raise TaskAppError(401, "sign_in_refused", "That key is not valid here.")
            tenant, key_id = principal.tenant, self.signin.key_id(key)
        else:
            raise invalid_request("Send a login_token or a key.", loc=["body"], msg="no credential")
        try:
            session, value = await asyncio.to_thread(self.signin.start_session, tenant, key_id)
        except LoginRefused as exc:
            raise TaskAppError(401, "sign_in_refused", str(exc)) from None
        answer = JSONResponse(self._answer(session, tenant))
        answer.headers["set-cookie"] = self.signin.set_cookie(
            request.headers, value, self.signin.session_ttl_s, request.url.scheme == "https"
        )
        answer.headers["cache-control"] = "no-store"
        return answer

    async def whoami(self, request: Request) -> Response:
        session = request.scope.get("state", {}).get("session")
        return JSONResponse(self._answer(session, self.principal_of(request.scope).tenant))

    async def sign_out(self, request: Request) -> Response:
        """Ends the session (at every replica) and clears its cookie."""
        session = request.scope.get("state", {}).get("session")
        if session is not None:
            await asyncio.to_thread(self.signin.end, session)
        answer = Response(status_code=204)
        answer.headers["set-cookie"] = self.signin.set_cookie(
            request.headers, "", 0, request.url.scheme == "https"
        )
        return answer
