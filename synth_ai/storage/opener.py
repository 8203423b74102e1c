"""Opening a store by its location: the one place that knows which engine serves which URL.

It sits above both engines (which import the interface in `database.py`), so the interface
never imports the engines back; each engine's driver is imported only when it is chosen.
"""

from __future__ import annotations

import os

from .database import Database
from .url import DatabaseURL, parse_database_url


def open_database(url: DatabaseURL | str | os.PathLike[str]) -> Database:
    """The engine for a location (a `DatabaseURL`, a URL string or a path)."""
    location = url if isinstance(url, DatabaseURL) else parse_database_url(url)
    if location.engine == "postgresql":
        from .postgres import PostgresDatabase

        return PostgresDatabase(location)
    from .sqlite import SqliteDatabase

    return SqliteDatabase(location)
