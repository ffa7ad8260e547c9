"""Which store an index lives in, from one spec string: a folder (FAISS, the default) or a PostgreSQL URL.

    open_store("index")                                  # FaissStore: the embedded index folder
    open_store("postgresql://user@host/db")              # PgStore: the index named "default"
    open_store("postgresql://user@host/db#uploads-1a2b") # PgStore: another index in the same database
    store_spec(None, DEFAULT_INDEX_DIR)                  # $INDEXER_STORE when set, else the folder

Only the choice lives here: psycopg is imported only when a PostgreSQL spec is opened.
"""

from __future__ import annotations

import os
from pathlib import Path

from indexer.stores.base import Store
from indexer.stores.disk import FaissStore

STORE_ENV = "INDEXER_STORE"
_URL_SCHEMES = ("postgresql://", "postgres://")


def is_database_url(spec: str | Path) -> bool:
    return isinstance(spec, str) and spec.startswith(_URL_SCHEMES)


def store_spec(explicit: str | Path | None, default: Path) -> str | Path:
    """The spec asked for, else $INDEXER_STORE, else `default`."""
    return explicit or os.environ.get(STORE_ENV, "").strip() or default


def open_store(spec: str | Path) -> Store:
    if isinstance(spec, Path) and str(spec).startswith(tuple(s[:-1] for s in _URL_SCHEMES)):
        raise TypeError(f"{spec}: pass a database URL as a str; Path() has already merged its '//'")
    if is_database_url(spec):
        from indexer.stores.postgres import PgStore

        return PgStore(str(spec))
    return FaissStore(Path(spec))
