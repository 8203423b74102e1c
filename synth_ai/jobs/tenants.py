"""Who is asking: the operator, or one tenant (DESIGN.md 5, tenants).

`ENVIRONMENT_API_KEY` (and its aliases) is the operator's key and sees every job;
`SYNTH_JOBS_TENANT_KEYS="tenant:key,tenant2:key2"` names tenant keys, each seeing only the jobs
it created. Keys are read on every request (rotation needs no restart) and compared in constant
time against every valid key; none is ever logged or answered.

Where the app signs browsers in (`app.state.signin`, see `synth_ai.ui.signin`), a request that
presents no key may instead carry a session cookie: its session must not have been ended and
the key that opened it must still be configured, and a state-changing request made with it must
also carry the session's CSRF token. A presented key always decides on its own, exactly as
without sessions.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from synth_ai.task.attempts import record_failure
from synth_ai.task.auth import (
    WWW_AUTHENTICATE,
    AuthMiddleware,
    check_api_key,
    configured_keys,
    presented_keys,
    screen,
)
from synth_ai.task.errors import error_response

if TYPE_CHECKING:
    from synth_ai.ui.signin import Session, SignIn

TENANT_KEYS_VAR = "SYNTH_JOBS_TENANT_KEYS"
TENANT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
UNAUTHORISED = "A valid API key is required: send it as X-API-Key or Authorization: Bearer."


@dataclass(frozen=True, slots=True)
class Principal:
    """The operator (`tenant` None) or a tenant."""

    tenant: str | None

    @property
    def is_operator(self) -> bool:
        return self.tenant is None

    def may_see(self, owner: str | None) -> bool:
        return self.tenant is None or self.tenant == owner


OPERATOR = Principal(None)


def tenant_keys(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Tenant key -> tenant name, from `SYNTH_JOBS_TENANT_KEYS`; bad entries raise ValueError
    naming the variable (never the key)."""
    env = os.environ if environ is None else environ
    keys: dict[str, str] = {}
    for index, entry in enumerate(part.strip() for part in env.get(TENANT_KEYS_VAR, "").split(",")):
        if not entry:
            continue
        tenant, _, key = entry.partition(":")
        if not TENANT_NAME.fullmatch(tenant) or not key.strip():
            raise ValueError(
                f"{TENANT_KEYS_VAR} entry {index + 1} is not 'tenant:key' "
                "(tenant: letters, digits, '_', '.', '-'; at most 64)"
            )
        keys[key.strip()] = tenant
    return keys


def _match(presented: list[str], valid: Mapping[str, str]) -> str | None:
    """The tenant of a presented key, compared in constant time against every valid one."""
    found: str | None = None
    for candidate in presented:
        for key, tenant in valid.items():
            if hmac.compare_digest(candidate.encode(), key.encode()):
                found = tenant
    return found


def identify(headers: Headers) -> Principal | None:
    """The principal a request's key names, or None when it names nobody."""
    presented = presented_keys(headers)
    if not presented:
        return None
    operator = configured_keys()
    if operator and _match(presented, dict.fromkeys(operator, "")) is not None:
        return OPERATOR
    tenant = _match(presented, tenant_keys())
    return Principal(tenant) if tenant is not None else None


def keys_of(tenant: str | None) -> list[str]:
    """The keys the operator (None) or a tenant has now: what keeps its sessions alive."""
    if tenant is None:
        return configured_keys()
    return [key for key, owner in tenant_keys().items() if owner == tenant]


def _signin(scope: Scope) -> SignIn | None:
    return getattr(getattr(scope.get("app"), "state", None), "signin", None)


def stream_grant(scope: Scope) -> str:
    """What a stream token issued to this request dies with: its session, or its key."""
    signin = _signin(scope)
    if signin is None:
        return ""
    session = scope.get("state", {}).get("session")
    return signin.grant(principal_of(scope).tenant, session, Headers(scope=scope))


async def grant_alive(scope: Scope, tenant: str | None, grant: str) -> bool:
    """Whether the session or key a stream token was issued to still stands."""
    signin = _signin(scope)
    if signin is None:
        return grant == ""
    return await asyncio.to_thread(signin.grant_alive, tenant, grant)


def principal_of(scope: Scope) -> Principal:
    """Who the auth middleware let in (the operator when no tenant middleware ran)."""
    principal = scope.get("state", {}).get("principal")
    return principal if isinstance(principal, Principal) else OPERATOR


class TenantAuthMiddleware(AuthMiddleware):
    """The task apps' auth, plus tenant keys and browser sessions: lets a tenant in and says
    who it is."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._is_public(scope):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        presented = presented_keys(headers)
        screened = screen(scope, presented)
        if screened is not None:
            await screened.to_response()(scope, receive, send)
            return
        principal = identify(headers)
        signin = _signin(scope)
        if principal is None and signin is not None and not presented:
            session = signin.session_of(headers)
            if session is not None and await asyncio.to_thread(signin.alive, session):
                await self._with_session(signin, session, headers, scope, receive, send)
                return
        if principal is None:
            if presented:
                record_failure(scope)
            # 401, or 503 when no key at all is configured (tenant keys count as configured)
            refusal = check_api_key(headers, scope["method"], scope["path"])
            if refusal is None or (refusal.status_code == 503 and tenant_keys()):
                refusal = error_response(
                    401, "unauthorised", UNAUTHORISED, headers=WWW_AUTHENTICATE
                )
            await refusal(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    async def _with_session(
        self,
        signin: SignIn,
        session: Session,
        headers: Headers,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """In as the session's principal; a state-changing request also needs its CSRF token."""
        reason = signin.csrf_refusal(session, scope["method"], headers)
        if reason is not None:
            await error_response(403, "csrf_failed", reason)(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["principal"], state["session"] = Principal(session.tenant), session
        await self.app(scope, receive, send)
