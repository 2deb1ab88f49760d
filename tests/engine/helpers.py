"""Test helpers: an engine wired to the in-memory broker, with a fake clock."""

from __future__ import annotations

from typing import Any

from amqp_core import NEED_DATA, Engine, EngineConfig, Event
from amqp_core.testing.peer import FakeBroker


class Pair:
    """A client Engine and a FakeBroker joined by an in-memory link."""

    def __init__(
        self, config: EngineConfig | None = None, broker: FakeBroker | None = None, **kwargs: Any
    ) -> None:
        self.client = Engine(config if config is not None else EngineConfig(**kwargs))
        self.broker = broker if broker is not None else FakeBroker()
        self.now = 0.0
        self.eof_sent = False
        self.wire: list[bytes] = []

    def pump(self) -> list[Event]:
        """Move bytes both ways until both sides are quiet; return the client's events."""
        events: list[Event] = []
        while True:
            out = self.client.data_to_send()
            if out:
                self.wire.append(out)
                self.broker.receive_data(out)
            back = self.broker.data_to_send()
            if back:
                self.client.receive_data(back, self.now)
            if self.broker.closed and not self.eof_sent and not back:
                self.eof_sent = True
                self.client.receive_data(b"", self.now)
            events.extend(self.drain())
            if not out and not back:
                return events

    def drain(self) -> list[Event]:
        events: list[Event] = []
        while (event := self.client.next_event()) is not NEED_DATA:
            assert isinstance(event, Event)
            events.append(event)
        return events

    def open(self) -> list[Event]:
        events = self.pump()
        assert self.client.is_open, events
        return events

    def channel(self) -> int:
        channel_id = self.client.open_channel()
        self.pump()
        return channel_id


def types(events: list[Event]) -> list[str]:
    return [type(event).__name__ for event in events]
