"""Pages in the browser: the jobs dashboard (served by `synth-ai jobs serve` at `/ui/`) and the
trace viewer (`synth-ai traces serve`), with the sign-in both share.

Plain JavaScript and HTML in `static/`, uPlot vendored in `vendor/` with its licence: nothing to
build. Names load on first use (PEP 562), so the jobs server importing the sign-in does not load
the trace viewer.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "signin": (
        "LoginRefused",
        "MemorySpend",
        "Session",
        "SignIn",
        "sign_in_banner",
        "sign_in_url",
    ),
    "signin_routes": ("SignInRoutes",),
    "pages": ("page_routes",),
    "traces_app": ("create_traces_app",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = [
    "LoginRefused",
    "MemorySpend",
    "Session",
    "SignIn",
    "SignInRoutes",
    "create_traces_app",
    "page_routes",
    "sign_in_banner",
    "sign_in_url",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .pages import page_routes
    from .signin import (
        LoginRefused,
        MemorySpend,
        Session,
        SignIn,
        sign_in_banner,
        sign_in_url,
    )
    from .signin_routes import SignInRoutes
    from .traces_app import create_traces_app
