"""Who a jobs request comes from, on the routes that check it themselves.

Streams and artifact downloads are public to the API-key middleware so that a browser's
`EventSource` can send a stream token in the query; uploads may come from a session the auth
layer let in. These functions name the caller, or refuse: a token for another job is 403, a
missing or wrong key 401 (503 when the server has no key at all), and every wrong key counts
against the address's failed checks.
"""

from __future__ import annotations

from starlette.requests import Request

from synth_ai.task.attempts import record_failure
from synth_ai.task.auth import WWW_AUTHENTICATE, check_api_key, presented_keys, screen
from synth_ai.task.errors import TaskAppError

from .frames import StillAllowed
from .tenants import Principal, grant_alive, identify, tenant_keys
from .tokens import TokenCheck, check_stream_token, token_grant, token_tenant


def writer(request: Request) -> Principal:
    """Who writes: whom the auth layer let in (a key, or a session with its CSRF token).
    Where no layer named anyone, the request's own key decides; a write never falls back to
    the operator."""
    principal = request.scope.get("state", {}).get("principal")
    return principal if isinstance(principal, Principal) else key_holder(request)


async def reader(request: Request, token_secret: bytes) -> Principal:
    """Who reads a stream or an artifact: a stream token for this job (what a browser can
    send), else a key."""
    presented = presented_keys(request.headers)
    screened = screen(request.scope, presented)
    if screened is not None:
        raise screened
    token = request.query_params.get("token")
    if token and not presented:
        check = check_stream_token(token_secret, token, request.path_params["job_id"])
        if check is TokenCheck.WRONG_JOB:
            raise TaskAppError(403, "forbidden", "This stream token is for another job.")
        if check is not TokenCheck.OK:
            raise TaskAppError(401, "unauthorised", f"The stream token is {check.value}.")
        if not await grant_alive(request.scope, token_tenant(token), token_grant(token)):
            raise TaskAppError(401, "unauthorised", "The stream token's session or key ended.")
        return Principal(token_tenant(token))
    return key_holder(request)


def still_allowed(request: Request, principal: Principal) -> StillAllowed:
    """What an open stream re-checks: its token's session or key, else that the key it
    presented still names the same principal (sign-out and rotation end open streams)."""
    token = request.query_params.get("token")
    scope = request.scope
    if token and not presented_keys(request.headers):
        tenant, grant = token_tenant(token), token_grant(token)
        return lambda: grant_alive(scope, tenant, grant)
    headers = request.headers

    async def key_still_held() -> bool:
        return identify(headers) == principal

    return key_still_held


def key_holder(request: Request) -> Principal:
    """The principal of the request's key; else 401 (503 when no key is configured)."""
    principal = identify(request.headers)
    if principal is not None:
        return principal
    if presented_keys(request.headers):
        record_failure(request.scope)
    refusal = check_api_key(request.headers, request.method, request.url.path)
    if refusal is not None and refusal.status_code == 503 and not tenant_keys():
        raise TaskAppError(
            503,
            "missing_environment_api_key",
            "The server has no API key configured; set ENVIRONMENT_API_KEY on the server.",
        )
    raise TaskAppError(
        401,
        "unauthorised",
        "A valid API key (or a stream token for this job) is required.",
        headers=WWW_AUTHENTICATE,
    )
