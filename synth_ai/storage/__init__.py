"""Storage engines behind one small interface, chosen by a URL: SQLite (embedded default) and
PostgreSQL (the `postgres` extra), for the job event log and the trace store alike."""

from .database import (
    Connection,
    Database,
    StorageError,
    StorageOutage,
    StoreUnavailable,
)
from .opener import open_database
from .schema import Step, ensure_schema
from .url import DatabaseURL, DatabaseURLError, parse_database_url

__all__ = [
    "Connection",
    "Database",
    "DatabaseURL",
    "DatabaseURLError",
    "Step",
    "StorageError",
    "StorageOutage",
    "StoreUnavailable",
    "ensure_schema",
    "open_database",
    "parse_database_url",
]
