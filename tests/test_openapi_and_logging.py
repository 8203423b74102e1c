"""`/openapi.json` is valid OpenAPI 3.1; each request is logged once, with its correlation id."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import httpx
import pytest
from openapi_spec_validator import validate

from synth_ai.task import create_task_app, serve_in_background

from .conftest import KEY, InProcess, make_config, rollout_body


def test_openapi_document_is_valid_3_1() -> None:
    client = InProcess(create_task_app(make_config()))
    response = client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["openapi"].startswith("3.1")
    validate(spec)
    schemas = spec["components"]["schemas"]
    assert {"RolloutRequest", "RolloutResponse", "TaskInfo", "ErrorEnvelope"} <= schemas.keys()
    assert set(spec["paths"]) == {"/", "/health", "/info", "/task_info", "/rollout"}


def test_one_access_line_per_request_with_the_correlation_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = InProcess(create_task_app(make_config()))
    with caplog.at_level(logging.INFO, logger="synth_ai.task.access"):
        client.post("/rollout", json=rollout_body(7), headers={"X-API-Key": KEY})
        client.get("/nope", headers={"X-API-Key": KEY})
    lines = [r.getMessage() for r in caplog.records if r.name == "synth_ai.task.access"]
    assert len(lines) == 2
    method, path, status, duration, cid = lines[0].split(" ")
    assert (method, path, status, cid) == ("POST", "/rollout", "200", "cid=run-7")
    assert duration.endswith("ms") and float(duration[:-2]) >= 0
    assert lines[1].startswith("GET /nope 404 ") and lines[1].endswith("cid=-")


class Recorder(logging.Handler):
    """Keeps the messages it gets and lets a test wait for them (no sleeping)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, str]] = []
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.changed:
            self.lines.append((record.name, record.getMessage()))
            self.changed.notify_all()

    def wait_for(self, text: str) -> None:
        with self.changed:
            found = self.changed.wait_for(
                lambda: any(text in line for _, line in self.lines), timeout=10
            )
        assert found, f"no log line with {text!r}: {self.lines}"


@pytest.fixture
def access_lines(caplog: pytest.LogCaptureFixture) -> Iterator[tuple[Recorder, str]]:
    """A served app (uvicorn logging at INFO) and a recorder on the app's access log."""
    caplog.set_level(logging.INFO, logger="synth_ai.task.access")
    recorder = Recorder()
    with serve_in_background(create_task_app(make_config()), log_level="info") as url:
        # uvicorn writes its own access line only when its logger has a handler; that line
        # would carry the raw URL, `?token=` and all
        assert not logging.getLogger("uvicorn.access").hasHandlers()
        logger = logging.getLogger("synth_ai.task.access")
        logger.addHandler(recorder)
        try:
            yield recorder, url
        finally:
            logger.removeHandler(recorder)


def test_a_forged_path_and_secrets_in_the_query_log_one_safe_line(
    access_lines: tuple[Recorder, str],
) -> None:
    recorder, url = access_lines
    response = httpx.get(f"{url}/x%0Afake%20line?token=SECRET&key=K2&Access_Token=T3&a=%0A")
    assert response.status_code == 401  # no key: refused, and still logged
    httpx.get(f"{url}/after")
    recorder.wait_for("/after")  # lines come in request order: the first one is in by now
    lines = [line for _, line in recorder.lines if "/x" in line]
    assert len(lines) == 1, recorder.lines
    (line,) = lines
    assert line.startswith("GET /x%0Afake%20line?token=***&key=***&Access_Token=***&a=%0A 401 ")
    assert "\n" not in line and "\r" not in line
    for secret in ("SECRET", "K2", "T3"):
        assert secret not in line


def test_a_long_target_and_a_hostile_cid_are_cut_and_escaped(
    access_lines: tuple[Recorder, str],
) -> None:
    recorder, url = access_lines
    long_path = "/" + "a" * 10_000
    assert httpx.get(f"{url}{long_path}?x=1&token=SECRET").status_code == 401
    recorder.wait_for("/aaaa")
    (line,) = [line for _, line in recorder.lines if "/aaaa" in line]
    method, target, status, _, cid = line.split(" ")
    assert (method, status, cid) == ("GET", "401", "cid=-")
    assert target.endswith(f"...(cut:{len(long_path) + len('?x=1&token=***')})")
    assert len(target) < 540 and "SECRET" not in line

    cid = "evil\ncid=forged\x1b[31m " + "c" * 200
    body = {"run_id": cid, "env": {"seed": 1}, "policy": {"config": {}}}
    assert httpx.post(f"{url}/rollout", json=body, headers={"X-API-Key": KEY}).status_code == 200
    recorder.wait_for("POST /rollout")
    (line,) = [line for _, line in recorder.lines if line.startswith("POST /rollout")]
    assert "\n" not in line and "\x1b" not in line
    logged = line.split(" cid=", 1)[1]
    assert logged.startswith("evil\\x0acid=forged\\x1b[31m\\x20ccc")
    assert logged.endswith(f"...(cut:{len(cid)})") and len(logged) <= 128 + 12
