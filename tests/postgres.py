"""A real PostgreSQL for the tests (DESIGN 9): a fresh database per test on the server named by
`SYNTH_TEST_POSTGRES_URL` (default the project machines' `127.0.0.1:5432`, trust auth).

Outside CI the PostgreSQL tests skip, saying why, when no server answers; with
`SYNTH_REQUIRE_POSTGRES=1` (set by `.ci/run`) they fail instead, so CI always runs them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def admin_url() -> str:
    return os.environ.get("SYNTH_TEST_POSTGRES_URL") or DEFAULT_URL


@cache
def unavailable() -> str | None:
    """Why PostgreSQL tests cannot run here, or None when they can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (the postgres extra)"
    try:  # asked once per run, and every PostgreSQL test follows the answer: not hasty
        with psycopg.connect(admin_url(), connect_timeout=15) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"no PostgreSQL at {urlsplit(admin_url()).netloc}: {str(exc).strip()[:200]}"
    return None


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@contextmanager
def fresh_database() -> Iterator[str]:
    """The URL of a new, empty database, dropped afterwards (skips or fails the test when no
    server answers, as the module says)."""
    reason = unavailable()
    if reason is not None:
        if os.environ.get("SYNTH_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required here: {reason}")
        pytest.skip(reason)
    import psycopg

    name = f"synth_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(admin_url(), name)
    finally:
        with psycopg.connect(admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def store_for(engine: str, folder: Path) -> Iterator[str]:
    """A fresh store of one engine: a SQLite file in `folder`, or a new PostgreSQL database."""
    if engine == "sqlite":
        yield str(folder / "store.db")
        return
    with fresh_database() as url:
        yield url


ENGINES = ["sqlite", "postgresql"]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each engine in turn: a SQLite file, then a fresh PostgreSQL database."""
    with store_for(request.param, tmp_path) as url:
        yield url


@pytest.fixture(scope="module", params=ENGINES)
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """As `database_url`, one per test module and engine (for a module's shared server)."""
    with store_for(request.param, tmp_path_factory.mktemp("store")) as url:
        yield url
