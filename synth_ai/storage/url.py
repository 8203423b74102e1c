"""Where a store lives, from one string: a path or `sqlite:///path` for SQLite, `postgresql://`
for PostgreSQL. Anything else that looks like a URL is refused, so a typo never becomes a file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
POSTGRES_SCHEMES = {"postgresql", "postgres", "postgresql+psycopg"}


class DatabaseURLError(ValueError):
    """A store location that names no engine this project has."""


@dataclass(frozen=True, slots=True)
class DatabaseURL:
    engine: Literal["sqlite", "postgresql"]
    path: Path | None = None
    """The SQLite file (engine `sqlite`)."""
    conninfo: str | None = None
    """What libpq is given (engine `postgresql`): the URL with its scheme made `postgresql`."""

    def __str__(self) -> str:
        """Safe to print and to answer: a password in the URL is masked."""
        if self.path is not None:
            return str(self.path)
        assert self.conninfo is not None
        parts = urlsplit(self.conninfo)
        if parts.password is None:
            return self.conninfo
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{parts.username or ''}:***@{host}"
        if parts.port is not None:
            netloc += f":{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))


def parse_database_url(value: str | os.PathLike[str]) -> DatabaseURL:
    """`traces/x.db`, `sqlite:///traces/x.db` (relative), `sqlite:////abs/x.db`, or
    `postgresql://user@host:5432/db`; raises `DatabaseURLError` for any other scheme."""
    if not isinstance(value, str):
        return DatabaseURL("sqlite", path=Path(value))
    text = value.strip()
    if not text:
        raise DatabaseURLError("a database location is empty")
    match = SCHEME.match(text)
    if match is None:
        return DatabaseURL("sqlite", path=Path(text))
    scheme = match.group(1).lower()
    if scheme == "sqlite":
        path = text[match.end() :]
        if not path.startswith("/") or path == "/":
            raise DatabaseURLError(
                f"a SQLite URL is sqlite:///relative/file.db or sqlite:////absolute/file.db, "
                f"not {text[:80]!r}"
            )
        return DatabaseURL("sqlite", path=Path(path[1:]))
    if scheme in POSTGRES_SCHEMES:
        conninfo = "postgresql" + text[match.end(1) :]
        return DatabaseURL("postgresql", conninfo=conninfo)
    raise DatabaseURLError(
        f"unknown database scheme {scheme[:40]!r}: use a file path, sqlite:///path "
        "or postgresql://user@host/db"
    )
