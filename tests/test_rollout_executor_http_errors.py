"""A native `(request, context)` executor that raises Starlette's or FastAPI's `HTTPException`
is answered in the error envelope with that status, as a 0.2.24 executor already was, never
500 `rollout_failed`. Real uvicorn servers on loopback, sync and async executors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import HTTPException as FastAPIHTTPException
from starlette.exceptions import HTTPException as StarletteHTTPException

from synth_ai.task import create_task_app, serve_in_background
from synth_ai.task.errors import http_exception

from .conftest import auth_headers, make_config, rollout_body

KINDS: dict[str, Callable[[int], Exception]] = {
    "fastapi": lambda status: FastAPIHTTPException(status, detail="bad seed"),
    "starlette": lambda status: StarletteHTTPException(status, detail="bad seed"),
    "http_exception": lambda status: http_exception(status, "bad_seed", "bad seed", extra={"n": 4}),
}


def raising(exc: Exception, is_async: bool) -> Callable[..., Any]:
    def executor(request: Any, context: Any) -> Any:
        raise exc

    async def async_executor(request: Any, context: Any) -> Any:
        raise exc

    return async_executor if is_async else executor


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("status", [400, 403, 404, 409, 422, 429, 503])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_an_http_exception_from_a_native_executor_keeps_its_status(
    kind: str, status: int, is_async: bool
) -> None:
    app = create_task_app(make_config(rollout=raising(KINDS[kind](status), is_async)))
    with serve_in_background(app) as url:
        response = httpx.post(
            f"{url}/rollout", json=rollout_body(), headers=auth_headers(), timeout=30
        )
    assert response.status_code == status, response.text
    error = response.json()["detail"]["error"]
    assert error["message"] == "bad seed"
    assert error["code"] != "rollout_failed"
    if kind == "http_exception":
        assert error == {"code": "bad_seed", "message": "bad seed", "n": 4}
