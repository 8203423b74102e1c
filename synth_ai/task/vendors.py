"""0.2.24's vendor-key helpers: a vendor's key from its variable, or from a dev fallback.

Nothing here prints or answers any part of a key (0.2.24 printed a prefix).
"""

from __future__ import annotations

import os

from .errors import http_exception

DEV_FALLBACKS = {
    "OPENAI_API_KEY": ("dev_openai_api_key", "DEV_OPENAI_API_KEY"),
    "GROQ_API_KEY": ("dev_groq_api_key", "DEV_GROQ_API_KEY"),
}


def _resolve(name: str) -> str | None:
    """The variable's value; else a dev fallback's, copied into it (as 0.2.24 does)."""
    value = os.environ.get(name, "").strip()
    if value:
        return value
    for fallback in DEV_FALLBACKS.get(name, ()):
        candidate = os.environ.get(fallback, "").strip()
        if candidate:
            os.environ[name] = candidate
            return candidate
    return None


def normalize_vendor_keys() -> dict[str, str | None]:
    """Fill each known vendor variable from its dev fallback when unset; answers the keys."""
    return {name: _resolve(name) for name in DEV_FALLBACKS}


def _key_or_503(name: str, vendor: str) -> str:
    key = _resolve(name)
    if key is None:
        raise http_exception(503, f"missing_{vendor}_api_key", f"{name} is not configured")
    return key


def get_openai_key_or_503() -> str:
    return _key_or_503("OPENAI_API_KEY", "openai")


def get_groq_key_or_503() -> str:
    return _key_or_503("GROQ_API_KEY", "groq")


__all__ = ["get_groq_key_or_503", "get_openai_key_or_503", "normalize_vendor_keys"]
