"""Pages in the browser: the jobs dashboard (served by `synth-ai jobs serve` at `/ui/`) and the
trace viewer (`synth-ai traces serve`), with the sign-in both share.

Plain JavaScript and HTML in `static/`, uPlot vendored in `vendor/` with its licence: nothing to
build. Names load on first use (PEP 562), so the jobs server importing the sign-in does not load
the trace viewer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from synth_ai.lazy_exports import lazy_exports

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


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)


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
