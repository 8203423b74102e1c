"""Versioned schemas: each store names its steps, and a database records how many it has run.

Steps run in order, each at most once per database, under a lock so that many processes
opening one database at once agree. A step is SQL (its `{ID}`-style words filled per engine) or
a function of the connection, for upgrades that must look before they change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .database import Connection, Database, StoreUnavailable

Step = str | Callable[[Connection, Database], None]

VERSIONS = """
CREATE TABLE IF NOT EXISTS synth_schema (
    component TEXT PRIMARY KEY,
    version {INT} NOT NULL
)
"""


def ensure_schema(database: Database, component: str, steps: Sequence[Step]) -> int:
    """Run the steps `component` has not run yet on this database; answers its version.

    Raises `StoreUnavailable` when the database cannot be reached or made.
    """
    failures: tuple[type[BaseException], ...] = (OSError, *database.errors)
    try:
        return _run_steps(database, component, steps)
    except failures as exc:
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise StoreUnavailable(f"cannot open {database.url}: {reason}") from exc


def _run_steps(database: Database, component: str, steps: Sequence[Step]) -> int:
    database.prepare()
    connection = database.connect()
    try:
        with connection.transaction():
            connection.lock(f"synth_schema:{component}")
            connection.execute(database.ddl(VERSIONS))
            rows = connection.query(
                "SELECT version FROM synth_schema WHERE component = ?", [component]
            )
            done = rows[0]["version"] if rows else 0
            for step in steps[done:]:
                if isinstance(step, str):
                    for statement in database.ddl(step).split(";"):
                        if statement.strip():
                            connection.execute(statement)
                else:
                    step(connection, database)
            if len(steps) > done:
                connection.execute(
                    "INSERT INTO synth_schema (component, version) VALUES (?, ?) "
                    "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                    [component, len(steps)],
                )
        return len(steps)
    finally:
        connection.close()
