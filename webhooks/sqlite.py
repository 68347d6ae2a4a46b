"""SQLite the way both of our stores use it: WAL, NORMAL sync, a busy timeout, explicit batches.

WAL lets readers and one writer proceed together across processes; other writers wait up to
the busy timeout. With `synchronous=NORMAL` a commit survives the process being killed (the
WAL sits in the OS page cache); only a power cut or kernel crash can lose the last commits.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUSY_TIMEOUT_S = 30.0


def connect(path: Path, schema: str) -> sqlite3.Connection:
    """Open (creating if needed) `path` in autocommit mode, with `schema` applied.

    The connection may move between threads; its owner must use it from one at a time.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(schema)
    return db


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
