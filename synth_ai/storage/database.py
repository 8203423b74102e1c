"""The small interface both engines offer the job log and the trace store.

A `Connection` speaks one SQL dialect to its callers: `?` placeholders, explicit transactions
with savepoints, rows as dicts. Each engine maps that onto its driver (sqlite3, psycopg 3), and
fills the few words of DDL that differ (`{ID}`, `{INT}`, `{REAL}`, `{BLOB}`).

Errors are one vocabulary too: whatever a driver raises leaves the engine as `StorageError`
(`StorageOutage` when the database itself is failing), so no caller names an engine's
exceptions and a handler written against SQLite also holds on PostgreSQL.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

from .url import DatabaseURL


class StoreUnavailable(Exception):
    """A store cannot be opened: its driver is missing, its server does not answer, or its
    file cannot be made. The message names the store (any password masked)."""


class StorageError(Exception):
    """The database refused a statement (a constraint, a bad value) or failed; the driver's
    own exception is the `__cause__`."""


class StorageOutage(StorageError):
    """The database itself is failing (locked, full, read-only, a timeout, the server or the
    connection lost), not one statement."""


@contextmanager
def engine_errors(errors: type[BaseException], outages: type[BaseException]) -> Iterator[None]:
    """Within: a driver's `errors` are raised as `StorageError`, its `outages` as
    `StorageOutage`."""
    try:
        yield
    except outages as exc:
        raise StorageOutage(_describe(exc)) from exc
    except errors as exc:
        raise StorageError(_describe(exc)) from exc


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Connection(ABC):
    """One connection, in autocommit mode until `transaction` opens one."""

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    @abstractmethod
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    @abstractmethod
    def begin(self) -> None:
        """Start a transaction that takes the write lock it needs at once."""

    @abstractmethod
    def lock(self, name: str) -> None:
        """Within a transaction: serialise with every other connection locking `name`."""

    @abstractmethod
    def close(self) -> None: ...

    def notify(self, channel: str, payload: str) -> None:  # noqa: B027  (one process: no one)
        """Within a transaction: tell other processes' `notifications` at commit."""

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.begin()
        try:
            yield
        except BaseException:
            self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Undo only this block when it raises (the exception still propagates)."""
        self.execute("SAVEPOINT block")
        try:
            yield
        except BaseException:
            self.execute("ROLLBACK TO SAVEPOINT block")
            self.execute("RELEASE SAVEPOINT block")
            raise
        self.execute("RELEASE SAVEPOINT block")


class Database(ABC):
    """One store's engine: connections, the DDL words, and what a refused statement raises."""

    url: DatabaseURL
    ddl_words: ClassVar[Mapping[str, str]]
    errors: ClassVar[tuple[type[BaseException], ...]] = (StorageError,)
    """What a statement raises when the database refuses it or fails, on every engine."""
    outages: ClassVar[tuple[type[BaseException], ...]] = (StorageOutage,)
    """The part of `errors` that means the database itself is failing."""

    @abstractmethod
    def connect(self) -> Connection:
        """A dedicated connection (a writer's, a listener's); the caller closes it."""

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for a few reads, given back afterwards."""
        connection = self.connect()
        try:
            yield connection
        finally:
            connection.close()

    shared = False
    """Whether other processes may write this store too (they announce commits through
    `notifications`)."""

    def notifications(self, channel: str, stop: threading.Event) -> Iterator[str | None]:
        """Payloads sent to `channel` by any process's `notify`, as they commit; None after
        each (re)connection, when some may have been missed. Ends once `stop` is set."""
        raise NotImplementedError(f"{self.url.engine} stores do not announce commits")

    def prepare(self) -> None:  # noqa: B027  (most engines need none)
        """Engine set-up before the first schema step (make the file's folder, WAL)."""

    @abstractmethod
    def reserve_ids(self, connection: Connection, table: str, count: int) -> list[int]:
        """`count` unused ids for the `{ID}` column of `table`, within the caller's
        transaction."""

    def close(self) -> None:  # noqa: B027  (most engines pool nothing)
        """Release pooled connections."""

    def ddl(self, text: str) -> str:
        return text.format_map(self.ddl_words)
