"""`serve_on_loop`: uvicorn on the caller's own event loop, started before the URL is given
and stopped on exit."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from synth_ai.task.serving import serve_on_loop


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


def test_it_answers_while_entered_and_is_closed_after() -> None:
    async def main() -> None:
        app = Starlette(routes=[Route("/", hello)])
        async with serve_on_loop(app) as url, httpx.AsyncClient() as client:
            assert (await client.get(url)).text == "hello"
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(url)

    asyncio.run(main())


def test_an_app_that_fails_to_start_is_an_error_not_a_url() -> None:
    @asynccontextmanager
    async def broken(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield

    async def main() -> None:
        async with serve_on_loop(Starlette(lifespan=broken)):
            pytest.fail("entered a server that did not start")

    with pytest.raises(RuntimeError, match="stopped before it started"):
        asyncio.run(main())


def test_the_hosts_logging_is_left_as_it_was() -> None:
    """A jobs server that serves an interceptor keeps its own uvicorn log handlers and levels
    (uvicorn's default config would replace them)."""
    logger = logging.getLogger("uvicorn.error")
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:

        async def main() -> None:
            async with serve_on_loop(Starlette(routes=[Route("/", hello)])):
                pass

        asyncio.run(main())
        assert handler in logger.handlers
        assert logger.level == logging.INFO
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def test_requests_run_in_none_of_the_callers_context_variables() -> None:
    """The caller's variables (an optimizer job's trace span) stay out of the requests."""
    owner: contextvars.ContextVar[str] = contextvars.ContextVar("owner", default="nobody")

    async def whose(request: Request) -> PlainTextResponse:
        return PlainTextResponse(owner.get())

    async def main() -> str:
        owner.set("the optimizer's job")
        app = Starlette(routes=[Route("/", whose)])
        async with serve_on_loop(app) as url, httpx.AsyncClient() as client:
            return (await client.get(url)).text

    assert asyncio.run(main()) == "nobody"
