"""Per-event-type handlers for the receiver.

    router = Router()

    @router.on("chat.push")
    async def save_message(event: ReceivedEvent) -> None:
        ...

Handlers may be `async def` (run on the event loop) or plain functions (run in a thread, so
they may block). They run after the sender got its 2xx, at least once per event: a handler
that raises is dead-lettered and retried, and a crash can re-run a finished one, so make them
idempotent (the event's `key` is a good idempotency key). `"*"` handlers see every event.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

ALL_EVENTS = "*"


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """A verified, deduplicated event as handlers see it."""

    key: str  # webhook-id, or "sha256:<hex of the body>" for senders without one
    event_type: str
    payload: dict[str, Any]  # the whole envelope: agent_id, event_type, data, timestamp
    received_at: float

    @property
    def agent_id(self) -> str | None:
        value = self.payload.get("agent_id")
        return value if isinstance(value, str) else None

    @property
    def data(self) -> dict[str, Any]:
        value = self.payload.get("data")
        return value if isinstance(value, dict) else {}


Handler = Callable[[ReceivedEvent], Awaitable[None] | None]
H = TypeVar("H", bound=Handler)


@dataclass(frozen=True, slots=True)
class NamedHandler:
    name: str  # module.qualname: how dead letters remember which handler failed
    fn: Handler
    is_async: bool


class Router:
    def __init__(self) -> None:
        self._by_type: dict[str, list[NamedHandler]] = {}
        self._by_name: dict[str, NamedHandler] = {}

    def on(self, event_type: str) -> Callable[[H], H]:
        """Decorator: run the function for every event of `event_type` (or `"*"`)."""

        def register(fn: H) -> H:
            self.add(event_type, fn)
            return fn

        return register

    def add(self, event_type: str, fn: Handler) -> None:
        name = f"{fn.__module__}.{getattr(fn, '__qualname__', repr(fn))}"
        known = self._by_name.get(name)
        if known is not None and known.fn is not fn:
            raise ValueError(f"two different handlers are both named {name}")
        handler = known or NamedHandler(name, fn, inspect.iscoroutinefunction(fn))
        self._by_name[name] = handler
        self._by_type.setdefault(event_type, []).append(handler)

    def handlers_for(self, event_type: str) -> list[NamedHandler]:
        return [*self._by_type.get(event_type, ()), *self._by_type.get(ALL_EVENTS, ())]

    def find(self, name: str) -> NamedHandler | None:
        return self._by_name.get(name)


def load_router(spec: str) -> Router:
    """The Router named by `module:attribute` (raises ValueError when it is not one)."""
    module_name, _, attribute = spec.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load {spec}: {exc}") from exc
    if not isinstance(target, Router):
        raise ValueError(f"{spec} is a {type(target).__name__}, not a webhook_receiver.Router")
    return target
