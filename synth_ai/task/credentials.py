"""Credentials follow destinations, never requests (DESIGN.md 3.4).

The author binds each inference destination to the NAME of an environment variable holding
its key; a request only chooses where to send a call, never which secret goes with it. So a
request that points `inference_url` at its own host gets no server key, whatever it asks for.

A destination is either a host (`api.openai.com`: https on the default port, exact host) or a
URL prefix (`https://my-vllm.internal/v1`: same scheme, host and port, and a path that
continues the prefix at a `/` boundary). Values are read from the environment per request, so
rotating a key needs no restart. httpx, whose parser decides what a prefix means, is imported
only once a prefix is bound or a destination is looked up: a map of hosts (the default) and an
app that never calls out do not load it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

DEFAULT_CREDENTIALS: Mapping[str, str] = MappingProxyType(
    {
        "api.openai.com": "OPENAI_API_KEY",
        "api.groq.com": "GROQ_API_KEY",
        "api.anthropic.com": "ANTHROPIC_API_KEY",
        "api.together.xyz": "TOGETHER_API_KEY",
        "openrouter.ai": "OPENROUTER_API_KEY",
        "api.mistral.ai": "MISTRAL_API_KEY",
        "generativelanguage.googleapis.com": "GEMINI_API_KEY",
    }
)
"""The vendors' own API hosts and the variables their SDKs read; safe to bind by default."""

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
# Encoded dots, slashes and backslashes let a server see a different path than the prefix test
# did (`/v1/%2e%2e/admin`); such paths never match a prefix.
_AMBIGUOUS_PATH = re.compile(rb"%2e|%2f|%5c|\\", re.IGNORECASE)
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class _Prefix:
    scheme: str
    host: str
    port: int | None
    path: str
    """Without its trailing `/`: `""` for a whole origin."""
    env_name: str

    def matches(self, url: httpx.URL) -> bool:
        if url.scheme != self.scheme or _host_of(url) != self.host or _port_of(url) != self.port:
            return False
        path = url.raw_path.split(b"?", 1)[0]
        if _AMBIGUOUS_PATH.search(path):
            return False
        prefix = self.path.encode("ascii")
        return path == prefix or path.startswith(prefix + b"/")


def _host_of(url: httpx.URL) -> str:
    return url.raw_host.decode("ascii", "replace").lower()


def _port_of(url: httpx.URL) -> int | None:
    """The explicit port, None for the scheme's default (httpx keeps `HTTPS://h:443`'s)."""
    return None if url.port == _DEFAULT_PORTS.get(url.scheme) else url.port


def _parse_prefix(entry: str, env_name: str) -> _Prefix:
    import httpx  # parsed as the client will parse it; imported only when a prefix is bound

    try:
        url = httpx.URL(entry)
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise ValueError(f"credentials: {entry!r} is not a URL ({exc})") from None
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise ValueError(f"credentials: {entry!r} needs an http(s) scheme and a host")
    if url.userinfo or url.query or url.fragment:
        raise ValueError(
            f"credentials: {entry!r} may not carry a user, a query or a fragment; "
            "name a scheme, host, optional port and path prefix"
        )
    path = url.raw_path.split(b"?", 1)[0].rstrip(b"/")
    if _AMBIGUOUS_PATH.search(path):
        raise ValueError(f"credentials: {entry!r} has an encoded '.', '/' or '\\' in its path")
    return _Prefix(url.scheme, _host_of(url), _port_of(url), path.decode("ascii"), env_name)


class CredentialMap:
    """Which environment variable's key, if any, goes with a request to a destination.

    Raises ValueError on a malformed entry, naming it, so a bad config fails at startup.
    """

    __slots__ = ("_hosts", "_prefixes")

    def __init__(self, credentials: Mapping[str, str]) -> None:
        self._hosts: dict[str, str] = {}
        prefixes: list[_Prefix] = []
        for destination, env_name in credentials.items():
            if not isinstance(destination, str) or not isinstance(env_name, str):
                raise ValueError("credentials map destinations (str) to variable names (str)")
            if not _ENV_NAME.fullmatch(env_name):
                raise ValueError(
                    f"credentials: {env_name!r} (for {destination!r}) is not an environment "
                    "variable name; give the NAME of the variable that holds the key"
                )
            if "://" in destination:
                prefixes.append(_parse_prefix(destination, env_name))
            elif _HOST.fullmatch(destination.lower()):
                self._hosts[destination.lower()] = env_name
            else:
                raise ValueError(
                    f"credentials: {destination!r} is neither a host (api.example.com) nor an "
                    "http(s) URL prefix (https://example.com/v1)"
                )
        # the longest prefix wins, so a specific endpoint can override its origin's key
        self._prefixes = sorted(prefixes, key=lambda p: len(p.path), reverse=True)

    def __bool__(self) -> bool:
        return bool(self._hosts or self._prefixes)

    def env_name_for(self, url: httpx.URL | str) -> str | None:
        """The variable bound to this destination, or None: most specific prefix, then host."""
        import httpx  # loaded already wherever a request is being made

        url = httpx.URL(url)
        for prefix in self._prefixes:
            if prefix.matches(url):
                return prefix.env_name
        if url.scheme == "https" and _port_of(url) is None:
            return self._hosts.get(_host_of(url))
        return None

    def key_for(self, url: httpx.URL | str) -> str | None:
        """The key for this destination, read from the environment now (None when unset)."""
        name = self.env_name_for(url)
        value = os.environ.get(name, "").strip() if name else ""
        return value or None


__all__ = ["DEFAULT_CREDENTIALS", "CredentialMap"]
