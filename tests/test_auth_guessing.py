"""Keys cannot be guessed fast: a few keys per request, and failed checks limited per client
address (429 with Retry-After) on every server that checks keys, sign-in included.

Servers run on loopback; a second client address is 127.0.0.2, which Linux routes to the
same loopback interface.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from synth_ai.jobs import create_jobs_app
from synth_ai.task import create_task_app, serve_in_background
from synth_ai.task.attempts import (
    FAILURE_WINDOW_S,
    MAX_FAILED_CHECKS,
    FailedAttempts,
)
from synth_ai.task.auth import MAX_PRESENTED_KEYS
from synth_ai.ui.traces_app import create_traces_app

from .conftest import KEY, make_config

SERVERS: dict[str, tuple[Callable[[Path], Starlette], str]] = {
    "task_app": (lambda folder: create_task_app(make_config()), "/info"),
    "jobs": (lambda folder: create_jobs_app(folder / "jobs.db"), "/api/jobs"),
    "traces": (lambda folder: create_traces_app(folder / "traces.db"), "/ui/api/session"),
}


@contextmanager
def served(kind: str, folder: Path) -> Iterator[tuple[str, str]]:
    build, protected = SERVERS[kind]
    with serve_in_background(build(folder)) as url:
        yield url, protected


def from_address(address: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address))


def assert_limited(answer: httpx.Response) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.json()["detail"]["error"]["code"] == "too_many_failed_attempts"
    assert 1 <= int(answer.headers["retry-after"]) <= FAILURE_WINDOW_S


@pytest.mark.parametrize("kind", SERVERS)
def test_600_wrong_keys_meet_429_and_other_addresses_are_untouched(
    kind: str, tmp_path: Path
) -> None:
    with served(kind, tmp_path) as (url, path), from_address("127.0.0.1") as client:
        answers = [
            client.get(f"{url}{path}", headers={"X-API-Key": f"guess-{n}"}) for n in range(600)
        ]
        assert {a.status_code for a in answers[:MAX_FAILED_CHECKS]} == {401}
        for answer in answers[MAX_FAILED_CHECKS:]:
            assert_limited(answer)
        # while blocked, even the right key is not tested: the answer tells nothing about it
        assert_limited(client.get(f"{url}{path}", headers={"X-API-Key": KEY}))
        with from_address("127.0.0.2") as other:
            assert other.get(f"{url}{path}", headers={"X-API-Key": KEY}).status_code == 200
            assert other.get(f"{url}{path}", headers={"X-API-Key": "guess"}).status_code == 401


@pytest.mark.parametrize("kind", ["jobs", "traces"])
def test_sign_in_guesses_count_with_header_guesses(kind: str, tmp_path: Path) -> None:
    with served(kind, tmp_path) as (url, path), from_address("127.0.0.1") as client:
        half = MAX_FAILED_CHECKS // 2
        for n in range(half):
            refused = client.post(f"{url}/ui/api/signin", json={"key": f"guess-{n}"})
            assert refused.json()["detail"]["error"]["code"] == "sign_in_refused"
            refused = client.post(f"{url}/ui/api/signin", json={"login_token": f"forged-{n}"})
            assert refused.json()["detail"]["error"]["code"] == "sign_in_refused"
        assert_limited(client.get(f"{url}{path}", headers={"X-API-Key": "one more"}))
        assert_limited(client.post(f"{url}/ui/api/signin", json={"key": KEY}))
        with from_address("127.0.0.2") as other:
            assert other.post(f"{url}/ui/api/signin", json={"key": KEY}).status_code == 200


def test_key_guesses_on_routes_that_check_keys_themselves_count(tmp_path: Path) -> None:
    """The jobs server's streams and downloads are public to the auth layer (a stream token
    also opens them) and check keys in the route: guessing there counts the same."""
    with served("jobs", tmp_path) as (url, _), from_address("127.0.0.1") as client:
        job_id = client.post(f"{url}/api/jobs", json={}, headers={"X-API-Key": KEY}).json()
        download = f"{url}/api/jobs/{job_id['job_id']}/artifacts/results.jsonl"
        for n in range(MAX_FAILED_CHECKS):
            assert client.get(download, headers={"X-API-Key": f"guess-{n}"}).status_code == 401
        assert_limited(client.get(download, headers={"X-API-Key": KEY}))
        assert_limited(
            client.get(f"{url}/api/jobs/{job_id['job_id']}/stream", headers={"X-API-Key": KEY})
        )


def test_a_success_costs_nothing_and_resets_nothing(tmp_path: Path) -> None:
    with served("task_app", tmp_path) as (url, path), from_address("127.0.0.1") as client:
        wrong, right = {"X-API-Key": "guess"}, {"X-API-Key": KEY}
        for _ in range(MAX_FAILED_CHECKS - 1):
            assert client.get(f"{url}{path}", headers=wrong).status_code == 401
        for _ in range(200):
            assert client.get(f"{url}{path}", headers=right).status_code == 200
        assert client.get(f"{url}{path}", headers=wrong).status_code == 401
        assert_limited(client.get(f"{url}{path}", headers=right))


def test_no_key_at_all_is_not_a_guess(tmp_path: Path) -> None:
    """A page loading before its user signs in presents nothing: that must not lock out an
    office behind one address."""
    with served("jobs", tmp_path) as (url, path), from_address("127.0.0.1") as client:
        for _ in range(3 * MAX_FAILED_CHECKS):
            assert client.get(f"{url}{path}").status_code == 401
        assert client.get(f"{url}{path}", headers={"X-API-Key": KEY}).status_code == 200


def test_the_address_is_the_one_uvicorn_trusts(tmp_path: Path) -> None:
    """uvicorn takes X-Forwarded-For only from the proxies it trusts (127.0.0.1 by default,
    `--forwarded-allow-ips`); a client elsewhere cannot pick its address with it."""
    with served("task_app", tmp_path) as (url, path), from_address("127.0.0.2") as client:
        for n in range(MAX_FAILED_CHECKS):
            forged = {"X-API-Key": "guess", "X-Forwarded-For": f"198.51.100.{n}"}
            assert client.get(f"{url}{path}", headers=forged).status_code == 401
        fresh = {"X-API-Key": KEY, "X-Forwarded-For": "198.51.100.200"}
        assert_limited(client.get(f"{url}{path}", headers=fresh))
        with from_address("127.0.0.1") as proxy:
            forwarded = {"X-API-Key": "guess", "X-Forwarded-For": "203.0.113.7"}
            for _ in range(MAX_FAILED_CHECKS):
                assert proxy.get(f"{url}{path}", headers=forwarded).status_code == 401
            behind = {"X-API-Key": KEY, "X-Forwarded-For": "203.0.113.8"}
            assert proxy.get(f"{url}{path}", headers=behind).status_code == 200
            forwarded = {"X-API-Key": KEY, "X-Forwarded-For": "203.0.113.7"}
            assert_limited(proxy.get(f"{url}{path}", headers=forwarded))


# --- a few keys per request -------------------------------------------------------------------


def candidates(count: int) -> list[str]:
    """`count` keys, the right one last."""
    return [f"guess-{n}" for n in range(count - 1)] + [KEY]


@pytest.mark.parametrize("kind", SERVERS)
def test_201_candidates_in_one_header_are_refused_untested(kind: str, tmp_path: Path) -> None:
    with served(kind, tmp_path) as (url, path):
        for name in ("X-API-Key", "X-API-Keys"):
            answer = httpx.get(f"{url}{path}", headers={name: ",".join(candidates(201))})
            assert answer.status_code == 401
            assert answer.json()["detail"]["error"]["code"] == "too_many_keys"
            assert str(MAX_PRESENTED_KEYS) in answer.json()["detail"]["error"]["message"]
            assert KEY not in answer.text


@pytest.mark.parametrize("kind", SERVERS)
def test_a_few_keys_across_the_headers_still_roll_over(kind: str, tmp_path: Path) -> None:
    """Rotation needs the old and the new key together; the limit counts every header."""
    with served(kind, tmp_path) as (url, path):
        keys = candidates(MAX_PRESENTED_KEYS)
        spread = {
            "X-API-Key": keys[0],
            "X-API-Keys": ",".join(keys[1:-1]),
            "Authorization": f"Bearer {keys[-1]}",
        }
        assert httpx.get(f"{url}{path}", headers=spread).status_code == 200
        spread["X-API-Key"] = f"{keys[0]},one-more"
        answer = httpx.get(f"{url}{path}", headers=spread)
        assert answer.json()["detail"]["error"]["code"] == "too_many_keys"


@pytest.mark.parametrize("kind", ["jobs", "traces"])
def test_a_sign_in_key_holding_many_candidates_is_refused(kind: str, tmp_path: Path) -> None:
    with served(kind, tmp_path) as (url, _):
        answer = httpx.post(f"{url}/ui/api/signin", json={"key": ",".join(candidates(201))})
        assert answer.status_code == 401
        assert answer.json()["detail"]["error"]["code"] == "too_many_keys"
        assert "set-cookie" not in answer.headers


# --- the record itself ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_window_ends_and_retry_after_counts_down() -> None:
    clock = Clock()
    attempts = FailedAttempts(limit=3, window_s=60, clock=clock)
    for _ in range(2):
        attempts.fail("a")
    assert attempts.retry_after("a") is None
    attempts.fail("a")
    assert attempts.retry_after("a") == 60
    clock.now += 59.5
    assert attempts.retry_after("a") == 1
    clock.now += 0.5
    assert attempts.retry_after("a") is None
    attempts.fail("a")  # a new window: one failure in it
    assert attempts.retry_after("a") is None


def test_the_record_of_addresses_is_bounded() -> None:
    """An attacker with many addresses cannot grow it: the least recently failed go first."""
    attempts = FailedAttempts(limit=2, max_addresses=100)
    for n in range(50_000):
        attempts.fail(f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}")
    assert len(attempts.windows) == 100
    attempts.fail("10.0.195.79")  # the last address, its second failure
    assert attempts.retry_after("10.0.195.79") is not None
    assert attempts.retry_after("10.0.0.0") is None
