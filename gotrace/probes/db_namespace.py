"""db.namespace: the database a call went to, by its name as the driver keeps it, or out of the
data source name the program opened the database with. A data source name may hold a password:
only the database's name is ever taken from it, and nothing of it is kept but that."""

from __future__ import annotations

import urllib.parse

from gotrace.procfs import read_memory

SOURCE_NAME = 1  # bpf/db_call.h DB_SOURCE_NAME: the database's name itself
SOURCE_DSN = 2  # DB_SOURCE_DSN: a data source name holding it
SOURCE_INDEX = 3  # DB_SOURCE_INDEX: a numbered database (Redis's), the number as the length
MAX_SOURCE = 4096  # longer is not a data source name
MAX_SOURCES = 1024  # distinct ones remembered; then forgotten all at once
_names: dict[tuple[int, int, int, int, str], str | None] = {}


def namespace(pid: int, kind: int, address: int, length: int, system: str) -> str | None:
    """The database's name, read from process pid once per distinct source."""
    if kind == SOURCE_INDEX:
        return str(length) if 0 <= length < 1 << 32 else None
    if kind not in (SOURCE_NAME, SOURCE_DSN) or not address or not 0 < length <= MAX_SOURCE:
        return None
    key = (pid, kind, address, length, system)
    if key in _names:
        return _names[key]
    if len(_names) >= MAX_SOURCES:
        _names.clear()
    data = read_memory(pid, address, length)
    source = data.decode("utf-8", "replace") if data is not None else ""
    found = _names[key] = (source or None) if kind == SOURCE_NAME else dsn_database(source,
                                                                                     system)
    return found


def dsn_database(dsn: str, system: str) -> str | None:
    """The database a data source name names: a URL's path ('postgres://u:pw@h/db'), a
    'dbname=' setting (libpq's key=value form), MySQL's '.../db?...', SQLite's file."""
    if system == "sqlite":
        path = dsn.removeprefix("file:").partition("?")[0]
        return path or None
    if "://" in dsn:
        path = urllib.parse.urlsplit(dsn).path.lstrip("/")
        return urllib.parse.unquote(path) or None
    if system == "postgresql":
        for setting in dsn.split():
            key, _, value = setting.partition("=")
            if key == "dbname":
                return value.strip("'") or None
        return None
    if system == "mysql" and "/" in dsn:
        return dsn.rpartition("/")[2].partition("?")[0] or None
    return None
