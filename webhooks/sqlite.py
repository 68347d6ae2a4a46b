"""SQLite the way both of our stores use it: WAL, NORMAL sync, a busy timeout, explicit batches.

WAL lets readers and one writer proceed together across processes; other writers wait up to
the busy timeout. With `synchronous=NORMAL` a commit survives the process being killed (the
WAL sits in the OS page cache); only a power cut or kernel crash can lose the last commits.

The files hold message text (personal data), so a new database is created readable by its
owner only (0600; SQLite gives its -wal and -shm files the database file's mode), in a
directory created 0700. An existing file keeps the mode it has.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUSY_TIMEOUT_S = 30.0
FILE_MODE = 0o600
DIR_MODE = 0o700


def connect(path: Path, schema: str) -> sqlite3.Connection:
    """Open (creating if needed) `path` in autocommit mode, with `schema` applied.

    The connection may move between threads; its owner must use it from one at a time.
    """
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    # Create the file ourselves, owner-only, before SQLite would create it 0644.
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE))
    db = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(schema)
    return db


def add_column(db: sqlite3.Connection, table: str, column: str, definition: str) -> None:
    """Add `column` to a table an older version created without it (a no-op when present)."""
    present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    if column not in present:
        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction around a batch of statements, rolled back on error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
