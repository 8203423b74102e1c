"""Signing a browser in without the API key ever reaching the page.

A server prints a sign-in URL carrying a short-lived, single-use login token (as Jupyter does);
the page trades it, or a key typed into its form, for a session cookie (HttpOnly,
SameSite=Strict; Secure when the page came over https). Tokens and sessions are HMAC-signed with
a secret the server keeps: the jobs server's lives in its database, so every replica accepts
what another issued, and a login token's single use is recorded through `spend` (a table there),
so a token used at one replica is refused at all. A request that changes state with a session
also carries a CSRF token bound to that session, in a header no other site can make a browser
send.

Sessions are also recorded (`sessions.py`) with the fingerprint of the key that opened them, and
every use of a cookie looks its session up: signing out ends it, and so does removing or
rotating that key (keys are read on every request). A login link carries its key's fingerprint
too, and a stream token the session or key it was issued to (`grant`), and dies with it.
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
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field
from starlette.datastructures import Headers
from starlette.requests import cookie_parser

from synth_ai.settings import EnvironmentSettings
from synth_ai.task.auth import PRIMARY_KEY_VAR, configured_keys, presented_keys
from synth_ai.task.errors import invalid_request

from .sessions import SessionStore, StoredSession

LOGIN_TTL_VAR = "SYNTH_UI_LOGIN_TTL_SECS"
SESSION_TTL_VAR = "SYNTH_UI_SESSION_TTL_SECS"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Spend = Callable[[str, float], bool]
"""Record a single-use token id (kept until its expiry); False when it was spent before."""
KeysOf = Callable[[str | None], list[str]]
"""The keys configured now for the operator (None) or a tenant, read at every call."""


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
    `sessions` records who is signed in; `keys_of` names the keys that may keep a session
    alive. TTLs default to `SYNTH_UI_LOGIN_TTL_SECS` (15 minutes) and
    `SYNTH_UI_SESSION_TTL_SECS` (12 hours).
    """

    def __init__(
        self,
        secret: bytes,
        spend: Spend,
        sessions: SessionStore,
        keys_of: KeysOf,
        *,
        name: str,
        login_ttl_s: float | None = None,
        session_ttl_s: float | None = None,
    ) -> None:
        self._secret = secret
        self._spend = spend
        self._sessions = sessions
        self._keys_of = keys_of
        self.name = name
        settings = SigninSettings.from_environment()
        self.login_ttl_s = settings.login_ttl_s if login_ttl_s is None else login_ttl_s
        self.session_ttl_s = settings.session_ttl_s if session_ttl_s is None else session_ttl_s

    # --- signed envelopes ------------------------------------------------------------------

    def _sign(self, purpose: str, payload: bytes) -> str:
        return hmac.new(self._secret, purpose.encode() + b"|" + payload, hashlib.sha256).hexdigest()

    def _seal(self, purpose: str, claims: dict[str, Any], ttl_s: float) -> tuple[str, str, float]:
        nonce, expires_at = secrets.token_urlsafe(16), time.time() + ttl_s
        payload = json.dumps({**claims, "n": nonce, "e": round(expires_at, 3)}).encode()
        encoded = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        return f"{encoded}.{self._sign(purpose, payload)}", nonce, expires_at

    def _open(self, purpose: str, token: str) -> dict[str, Any] | None:
        """The claims of a token this server signed for `purpose` (tenant `t`, nonce `n`,
        expiry `e`, and a key fingerprint `k` on login tokens), else None."""
        encoded, _, signature = token.partition(".")
        try:
            payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            if not hmac.compare_digest(self._sign(purpose, payload), signature):
                return None
            body = json.loads(payload)
            if not isinstance(body, dict):
                return None
            body["e"] = float(body["e"])
            tenant, nonce, key_id = body["t"], body["n"], body.get("k", "")
        except (ValueError, KeyError, TypeError):
            return None
        if tenant is not None and not isinstance(tenant, str):
            return None
        if not isinstance(nonce, str) or not isinstance(key_id, str):
            return None
        return body

    # --- keys ------------------------------------------------------------------------------

    def key_id(self, key: str) -> str:
        """A key's fingerprint: what a session keeps of the key that opened it (an HMAC with
        this server's secret, so it tells nothing about the key)."""
        return self._sign("key", key.strip().encode())[:32]

    def holds(self, tenant: str | None, key_id: str) -> bool:
        """Whether `key_id` is the fingerprint of a key `tenant` has now."""
        held = False
        for key in self._keys_of(tenant):
            held |= hmac.compare_digest(self.key_id(key), key_id)
        return held

    # --- login tokens ----------------------------------------------------------------------

    def login_token(self, tenant: str | None = None) -> str:
        """A token that signs one browser in as `tenant` (None: the operator), once, while
        its first key now is still configured; raises ValueError when it has none."""
        keys = self._keys_of(tenant)
        if not keys:
            raise ValueError("no key is configured to sign in with")
        return self._seal("login", {"t": tenant, "k": self.key_id(keys[0])}, self.login_ttl_s)[0]

    def redeem(self, token: str) -> tuple[str | None, str]:
        """The tenant a login token signs in and its key's fingerprint, spending the token;
        raises `LoginRefused`.

        Blocking (`spend` may write to a database): run it off the event loop.
        """
        claims = self._open("login", token)
        if claims is None:
            raise LoginRefused("This sign-in link is not valid for this server.")
        if time.time() > claims["e"]:
            raise LoginRefused("This sign-in link has expired; sign in with a key.")
        if not self._spend(f"login:{claims['n']}", claims["e"]):
            raise LoginRefused("This sign-in link was used already; sign in with a key.")
        return claims["t"], claims["k"]

    # --- sessions --------------------------------------------------------------------------

    def start_session(self, tenant: str | None, key_id: str) -> tuple[Session, str]:
        """A new session, recorded, and its cookie value; raises `LoginRefused` when the key
        it would depend on is not `tenant`'s now. Blocking: run it off the event loop."""
        if not self.holds(tenant, key_id):
            raise LoginRefused("The key behind this sign-in is not valid here.")
        value, sid, expires_at = self._seal("session", {"t": tenant}, self.session_ttl_s)
        self._sessions.open(StoredSession(sid, tenant, key_id, expires_at))
        return Session(tenant, sid, expires_at), value

    def cookie_name(self, headers: Headers) -> str:
        """`synth_<name>_<port>`: one cookie per server, as the browser addresses it."""
        try:
            port = urlsplit(f"//{headers.get('host', '')}").port
        except ValueError:  # a malformed Host names no port
            port = None
        return f"synth_{self.name}_{port or 'default'}"

    def session_of(self, headers: Headers) -> Session | None:
        """The session a request's cookie carries, if signed here and not expired; whether it
        is still alive is `alive`'s to say."""
        value = cookie_parser(headers.get("cookie", "")).get(self.cookie_name(headers))
        claims = self._open("session", value) if value else None
        if claims is None or time.time() > claims["e"]:
            return None
        return Session(claims["t"], claims["n"], claims["e"])

    def alive(self, session: Session) -> bool:
        """Not signed out, and the key that opened it still configured. Blocking."""
        stored = self._sessions.find(session.sid)
        return (
            stored is not None
            and stored.tenant == session.tenant
            and self.holds(stored.tenant, stored.key_id)
        )

    def end(self, session: Session) -> None:
        """Sign out: the cookie is refused from now on, at every replica. Blocking."""
        self._sessions.end(session.sid)

    def set_cookie(self, headers: Headers, value: str, max_age: float, secure: bool) -> str:
        """A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/ (Secure over https)."""
        flags = "; Secure" if secure else ""
        return (
            f"{self.cookie_name(headers)}={value}; Max-Age={int(max_age)}; Path=/; HttpOnly; "
            f"SameSite=Strict{flags}"
        )

    # --- what a stream token depends on ----------------------------------------------------

    def grant(self, tenant: str | None, session: Session | None, headers: Headers) -> str:
        """What a stream token issued to this request lives on: its session (`s:<sid>`), else
        the fingerprint of the key it presented (`k:<key_id>`); empty when neither (a server
        that needs no key)."""
        if session is not None:
            return f"s:{session.sid}"
        for key in presented_keys(headers):
            key_id = self.key_id(key)
            if self.holds(tenant, key_id):
                return f"k:{key_id}"
        return ""

    def grant_alive(self, tenant: str | None, grant: str) -> bool:
        """Whether what a stream token was issued to still stands. Blocking."""
        kind, _, value = grant.partition(":")
        if kind == "s":
            stored = self._sessions.find(value)
            return (
                stored is not None
                and stored.tenant == tenant
                and self.holds(stored.tenant, stored.key_id)
            )
        if kind == "k":
            return self.holds(tenant, value)
        return grant == ""

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


def key_headers(key: str) -> Headers:
    """The headers a key typed into the page would have come in, for the server's `identify`;
    a key no header can carry (not latin-1) is no key here: 422."""
    try:
        key.encode("latin-1")
    except UnicodeEncodeError:
        raise invalid_request(
            "A key is latin-1 text (it travels in an HTTP header).",
            loc=["body", "key"],
            msg="not latin-1",
        ) from None
    return Headers({"x-api-key": key})


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
