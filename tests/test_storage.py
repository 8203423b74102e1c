"""Store locations parse to exactly one engine, and both engines keep the same small promises."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synth_ai.storage import (
    DatabaseURLError,
    StorageError,
    StorageOutage,
    ensure_schema,
    open_database,
    parse_database_url,
)


def test_paths_and_sqlite_urls_name_files() -> None:
    assert parse_database_url("traces/jobs.db").path == Path("traces/jobs.db")
    assert parse_database_url(Path("/tmp/x.db")).path == Path("/tmp/x.db")
    assert parse_database_url("sqlite:///traces/jobs.db").path == Path("traces/jobs.db")
    assert parse_database_url("sqlite:////tmp/jobs.db").path == Path("/tmp/jobs.db")
    assert parse_database_url("file:name.db").path == Path("file:name.db")  # no "//": a path


def test_postgres_urls_keep_their_conninfo_and_mask_the_password() -> None:
    url = parse_database_url("postgres://app:s3cr3t@db.internal:5433/jobs?sslmode=require")
    assert url.engine == "postgresql"
    assert url.conninfo == "postgresql://app:s3cr3t@db.internal:5433/jobs?sslmode=require"
    assert str(url) == "postgresql://app:***@db.internal:5433/jobs?sslmode=require"


def test_postgres_without_its_extra_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from synth_ai.storage.postgres import PostgresUnavailable

    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if the extra were not installed
    with pytest.raises(PostgresUnavailable, match=r"synth-ai\[postgres\]"):
        open_database("postgresql://u@localhost/db")


@pytest.mark.parametrize(
    "text", ["mysql://root@localhost/db", "http://example.com/x.db", "sqlite://relative.db", ""]
)
def test_unknown_or_malformed_locations_are_refused(text: str) -> None:
    with pytest.raises(DatabaseURLError):
        parse_database_url(text)


@given(
    scheme=st.from_regex(r"[a-z][a-z0-9+.-]{0,12}", fullmatch=True).filter(
        lambda s: s not in {"sqlite", "postgres", "postgresql", "postgresql+psycopg"}
    ),
    rest=st.text(max_size=40),
)
def test_no_other_scheme_ever_becomes_a_file(scheme: str, rest: str) -> None:
    with pytest.raises(DatabaseURLError):
        parse_database_url(f"{scheme}://{rest}")


@given(password=st.text(st.characters(categories=["L", "N"]), min_size=4, max_size=30))
def test_a_password_never_shows_in_the_printed_url(password: str) -> None:
    url = parse_database_url(f"postgresql://user:{password}@host/db")
    assert str(url) == "postgresql://user:***@host/db"


STEPS = [
    "CREATE TABLE things (id {ID}, name TEXT NOT NULL, weight {REAL}, size {INT})",
    "ALTER TABLE things ADD COLUMN colour TEXT",
]


def test_schema_steps_run_once_each_and_upgrade_in_place(database_url: str) -> None:
    database = open_database(database_url)
    try:
        assert ensure_schema(database, "things", STEPS[:1]) == 1
        assert ensure_schema(database, "things", STEPS[:1]) == 1  # nothing run twice
        assert ensure_schema(database, "things", STEPS) == 2
        connection = database.connect()
        try:
            with connection.transaction():
                ids = database.reserve_ids(connection, "things", 3)
                connection.executemany(
                    "INSERT INTO things (id, name, weight, size, colour) VALUES (?, ?, ?, ?, ?)",
                    [(i, f"n{i}", 0.1, 2**62, "red") for i in ids],
                )
            rows = connection.query("SELECT * FROM things ORDER BY id")
        finally:
            connection.close()
        assert [row["id"] for row in rows] == ids
        assert rows[0]["weight"] == 0.1 and rows[0]["size"] == 2**62  # 64-bit, double
    finally:
        database.close()


def _open_at_once(url: str, openers: int = 6) -> list[BaseException]:
    """What `openers` threads opening `url` and ensuring its schema at once raised."""
    errors: list[BaseException] = []

    def open_one() -> None:
        database = open_database(url)
        try:
            ensure_schema(database, "things", STEPS)
        except BaseException as exc:
            errors.append(exc)
        finally:
            database.close()

    threads = [threading.Thread(target=open_one) for _ in range(openers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_many_openers_at_once_agree_on_the_schema(database_url: str) -> None:
    assert _open_at_once(database_url) == []


def test_openers_racing_on_new_sqlite_files_all_get_in(tmp_path: Path) -> None:
    """Two openers switching a new file to WAL at once: SQLite refuses one without waiting
    (about one round in fifteen here before the switch was retried)."""
    for round_ in range(60):
        assert _open_at_once(str(tmp_path / f"store-{round_}.db")) == [], f"round {round_}"


def test_a_refused_statement_in_a_savepoint_undoes_only_itself(database_url: str) -> None:
    database = open_database(database_url)
    ensure_schema(database, "things", STEPS)
    connection = database.connect()
    try:
        with connection.transaction():
            connection.execute("INSERT INTO things (name) VALUES ('kept')")
            with pytest.raises(database.errors), connection.savepoint():
                connection.execute("INSERT INTO things (name) VALUES (NULL)")
        names = [row["name"] for row in connection.query("SELECT name FROM things")]
    finally:
        connection.close()
        database.close()
    assert names == ["kept"]


def test_both_engines_speak_one_error_vocabulary(database_url: str) -> None:
    """A refused statement is a `StorageError` on either engine (the driver's own exception
    its cause), so no caller names sqlite3's or psycopg's; the connection goes on working."""
    database = open_database(database_url)
    ensure_schema(database, "things", STEPS)
    connection = database.connect()
    try:
        with pytest.raises(StorageError) as refused:
            connection.execute("INSERT INTO things (name) VALUES (NULL)")
        assert not isinstance(refused.value, StorageOutage)
        assert type(refused.value.__cause__).__module__.partition(".")[0] in ("sqlite3", "psycopg")
        connection.execute("INSERT INTO things (name) VALUES ('after')")
        assert connection.query("SELECT name FROM things") == [{"name": "after"}]
    finally:
        connection.close()
        database.close()


def test_reserved_ids_never_collide_across_writers(postgres_url: str) -> None:
    database = open_database(postgres_url)
    ensure_schema(database, "things", STEPS)
    seen: list[int] = []

    def reserve() -> None:
        connection = database.connect()
        try:
            for _ in range(20):
                with connection.transaction():
                    seen.extend(database.reserve_ids(connection, "things", 5))
        finally:
            connection.close()

    threads = [threading.Thread(target=reserve) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    database.close()
    assert len(seen) == len(set(seen)) == 400
