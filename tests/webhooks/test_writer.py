"""The writer thread: batching, durability on flush, surviving a failing store."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from webhooks import payloads
from webhooks.outbox.sqlite_store import SQLiteOutbox
from webhooks.payloads import Event, EventIds
from webhooks.writer import OutboxWriter

new_id = EventIds().next

URLS = ["https://a.example/hook"]


class FailingFirst:
    """A real SQLite outbox whose first `failures` appends fail, like a full disk or Redis down.

    Only the two methods the writer uses are needed.
    """

    def __init__(self, path: Path, failures: int) -> None:
        self.inner = SQLiteOutbox.open(path)
        self.failures = failures
        self.batches: list[int] = []
        self.thread_names: set[str] = set()

    def append(self, events: Sequence[Event], urls: Sequence[str]) -> None:
        self.thread_names.add(threading.current_thread().name)
        if self.failures:
            self.failures -= 1
            raise OSError("disk full")
        self.batches.append(len(events))
        self.inner.append(events, urls)

    def close(self) -> None:
        self.inner.close()


def chat(i: int) -> Callable[[], Event]:
    """What the emitter queues: the call that builds the event."""
    return partial(
        payloads.chat_push,
        event_id=new_id(),
        agent_id="a",
        role="user",
        message=f"m{i}",
        session_id="s",
        now=i,
    )


def depth(path: Path) -> int:
    store = SQLiteOutbox.open(path)
    try:
        return store.depth()
    finally:
        store.close()


async def test_flush_means_committed_and_writes_happen_off_the_loop(tmp_path: Path) -> None:
    store = FailingFirst(tmp_path / "o.db", failures=0)
    commits: list[None] = []
    writer = OutboxWriter(store, URLS, on_commit=lambda: commits.append(None))
    writer.start()
    batch = [chat(i) for i in range(1000)]
    for event in batch:
        writer.put(event)
    await writer.flush()
    assert writer.unwritten == 0 and commits
    assert depth(tmp_path / "o.db") == 1000
    # Events queued in one loop iteration share commits (up to MAX_BATCH each).
    assert store.batches == [512, 488]
    assert store.thread_names == {"webhook-outbox-writer"}
    await writer.aclose()


async def test_an_event_that_cannot_be_built_is_dropped_not_fatal(tmp_path: Path) -> None:
    store = FailingFirst(tmp_path / "o.db", failures=0)
    writer = OutboxWriter(store, URLS)
    writer.start()
    writer.put(
        partial(
            payloads.chat_push,
            event_id="x",
            agent_id="a",
            role="bad",
            message="m",
            session_id="s",
            now=1,
        )
    )
    writer.put(chat(2))
    await writer.flush()
    assert writer.unwritten == 0 and depth(tmp_path / "o.db") == 1
    await writer.aclose()


async def test_a_failing_store_is_retried_until_it_recovers(tmp_path: Path) -> None:
    store = FailingFirst(tmp_path / "o.db", failures=3)
    pauses: list[float] = []
    writer = OutboxWriter(store, URLS, pause=pauses.append)
    writer.start()
    writer.put(chat(1))
    writer.put(chat(2))
    await writer.flush()
    assert store.failures == 0 and depth(tmp_path / "o.db") == 2
    assert pauses == [0.1, 0.2, 0.4]  # backoff between attempts, kept in memory meanwhile
    await writer.aclose()


async def test_close_gives_up_on_a_dead_store_after_the_deadline(tmp_path: Path) -> None:
    store = FailingFirst(tmp_path / "o.db", failures=10**9)
    writer = OutboxWriter(store, URLS, pause=lambda _: None)
    writer.start()
    writer.put(chat(1))
    await writer.aclose(give_up_after=0.05)  # returns instead of hanging the job's shutdown
    await writer.flush()  # nothing left to wait for
    assert writer.unwritten == 1
    assert depth(tmp_path / "o.db") == 0
