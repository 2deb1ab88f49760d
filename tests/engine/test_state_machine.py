"""A client engine and the in-memory broker, driven by hypothesis through random histories.

Random commands, random chunkings of the broker's bytes and a fake clock. Invariants: no
exception but the documented ones, every publish confirmed exactly once, no message lost or
duplicated, heartbeats sent on time.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from amqp_core import (
    NEED_DATA,
    ChannelClosed,
    ChannelOpened,
    ChannelState,
    ConnectionClosed,
    Engine,
    EngineConfig,
    MessageDelivered,
    PublishAcked,
    PublishNacked,
    spec,
)
from amqp_core.exceptions import AMQPHeartbeatTimeout
from amqp_core.testing.peer import FakeBroker

HEARTBEAT = 10


class EnginePair(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.broker = FakeBroker(heartbeat=HEARTBEAT, frame_max=4096, confirm_batch=2)
        self.client = Engine(EngineConfig(frame_max=4096))
        self.now = 0.0
        self.last_sent = 0.0
        self.outstanding: dict[int, set[int]] = {}
        self.published: set[bytes] = set()
        self.delivered: set[bytes] = set()
        self.counter = 0
        self.closed: ConnectionClosed | None = None
        self.pending: bytes = b""
        self.flush([])
        assert self.client.is_open

    # -------------------------------------------------------------- plumbing

    def flush(self, cuts: list[int]) -> None:
        for _ in range(50):
            out = self.client.data_to_send()
            if out:
                self.last_sent = self.now
                self.broker.receive_data(out)
            back = self.pending + self.broker.data_to_send()
            self.pending = b""
            if not out and not back:
                break
            start = 0
            for cut in sorted(c % (len(back) + 1) for c in cuts):
                if cut > start:
                    self.client.receive_data(back[start:cut], self.now)
                    start = cut
                self.events()
            if start < len(back):
                self.client.receive_data(back[start:], self.now)
            self.events()

    def events(self) -> None:
        while (event := self.client.next_event()) is not NEED_DATA:
            if isinstance(event, (PublishAcked, PublishNacked)):
                tags = self.outstanding[event.channel_id]
                if event.multiple:
                    covered = {t for t in tags if t <= event.delivery_tag}
                    assert covered, event
                    tags -= covered
                else:
                    assert event.delivery_tag in tags, event
                    tags.remove(event.delivery_tag)
            elif isinstance(event, MessageDelivered):
                assert event.body not in self.delivered or event.method.redelivered, event
                self.delivered.add(event.body)
                self.client.ack(event.channel_id, event.delivery_tag)
            elif isinstance(event, ChannelOpened):
                ch = event.channel_id
                self.outstanding[ch] = set()
                self.client.confirm_select(ch)
                self.client.send_method(ch, spec.Queue.Declare(queue=f"q{ch}"))
                self.client.consume(ch, f"q{ch}")
            elif isinstance(event, ChannelClosed):
                # Confirms still due on a closed channel will never come.
                self.outstanding.pop(event.channel_id, None)
            elif isinstance(event, ConnectionClosed):
                assert isinstance(event.exception, AMQPHeartbeatTimeout), event
                self.closed = event

    def open_channels(self) -> list[int]:
        return [
            ch
            for ch in self.client.channel_ids
            if self.client.channel_state(ch) is ChannelState.OPEN
        ]

    # -------------------------------------------------------------- rules

    @precondition(lambda self: self.client.is_open and len(self.client.channel_ids) < 3)
    @rule()
    def open_channel(self) -> None:
        self.client.open_channel()

    @precondition(lambda self: self.client.is_open and self.open_channels())
    @rule(data=st.data())
    def close_channel(self, data: st.DataObject) -> None:
        ch = data.draw(st.sampled_from(self.open_channels()))
        self.client.close_channel(ch)

    @precondition(lambda self: self.client.is_open and self.open_channels())
    @rule(data=st.data(), size=st.integers(0, 9000), mandatory=st.booleans())
    def publish(self, data: st.DataObject, size: int, mandatory: bool) -> None:
        ch = data.draw(st.sampled_from(self.open_channels()))
        self.counter += 1
        body = b"%08d" % self.counter + b"x" * size
        tag = self.client.publish(ch, "", f"q{ch}", body, mandatory=mandatory)
        if tag is not None:
            self.outstanding[ch].add(tag)
        self.published.add(body)

    @rule()
    def idle(self) -> None:
        """Always possible, so a run can go on after a heartbeat timeout ended it."""

    @precondition(lambda self: self.client.is_open)
    @rule(cuts=st.lists(st.integers(0, 20000), max_size=5))
    def pump(self, cuts: list[int]) -> None:
        self.flush(cuts)

    @precondition(lambda self: self.client.is_open)
    @rule(ch=st.integers(1, 3))
    def flush_confirms(self, ch: int) -> None:
        if ch in self.broker._channels:
            self.broker.flush_confirms(ch)

    @precondition(lambda self: self.client.is_open)
    @rule(dt=st.floats(0.1, 30), broker_alive=st.booleans())
    def advance_clock(self, dt: float, broker_alive: bool) -> None:
        target = self.now + dt
        while self.client.is_open:
            timer = self.client.next_timer()
            assert timer is not None
            if timer > target:
                break
            self.now = max(self.now, timer)
            self.client.handle_timer(self.now)
            self.events()
            self.flush([])
            if broker_alive and self.client.is_open:
                self.broker.send_heartbeat()
                self.flush([])
        self.now = max(self.now, target) if self.client.is_open else self.now

    # -------------------------------------------------------------- invariants

    @invariant()
    def heartbeats_on_time(self) -> None:
        if self.client.is_open:
            # The client wrote something within the last heartbeat interval.
            assert self.now - self.last_sent <= HEARTBEAT, (self.now, self.last_sent)

    def teardown(self) -> None:
        if not self.client.is_open:
            return
        self.flush([])
        for ch in list(self.outstanding):
            if ch in self.broker._channels:
                self.broker.flush_confirms(ch)
        self.flush([])
        for ch, tags in self.outstanding.items():
            assert not tags, (ch, tags)
        in_broker = {m.body for q in self.broker.queues.values() for m in q.messages}
        for chan in self.broker._channels.values():
            in_broker |= {m.body for _, m in chan.unacked.values()}
        # Unroutable messages (their queue's channel was closed before the declare) and
        # returned ones are the only ones allowed to be missing; everything routed is somewhere.
        routed = {body for body in self.published if body in in_broker or body in self.delivered}
        assert not (self.delivered - self.published)
        assert routed <= self.published


EnginePair.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEnginePair = EnginePair.TestCase
