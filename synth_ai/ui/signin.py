"""Signing a browser in without the API key ever reaching the page.

A server prints a sign-in URL carrying a short-lived, single-use login token (as Jupyter does);
the page trades it, or a key typed into its form, for a session cookie (HttpOnly,
SameSite=Strict). Tokens and sessions are HMAC-signed with a secret the server keeps: the jobs
server's lives in its database, so every replica accepts what another issued, and a login
token's single use is recorded through `spend` (a table there), so a token used at one replica
is refused at all. A request that changes state with a session also carries a CSRF token bound
to that session, in a header no other site can make a browser send.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import Field
from starlette.datastructures import Headers
from starlette.requests import cookie_parser

from synth_ai.settings import EnvironmentSettings
from synth_ai.task.auth import PRIMARY_KEY_VAR, configured_keys

LOGIN_TTL_VAR = "SYNTH_UI_LOGIN_TTL_SECS"
SESSION_TTL_VAR = "SYNTH_UI_SESSION_TTL_SECS"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Spend = Callable[[str, float], bool]
"""Record a single-use token id (kept until its expiry); False when it was spent before."""


class LoginRefused(Exception):
    """A login token that is malformed, forged, expired or already used (the message says)."""


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: the operator (`tenant` None) or a tenant, until `expires_at`."""

    tenant: str | None
    sid: str
    expires_at: float


class SigninSettings(EnvironmentSettings):
    login_ttl_s: float = Field(default=900.0, validation_alias=LOGIN_TTL_VAR, ge=1, le=30 * 86_400)
    session_ttl_s: float = Field(
        default=12 * 3600.0, validation_alias=SESSION_TTL_VAR, ge=1, le=30 * 86_400
    )


class MemorySpend:
    """Spent login tokens for a single-process server (the trace viewer)."""

    def __init__(self) -> None:
        self._spent: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, token_id: str, expires_at: float) -> bool:
        now = time.time()
        with self._lock:
            self._spent = {key: until for key, until in self._spent.items() if until >= now}
            if token_id in self._spent:
                return False
            self._spent[token_id] = expires_at
            return True


class SignIn:
    """Issues and checks login tokens, session cookies and CSRF tokens for one server.

    `name` keeps its cookie apart from other servers on the same host (cookies ignore ports).
    TTLs default to `SYNTH_UI_LOGIN_TTL_SECS` (15 minutes) and `SYNTH_UI_SESSION_TTL_SECS`
    (12 hours).
    """

    def __init__(
        self,
        secret: bytes,
        spend: Spend,
        *,
        name: str,
        login_ttl_s: float | None = None,
        session_ttl_s: float | None = None,
    ) -> None:
        self._secret = secret
        self._spend = spend
        self.name = name
        settings = SigninSettings.from_environment()
        self.login_ttl_s = settings.login_ttl_s if login_ttl_s is None else login_ttl_s
        self.session_ttl_s = settings.session_ttl_s if session_ttl_s is None else session_ttl_s

    # --- signed envelopes ------------------------------------------------------------------

    def _sign(self, purpose: str, payload: bytes) -> str:
        return hmac.new(self._secret, purpose.encode() + b"|" + payload, hashlib.sha256).hexdigest()

    def _seal(self, purpose: str, tenant: str | None, ttl_s: float) -> tuple[str, str, float]:
        nonce, expires_at = secrets.token_urlsafe(16), time.time() + ttl_s
        payload = json.dumps({"t": tenant, "n": nonce, "e": round(expires_at, 3)}).encode()
        encoded = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        return f"{encoded}.{self._sign(purpose, payload)}", nonce, expires_at

    def _open(self, purpose: str, token: str) -> tuple[str | None, str, float] | None:
        """(tenant, nonce, expiry) of a token this server signed for `purpose`, else None."""
        encoded, _, signature = token.partition(".")
        try:
            payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            if not hmac.compare_digest(self._sign(purpose, payload), signature):
                return None
            body = json.loads(payload)
            tenant, nonce, expires_at = body["t"], body["n"], float(body["e"])
        except (ValueError, KeyError, TypeError):
            return None
        if (tenant is not None and not isinstance(tenant, str)) or not isinstance(nonce, str):
            return None
        return tenant, nonce, expires_at

    # --- login tokens ----------------------------------------------------------------------

    def login_token(self, tenant: str | None = None) -> str:
        """A token that signs one browser in as `tenant` (None: the operator), once."""
        return self._seal("login", tenant, self.login_ttl_s)[0]

    def redeem(self, token: str) -> str | None:
        """The tenant a login token signs in, spending it; raises `LoginRefused`.

        Blocking (`spend` may write to a database): run it off the event loop.
        """
        opened = self._open("login", token)
        if opened is None:
            raise LoginRefused("This sign-in link is not valid for this server.")
        tenant, nonce, expires_at = opened
        if time.time() > expires_at:
            raise LoginRefused("This sign-in link has expired; sign in with a key.")
        if not self._spend(f"login:{nonce}", expires_at):
            raise LoginRefused("This sign-in link was used already; sign in with a key.")
        return tenant

    # --- sessions --------------------------------------------------------------------------

    def start_session(self, tenant: str | None) -> tuple[Session, str]:
        """A new session and its cookie value."""
        value, sid, expires_at = self._seal("session", tenant, self.session_ttl_s)
        return Session(tenant, sid, expires_at), value

    def cookie_name(self, headers: Headers) -> str:
        """`synth_<name>_<port>`: one cookie per server, as the browser addresses it."""
        try:
            port = urlsplit(f"//{headers.get('host', '')}").port
        except ValueError:  # a malformed Host names no port
            port = None
        return f"synth_{self.name}_{port or 'default'}"

    def session_of(self, headers: Headers) -> Session | None:
        """The live session a request's cookie carries, if any."""
        value = cookie_parser(headers.get("cookie", "")).get(self.cookie_name(headers))
        opened = self._open("session", value) if value else None
        if opened is None or time.time() > opened[2]:
            return None
        return Session(*opened)

    def set_cookie(self, headers: Headers, value: str, max_age: float, secure: bool) -> str:
        """A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/ (Secure over https)."""
        flags = "; Secure" if secure else ""
        return (
            f"{self.cookie_name(headers)}={value}; Max-Age={int(max_age)}; Path=/; HttpOnly; "
            f"SameSite=Strict{flags}"
        )

    # --- CSRF ------------------------------------------------------------------------------

    def csrf_token(self, session: Session) -> str:
        return self._sign("csrf", session.sid.encode())

    def csrf_refusal(self, session: Session, method: str, headers: Headers) -> str | None:
        """Why a request made with `session` may not change state, or None when it may: the
        session's CSRF token in `X-CSRF-Token`, and no sign of another site (Origin, Fetch
        metadata)."""
        if method in SAFE_METHODS:
            return None
        if not same_origin(headers):
            return "This request came from another site."
        presented = headers.get(CSRF_HEADER, "")
        if not presented or not hmac.compare_digest(presented, self.csrf_token(session)):
            return "A state-changing request needs the session's CSRF token (X-CSRF-Token)."
        return None


def same_origin(headers: Headers) -> bool:
    """False when the browser says the request comes from another site or origin."""
    if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = headers.get("origin")
    return origin is None or urlsplit(origin).netloc == headers.get("host", "")


def _base(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def sign_in_url(signin: SignIn, host: str, port: int, tenant: str | None = None) -> str:
    """The URL a server prints at start: its pages, signed in once through the fragment
    (which browsers never send to a server, so no log or proxy sees the token)."""
    return f"{_base(host, port)}/ui/#login={signin.login_token(tenant)}"


def sign_in_banner(signin: SignIn, host: str, port: int, what: str) -> str:
    """What a server prints at start: the operator's sign-in URL, or, with no operator key
    configured, where the page is (a tenant signs in there with its key)."""
    if not configured_keys():
        return f"{what}: {_base(host, port)}/ui/ (no {PRIMARY_KEY_VAR}: sign in with a key)"
    minutes = f"{signin.login_ttl_s / 60:g}"
    return f"{what} (this sign-in link works once, for {minutes} min):\n    " + sign_in_url(
        signin, host, port
    )
