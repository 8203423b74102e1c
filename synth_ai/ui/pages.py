"""Serving the pages: HTML under `/ui/`, their scripts and styles, and the vendored uPlot.

Everything here ships inside the wheel and needs no build step. The pages are public (they hold
no data; the data comes from the API they call once signed in) and are sent with a strict
Content-Security-Policy: no inline script, no framing, and only the page's own scripts, named by
a fresh nonce on each answer. A script of this origin without it does not run: a job's artifact
(`/api/jobs/{id}/artifacts/x.js`) is served from the same origin, so `script-src 'self'` would
let one run as the dashboard's if any markup ever pointed a <script> at it.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

UI = Path(__file__).parent
STATIC = UI / "static"
VENDOR = UI / "vendor"

PAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def csp(nonce: str) -> str:
    """The pages' policy: scripts only with this answer's nonce (module imports inherit it)."""
    return (
        f"default-src 'self'; script-src 'nonce-{nonce}'; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    )


def _page(file: str) -> Callable[[Request], Awaitable[Response]]:
    html = (STATIC / file).read_text(encoding="utf-8")  # once, when the routes are made

    async def serve(request: Request) -> Response:
        nonce = secrets.token_urlsafe(18)
        headers = {**PAGE_HEADERS, "Content-Security-Policy": csp(nonce)}
        return HTMLResponse(html.replace("<script ", f'<script nonce="{nonce}" '), headers=headers)

    return serve


def page_routes(pages: dict[str, str]) -> list[BaseRoute]:
    """`/ui/<path>` for each page (path -> HTML file in `static/`), plus `/ui/assets/` and
    `/ui/vendor/`; `/ui` redirects to `/ui/`."""

    async def to_index(request: Request) -> Response:
        return RedirectResponse("/ui/", status_code=307)

    return [
        Route("/ui", to_index, methods=["GET", "HEAD"]),
        *(
            Route(f"/ui/{path}", _page(file), methods=["GET", "HEAD"])
            for path, file in pages.items()
        ),
        Mount("/ui/assets", app=StaticFiles(directory=STATIC)),
        Mount("/ui/vendor", app=StaticFiles(directory=VENDOR)),
    ]
