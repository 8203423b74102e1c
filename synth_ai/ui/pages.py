"""Serving the pages: HTML under `/ui/`, their scripts and styles, and the vendored uPlot.

Everything here ships inside the wheel and needs no build step. The pages are public (they hold
no data; the data comes from the API they call once signed in) and are sent with a strict
Content-Security-Policy: scripts from this server only, no inline script, no framing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

UI = Path(__file__).parent
STATIC = UI / "static"
VENDOR = UI / "vendor"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _page(file: str) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        return FileResponse(STATIC / file, media_type="text/html", headers=PAGE_HEADERS)

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
