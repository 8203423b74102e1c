"""Short-lived, job-scoped stream tokens for browsers (`EventSource` cannot set headers).

A token also names what it was issued to (its grant: the session, or the fingerprint of the
key, see `SignIn.grant`), so it dies with that session or key, whatever its expiry says.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from enum import Enum


class TokenCheck(Enum):
    OK = "ok"
    INVALID = "invalid"
    EXPIRED = "expired"
    WRONG_JOB = "wrong_job"


def _sign(secret: bytes, payload: bytes) -> str:
    return hmac.new(secret, payload, hashlib.sha256).hexdigest()


def _fields(token: str) -> list[str]:
    """job, tenant, grant, expiry; raises ValueError on a token of another shape."""
    encoded = token.partition(".")[0]
    payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    fields = payload.rsplit("|", 3)
    if len(fields) != 4:
        raise ValueError("not a stream token")
    return fields


def issue_stream_token(
    secret: bytes, job_id: str, ttl_s: float, tenant: str | None = None, grant: str = ""
) -> tuple[str, float]:
    """A token good for reading `job_id` (as `tenant`) until the answered expiry (unix s),
    while `grant` stands."""
    expires_at = time.time() + ttl_s
    payload = f"{job_id}|{tenant or ''}|{grant}|{expires_at:.3f}".encode()
    encoded = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    return f"{encoded}.{_sign(secret, payload)}", expires_at


def token_tenant(token: str) -> str | None:
    """The tenant a (checked) token was issued to; None for the operator."""
    return _fields(token)[1] or None


def token_grant(token: str) -> str:
    """What a (checked) token was issued to: `s:<session>`, `k:<key fingerprint>` or empty."""
    return _fields(token)[2]


def check_stream_token(secret: bytes, token: str, job_id: str) -> TokenCheck:
    encoded, _, signature = token.partition(".")
    try:
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        token_job, _, _, expiry = _fields(token)
        expires_at = float(expiry)
    except (ValueError, UnicodeDecodeError):
        return TokenCheck.INVALID
    if not hmac.compare_digest(_sign(secret, payload).encode(), signature.encode()):
        return TokenCheck.INVALID
    if token_job != job_id:
        return TokenCheck.WRONG_JOB
    if time.time() > expires_at:
        return TokenCheck.EXPIRED
    return TokenCheck.OK
