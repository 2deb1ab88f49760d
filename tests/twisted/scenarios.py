# ruff: noqa: PT017, PT018
# mypy: disable-error-code="no-untyped-call"
"""The Twisted adapter's scenarios, run in a process of their own (a reactor runs once).

``python -m tests.twisted.scenarios CONFIG_JSON NAME...`` runs the named scenarios in order on
one reactor and prints one JSON line per scenario: ``{"name": ..., "ok": ..., "error": ...}``.
CONFIG_JSON holds the broker URL, a rabbitmqctl command line, and the TLS listener's details.
"""

from __future__ import annotations

import json
import shlex
import socket
import ssl as stdlib_ssl
import subprocess
import sys
import traceback
import uuid
from collections.abc import Callable, Generator
from typing import Any

from twisted.internet import defer, endpoints, reactor, ssl, threads
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater, react

from amqp_core import exceptions
from amqp_core import recovery as rc
from amqp_core.credentials import ExternalCredentials, PlainCredentials
from amqp_core.parameters import ConnectionParameters, SSLOptions, URLParameters
from amqp_twisted import ClosableDeferredQueue, TwistedChannel, TwistedProtocolConnection
from amqp_twisted.twisted_connection import _TwistedTransport
from tests.adapters.amqp_support import CuttableProxy

TIMEOUT = 20.0
Scenario = Callable[[dict[str, Any]], defer.Deferred[None]]
SCENARIOS: dict[str, Scenario] = {}


def scenario(function: Callable[[dict[str, Any]], Generator[Any, Any, None]]) -> Scenario:
    wrapped = defer.inlineCallbacks(function)
    SCENARIOS[function.__name__] = wrapped
    return wrapped


def with_timeout(
    deferred: defer.Deferred[Any] | None, seconds: float = TIMEOUT
) -> defer.Deferred[Any]:
    assert deferred is not None
    return deferred.addTimeout(seconds, reactor)


@defer.inlineCallbacks
def connect(
    params: ConnectionParameters | URLParameters, port: int | None = None
) -> Generator[Any, Any, TwistedProtocolConnection]:
    endpoint = endpoints.TCP4ClientEndpoint(reactor, params.host, port or params.port)
    connection = TwistedProtocolConnection(params)
    yield with_timeout(endpoints.connectProtocol(endpoint, connection))
    yield with_timeout(connection.ready)
    return connection


@defer.inlineCallbacks
def declare(channel: TwistedChannel) -> Generator[Any, Any, str]:
    ok = yield with_timeout(channel.queue_declare("", exclusive=True))
    name: str = ok.method.queue
    return name


def ctl(config: dict[str, Any], *args: str) -> defer.Deferred[Any]:
    command = [*shlex.split(config["ctl"]), *args]
    env_words = [word for word in command if "=" in word.split("/")[0]]
    env = dict(word.split("=", 1) for word in env_words)
    argv = [word for word in command if word not in env_words]
    return threads.deferToThread(
        subprocess.run, argv, env=env, check=True, capture_output=True, timeout=60
    )


@scenario
def open_and_close(config: dict[str, Any]) -> Generator[Any, Any, None]:
    connection = yield connect(URLParameters(config["url"]))
    assert connection.is_open
    reason = yield with_timeout(connection.close())
    assert isinstance(reason, exceptions.ConnectionClosedByClient), reason
    assert connection.is_closed


@scenario
def a_lone_write_leaves_before_the_reactor_turns(
    config: dict[str, Any],
) -> Generator[Any, Any, None]:
    # Twisted would send it on the reactor's next turn; amqp_twisted sends it in write().
    server = socket.create_server(("127.0.0.1", 0))
    try:
        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", server.getsockname()[1])
        protocol = yield with_timeout(endpoints.connectProtocol(endpoint, Protocol()))
        peer, _address = server.accept()
        with peer:
            transport = _TwistedTransport(protocol.transport)
            transport.write(b"ping")
            peer.settimeout(5.0)  # the reactor cannot turn while this blocks
            assert peer.recv(4) == b"ping"
            transport.close()
    finally:
        server.close()


@scenario
def wrong_password_fails_ready(config: dict[str, Any]) -> Generator[Any, Any, None]:
    params = URLParameters(config["url"])
    params.credentials = PlainCredentials("guest", "not the password")
    try:
        yield connect(params)
    except exceptions.ProbableAuthenticationError:
        return
    raise AssertionError("the login was accepted")


@scenario
def declare_bind_publish_consume_ack(config: dict[str, Any]) -> Generator[Any, Any, None]:
    connection = yield connect(URLParameters(config["url"]))
    channel = yield with_timeout(connection.channel())
    exchange = f"x-{uuid.uuid4().hex}"
    yield with_timeout(channel.exchange_declare(exchange, "direct", auto_delete=True))
    queue = yield declare(channel)
    yield with_timeout(channel.queue_bind(queue, exchange, routing_key="k"))
    yield with_timeout(channel.basic_qos(prefetch_count=10))
    for number in range(100):
        yield channel.basic_publish(exchange, "k", f"m{number}".encode())
    messages, tag = yield with_timeout(channel.basic_consume(queue))
    assert isinstance(messages, ClosableDeferredQueue) and channel.consumer_tags == [tag]
    bodies = []
    for _ in range(100):
        message = yield with_timeout(messages.get())
        bodies.append(message.body)
        message.channel.basic_ack(message.method.delivery_tag)
    assert bodies == [f"m{n}".encode() for n in range(100)]
    yield with_timeout(channel.basic_cancel(tag))
    try:
        yield messages.get()
    except exceptions.ConsumerCancelled:
        pass
    else:
        raise AssertionError("the cancelled consumer's queue is still open")
    ok = yield with_timeout(channel.queue_declare(queue, passive=True))
    assert ok.method.message_count == 0
    yield with_timeout(connection.close())


@scenario
def basic_get_empty_then_message(config: dict[str, Any]) -> Generator[Any, Any, None]:
    connection = yield connect(URLParameters(config["url"]))
    channel = yield with_timeout(connection.channel())
    queue = yield declare(channel)
    assert (yield with_timeout(channel.basic_get(queue))) is None
    yield channel.basic_publish("", queue, b"one")
    message = yield with_timeout(channel.basic_get(queue, auto_ack=True))
    assert message.body == b"one" and message.channel is channel
    yield with_timeout(connection.close())


@scenario
def confirms_and_unroutable(config: dict[str, Any]) -> Generator[Any, Any, None]:
    connection = yield connect(URLParameters(config["url"]))
    channel = yield with_timeout(connection.channel())
    queue = yield declare(channel)
    yield with_timeout(channel.confirm_delivery())
    published = [channel.basic_publish("", queue, b"x" * n) for n in range(500)]
    yield with_timeout(defer.gatherResults(published))
    try:
        yield with_timeout(
            channel.basic_publish("", f"nowhere-{uuid.uuid4().hex}", b"lost", mandatory=True)
        )
    except exceptions.UnroutableError as error:
        returned: Any = error.messages[0]
        assert returned.body == b"lost"
    else:
        raise AssertionError("an unroutable mandatory message was confirmed")
    yield with_timeout(connection.close())


@scenario
def mandatory_return_callback(config: dict[str, Any]) -> Generator[Any, Any, None]:
    connection = yield connect(URLParameters(config["url"]))
    channel = yield with_timeout(connection.channel())
    returned: defer.Deferred[Any] = defer.Deferred()
    channel.add_on_return_callback(returned.callback)
    yield channel.basic_publish("", f"nowhere-{uuid.uuid4().hex}", b"lost", mandatory=True)
    message = yield with_timeout(returned)
    assert message.body == b"lost" and message.method.reply_code == 312
    yield with_timeout(connection.close())


@scenario
def consumer_cancelled_by_broker(config: dict[str, Any]) -> Generator[Any, Any, None]:
    connection = yield connect(URLParameters(config["url"]))
    channel = yield with_timeout(connection.channel())
    queue = yield declare(channel)
    messages, _ = yield with_timeout(channel.basic_consume(queue))
    waiting = messages.get()
    other = yield with_timeout(connection.channel())
    yield with_timeout(other.queue_delete(queue))
    try:
        yield with_timeout(waiting)
    except exceptions.ConsumerCancelled:
        pass
    else:
        raise AssertionError("no ConsumerCancelled")
    assert channel.is_open and channel.consumer_tags == []
    yield with_timeout(connection.close())


@scenario
def channel_error_then_new_channel(config: dict[str, Any]) -> Generator[Any, Any, None]:
    connection = yield connect(URLParameters(config["url"]))
    channel = yield with_timeout(connection.channel())
    try:
        yield with_timeout(channel.queue_declare(f"missing-{uuid.uuid4().hex}", passive=True))
    except exceptions.ChannelClosedByBroker as error:
        assert error.reply_code == 404
    else:
        raise AssertionError("a passive declare of a missing queue succeeded")
    assert channel.is_closed and connection.is_open
    fresh = yield with_timeout(connection.channel())
    queue = yield declare(fresh)
    yield fresh.basic_publish("", queue, b"after")
    message = yield with_timeout(fresh.basic_get(queue, auto_ack=True))
    assert message.body == b"after"
    reason = yield with_timeout(fresh.close())
    assert isinstance(reason, exceptions.ChannelClosedByClient)
    yield with_timeout(connection.close())


@scenario
def blocked_and_unblocked(config: dict[str, Any]) -> Generator[Any, Any, None]:
    connection = yield connect(URLParameters(config["url"]))
    channel = yield with_timeout(connection.channel())
    events: list[str] = []
    connection.add_on_connection_blocked_callback(lambda c, f: events.append("Blocked"))
    connection.add_on_connection_unblocked_callback(lambda c, f: events.append("Unblocked"))
    try:
        yield ctl(config, "set_vm_memory_high_watermark", "0.0000001")
        for _ in range(int(TIMEOUT / 0.2)):
            if events:
                break
            yield channel.basic_publish("", "amq.nothing-here", b"trigger the block")
            yield deferLater(reactor, 0.2, lambda: None)
        assert events == ["Blocked"], events
    finally:
        yield ctl(config, "set_vm_memory_high_watermark", "0.4")
    for _ in range(int(TIMEOUT / 0.1)):
        if len(events) == 2:
            break
        yield deferLater(reactor, 0.1, lambda: None)
    assert events == ["Blocked", "Unblocked"], events
    yield with_timeout(connection.close())


@scenario
def bounded_output_while_blocked(config: dict[str, Any]) -> Generator[Any, Any, None]:
    # Publish while the broker blocks: refused at max_unsent_bytes, resumed once drained.
    params = URLParameters(config["url"])
    params.max_unsent_bytes = 1024 * 1024
    connection = yield connect(params)
    channel = yield with_timeout(connection.channel())
    queue = yield declare(channel)
    events: list[str] = []
    drained: list[defer.Deferred[None]] = []

    def on_drained(connection: TwistedProtocolConnection) -> None:
        events.append("drained")
        if drained:
            drained.pop().callback(None)

    connection.add_on_connection_blocked_callback(lambda c, f: events.append("blocked"))
    connection.add_on_output_drained_callback(on_drained)
    body = b"t" * 1024
    published = 0
    try:
        yield ctl(config, "set_vm_memory_high_watermark", "0.0000001")
        for _ in range(int(TIMEOUT / 0.2)):
            if events:
                break
            yield channel.basic_publish("", queue, body)
            published += 1
            yield deferLater(reactor, 0.2, lambda: None)
        assert events == ["blocked"], events
        # Until refused, and again after each drain, until no drain comes: the OS's socket
        # buffers take some first.
        while True:
            try:
                yield channel.basic_publish("", queue, body)
            except exceptions.OutputBufferFullError as error:
                assert error.limit == 1024 * 1024, error
                # Twisted tells only when it pauses and resumes us: what it holds is counted
                # as a bound, a little above the bytes it really holds.
                assert error.unsent <= error.limit + 128 * 1024, error
            else:
                published += 1
                if published % 200 == 0:
                    yield deferLater(reactor, 0, lambda: None)
                continue
            waiting: defer.Deferred[None] = defer.Deferred()
            drained.append(waiting)
            try:
                yield waiting.addTimeout(1.0, reactor)
            except defer.TimeoutError:
                drained.clear()
                break
        drains = events.count("drained")
        try:
            yield channel.basic_publish("", queue, b"refused while full")
        except exceptions.OutputBufferFullError:
            pass
        else:
            raise AssertionError("a publish was taken while the output was full")
    finally:
        yield ctl(config, "set_vm_memory_high_watermark", "0.4")
    if events.count("drained") == drains:  # (it may have come while rabbitmqctl ran)
        waiting = defer.Deferred()
        drained.append(waiting)
        yield with_timeout(waiting)
    assert events.count("drained") == drains + 1, events
    yield channel.basic_publish("", queue, b"after the drain")
    published += 1
    for _ in range(int(TIMEOUT / 0.1)):
        ok = yield with_timeout(channel.queue_declare(queue, passive=True))
        if ok.method.message_count >= published:
            break
        yield deferLater(reactor, 0.1, lambda: None)
    assert ok.method.message_count == published, (ok.method.message_count, published)
    yield with_timeout(connection.close())


@scenario
def broker_forced_close(config: dict[str, Any]) -> Generator[Any, Any, None]:
    connection = yield connect(URLParameters(config["url"]))
    closed = connection.closed
    assert closed is not None
    yield ctl(config, "close_all_connections", "twisted test says goodbye")
    reason = yield with_timeout(closed)
    assert isinstance(reason, exceptions.ConnectionClosedByBroker), reason
    assert reason.reply_code == 320 and "goodbye" in reason.reply_text


@scenario
def tcp_drop_is_a_lost_stream(config: dict[str, Any]) -> Generator[Any, Any, None]:
    params = URLParameters(config["url"])
    proxy = CuttableProxy((params.host, params.port))
    try:
        connection = yield connect(params, port=proxy.port)
        channel = yield with_timeout(connection.channel())
        pending = channel.queue_declare(f"never-{uuid.uuid4().hex}", passive=True)
        pending.addErrback(lambda failure: failure.value)
        closed = connection.closed
        proxy.cut()
        reason = yield with_timeout(closed)
        assert isinstance(reason, exceptions.StreamLostError), reason
        assert isinstance((yield pending), exceptions.StreamLostError)
    finally:
        yield threads.deferToThread(proxy.close)


@scenario
def tls_round_trip_and_external_login(config: dict[str, Any]) -> Generator[Any, Any, None]:
    tls = config["tls"]
    with open(tls["ca"], "rb") as ca_file:
        authority = ssl.Certificate.loadPEM(ca_file.read())
    with open(tls["client_cert"], "rb") as cert_file, open(tls["client_key"], "rb") as key_file:
        client = ssl.PrivateCertificate.loadPEM(cert_file.read() + key_file.read())
    for credentials in (None, ExternalCredentials()):
        options = ssl.optionsForClientTLS(
            "localhost", trustRoot=authority, clientCertificate=client if credentials else None
        )
        tcp: Any = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", tls["port"])
        endpoint = endpoints.wrapClientTLS(options, tcp)
        params = ConnectionParameters("127.0.0.1", tls["port"])
        if credentials is not None:
            params.credentials = credentials
        connection = TwistedProtocolConnection(params)
        yield with_timeout(endpoints.connectProtocol(endpoint, connection))
        yield with_timeout(connection.ready)
        channel = yield with_timeout(connection.channel())
        queue = yield declare(channel)
        yield channel.basic_publish("", queue, b"over TLS")
        message = yield with_timeout(channel.basic_get(queue, auto_ack=True))
        assert message.body == b"over TLS"
        yield with_timeout(connection.close())


# ---------------------------------------------------------------------- recovery

FAST = rc.RecoveryPolicy(initial_delay=0.05, max_delay=0.5, max_duration=30)


def recovering(url: str, port: int | None = None, **kwargs: Any) -> ConnectionParameters:
    """The URL's broker (or ``port`` on 127.0.0.1) with a fast recovery policy."""
    params = URLParameters(url)
    return ConnectionParameters(
        host=kwargs.pop("host", "127.0.0.1"),
        port=port or params.port,
        virtual_host=params.virtual_host,
        credentials=kwargs.pop("credentials", params.credentials),
        recovery=kwargs.pop("recovery", FAST),
        **kwargs,
    )


class Events:
    """Records a connection's recovery events; waits for one of a kind."""

    def __init__(self, connection: TwistedProtocolConnection) -> None:
        self.events: list[Any] = []
        connection.add_recovery_listener(lambda _c, event: self.events.append(event))

    def of(self, kind: type) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]

    @defer.inlineCallbacks
    def wait_for(self, kind: type, count: int = 1) -> Generator[Any, Any, Any]:
        for _ in range(int(TIMEOUT / 0.02)):
            if len(self.of(kind)) >= count:
                return self.of(kind)[count - 1]
            yield deferLater(reactor, 0.02, lambda: None)
        raise AssertionError(f"no {kind.__name__} within {TIMEOUT} s: {self.events}")


@scenario
def recovery_after_broker_forced_close(config: dict[str, Any]) -> Generator[Any, Any, None]:
    connection = yield connect(recovering(config["url"]))
    events = Events(connection)
    closed = connection.closed
    channel = yield with_timeout(connection.channel())
    yield with_timeout(channel.confirm_delivery())
    yield with_timeout(channel.basic_qos(prefetch_count=5))
    exchange = f"x-{uuid.uuid4().hex}"
    yield with_timeout(channel.exchange_declare(exchange, "direct"))
    queue = yield declare(channel)
    yield with_timeout(channel.queue_bind(queue, exchange, routing_key="k"))
    messages, tag = yield with_timeout(channel.basic_consume(queue))
    yield with_timeout(channel.basic_publish(exchange, "k", b"before"))
    before = yield with_timeout(messages.get())
    assert before.body == b"before"

    yield ctl(config, "close_all_connections", "twisted recovery test")
    lost = yield events.wait_for(rc.ConnectionLost)
    assert isinstance(lost.reason, exceptions.ConnectionClosedByBroker), lost.reason
    assert lost.reason.reply_code == 320
    recovered = yield events.wait_for(rc.Recovered)
    assert recovered.port == URLParameters(config["url"]).port
    # The jitter of the policy, drawn from the reactor services' random().
    (first,) = events.of(rc.Recovering)
    assert FAST.initial_delay * (1 - FAST.jitter) <= first.delay < FAST.initial_delay, first
    assert connection.is_open and not connection.is_recovering and channel.is_open
    assert closed is connection.closed and not closed.called  # the same connection goes on

    # A delivery from before the loss: its ack is dropped and reported, never sent.
    channel.basic_ack(before.method.delivery_tag)
    stale = yield events.wait_for(rc.StaleDeliveryTag)
    assert stale.delivery_tag == before.method.delivery_tag and stale.method == "basic_ack"
    # The exclusive server-named queue came back under a new name, bound again; the
    # consumer (same tag, same queue object) follows it; confirm mode is back.
    (renamed,) = events.of(rc.QueueRenamed)
    assert renamed.old == queue and renamed.new != queue
    assert channel.consumer_tags == [tag]
    yield with_timeout(channel.basic_publish(exchange, "k", b"after"))
    after = yield with_timeout(messages.get())
    assert after.body == b"after" and after.method.consumer_tag == tag
    assert after.method.delivery_tag > before.method.delivery_tag
    channel.basic_ack(after.method.delivery_tag)
    # QoS came back too: the broker holds back the sixth of six unacked deliveries.
    for number in range(6):
        yield with_timeout(channel.basic_publish(exchange, "k", b"%d" % number))
    held = []
    for _ in range(5):
        held.append((yield with_timeout(messages.get())))
    yield deferLater(reactor, 0.3, lambda: None)
    assert not messages.pending, "prefetch_count was not restored"
    channel.basic_ack(held[-1].method.delivery_tag, multiple=True)
    last = yield with_timeout(messages.get())
    assert last.body == b"5"
    channel.basic_ack(last.method.delivery_tag)
    assert len(events.of(rc.StaleDeliveryTag)) == 1
    yield with_timeout(channel.exchange_delete(exchange))
    reason = yield with_timeout(connection.close())
    assert isinstance(reason, exceptions.ConnectionClosedByClient), reason


@scenario
def recovery_reports_unconfirmed_publishes(config: dict[str, Any]) -> Generator[Any, Any, None]:
    params = URLParameters(config["url"])
    proxy = CuttableProxy((params.host, params.port))
    try:
        connection = yield connect(recovering(config["url"], proxy.port))
        events = Events(connection)
        channel = yield with_timeout(connection.channel())
        yield with_timeout(channel.confirm_delivery())
        queue = f"twisted-unconfirmed-{uuid.uuid4().hex}"
        yield with_timeout(channel.queue_declare(queue, auto_delete=True))
        outcomes: list[Any] = []
        for _ in range(300):
            published = channel.basic_publish("", queue, b"x" * 20_000)
            published.addBoth(outcomes.append)
        pending = channel.queue_declare(queue, passive=True)
        pending.addErrback(lambda failure: failure.value)
        proxy.cut()  # most of them cannot have been confirmed yet
        yield events.wait_for(rc.Recovered)
        assert len(outcomes) == 300
        failed = [o for o in outcomes if o is not None]
        assert failed, "every publish was confirmed before the cut: nothing was tested"
        assert all(isinstance(o.value, exceptions.RecoveryInterrupted) for o in failed)
        (report,) = events.of(rc.PublishesUnconfirmed)
        assert report.last_sequence == 300 and report.count in (len(failed), None)
        assert isinstance((yield pending), exceptions.RecoveryInterrupted)
        # Confirm mode is back, and the sequence goes on.
        yield with_timeout(channel.basic_publish("", queue, b"after"))
        yield with_timeout(channel.queue_delete(queue))
        yield with_timeout(connection.close())
    finally:
        yield threads.deferToThread(proxy.close)


@scenario
def recovery_mid_publish_batch(config: dict[str, Any]) -> Generator[Any, Any, None]:
    # A batch cut by a lost connection waits for the recovery and goes on: every message
    # gets an outcome, ok or RecoveryInterrupted, and the batch fires once all are settled.
    params = URLParameters(config["url"])
    proxy = CuttableProxy((params.host, params.port))
    try:
        connection = yield connect(recovering(config["url"], proxy.port))
        events = Events(connection)
        channel = yield with_timeout(connection.channel())
        queue = f"twisted-batch-{uuid.uuid4().hex}"
        yield with_timeout(channel.queue_declare(queue, auto_delete=True))
        channel.confirm_window = 50
        count = 1500
        batch = channel.publish_batch([("", queue, b"x" * 20_000)] * count)
        outcomes: list[Any] = []
        batch.addBoth(outcomes.append)
        for _ in range(int(TIMEOUT / 0.005)):
            tracker = channel._tracker
            if outcomes or (tracker is not None and tracker._next > 200):
                break
            yield deferLater(reactor, 0.005, lambda: None)
        assert not outcomes, "the batch ended before the cut: nothing was tested"
        proxy.cut()
        yield events.wait_for(rc.Recovered)
        yield with_timeout(batch)
        (settled,) = outcomes
        assert len(settled) == count
        failed = [o for o in settled if not o.ok]
        assert failed, "every message was confirmed before the cut"
        assert all(isinstance(o.error, exceptions.RecoveryInterrupted) for o in failed)
        assert settled[-1].ok  # published after the recovery
        yield with_timeout(channel.queue_delete(queue))
        yield with_timeout(connection.close())
    finally:
        yield threads.deferToThread(proxy.close)


@scenario
def recovery_tries_the_other_hosts(config: dict[str, Any]) -> Generator[Any, Any, None]:
    # Two parameter sets: the proxy, by name (resolved in the reactor's thread pool), and a
    # port nobody listens on. The recovery starts with the host after the lost one: refused,
    # then the proxy again, in one attempt.
    params = URLParameters(config["url"])
    proxy = CuttableProxy((params.host, params.port))
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead_port = unused.getsockname()[1]
    try:
        hosts = [
            recovering(
                config["url"], proxy.port, host="localhost", tcp_options={"TCP_KEEPIDLE": 30}
            ),
            recovering(config["url"], dead_port),
        ]
        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", proxy.port)
        connection = TwistedProtocolConnection(hosts)
        events = Events(connection)
        yield with_timeout(endpoints.connectProtocol(endpoint, connection))
        yield with_timeout(connection.ready)
        channel = yield with_timeout(connection.channel())
        proxy.cut()
        recovered = yield events.wait_for(rc.Recovered)
        assert (recovered.host, recovered.port, recovered.attempts) == (
            "localhost",
            proxy.port,
            1,
        ), recovered
        queue = yield declare(channel)
        yield channel.basic_publish("", queue, b"back")
        message = yield with_timeout(channel.basic_get(queue, auto_ack=True))
        assert message.body == b"back"
        yield with_timeout(connection.close())
    finally:
        yield threads.deferToThread(proxy.close)


@scenario
def recovery_refused_login_is_not_retried(config: dict[str, Any]) -> Generator[Any, Any, None]:
    # 403 (the password changed) and 530 (the virtual host is no longer allowed) end the
    # recovery at its first attempt: RecoveryFailed, then the connection's close.
    for change, code in (("change_password", 403), ("clear_permissions", 530)):
        user = f"twisted-{uuid.uuid4().hex[:8]}"
        yield ctl(config, "add_user", user, "secret")
        yield ctl(config, "set_permissions", "-p", "/", user, ".*", ".*", ".*")
        try:
            policy = rc.RecoveryPolicy(initial_delay=0.05, max_delay=0.2, max_attempts=20)
            connection = yield connect(
                recovering(
                    config["url"], credentials=PlainCredentials(user, "secret"), recovery=policy
                )
            )
            events = Events(connection)
            closed = connection.closed
            if change == "change_password":
                yield ctl(config, "change_password", user, "another secret")
            else:
                yield ctl(config, "clear_permissions", "-p", "/", user)
            yield ctl(config, "close_all_connections", "twisted refused-login test")
            failed = yield events.wait_for(rc.RecoveryFailed)
            reason = yield with_timeout(closed)
            assert reason is failed.reason, (reason, failed)
            assert isinstance(reason, exceptions.ConnectionRecoveryFailed), reason
            assert len(events.of(rc.Recovering)) == 1, events.events
            cause = reason.__cause__
            assert isinstance(cause, exceptions.AMQPConnectionWorkflowFailed), cause
            handshake = cause.exceptions[-1]
            assert isinstance(handshake, exceptions.AMQPConnectorAMQPHandshakeError), cause
            refusal = handshake.exception.__cause__
            assert isinstance(refusal, exceptions.ConnectionClosedByBroker), handshake
            assert refusal.reply_code == code, refusal
            assert connection.is_closed and not connection.is_recovering
        finally:
            yield ctl(config, "delete_user", user)


@scenario
def tls_recovery(config: dict[str, Any]) -> Generator[Any, Any, None]:
    # The first stream is Twisted's own TLS (an endpoint); the recovery's are amqp_core's,
    # made with the same ssl.SSLContext as every other adapter takes.
    tls = config["tls"]
    proxy = CuttableProxy(("127.0.0.1", tls["port"]))
    try:
        with open(tls["ca"], "rb") as ca_file:
            authority = ssl.Certificate.loadPEM(ca_file.read())
        options = ssl.optionsForClientTLS("localhost", trustRoot=authority)
        tcp: Any = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", proxy.port)
        context = stdlib_ssl.create_default_context(cafile=tls["ca"])
        params = ConnectionParameters(
            "127.0.0.1", proxy.port, ssl_options=SSLOptions(context, "localhost"), recovery=FAST
        )
        connection = TwistedProtocolConnection(params)
        events = Events(connection)
        yield with_timeout(
            endpoints.connectProtocol(endpoints.wrapClientTLS(options, tcp), connection)
        )
        yield with_timeout(connection.ready)
        channel = yield with_timeout(connection.channel())
        queue = yield declare(channel)
        messages, _tag = yield with_timeout(channel.basic_consume(queue, auto_ack=True))
        for round_ in range(2):
            proxy.cut()
            yield events.wait_for(rc.Recovered, round_ + 1)
            queue = events.of(rc.QueueRenamed)[-1].new
            yield channel.basic_publish("", queue, b"over TLS again")
            message = yield with_timeout(messages.get())
            assert message.body == b"over TLS again"
        yield with_timeout(connection.close())
    finally:
        yield threads.deferToThread(proxy.close)


@defer.inlineCallbacks
def main(_reactor: Any, config: dict[str, Any], names: list[str]) -> Generator[Any, Any, None]:
    for name in names:
        result: dict[str, Any] = {"name": name, "ok": True, "error": None}
        try:
            yield SCENARIOS[name](config)
        except Exception:
            result.update(ok=False, error=traceback.format_exc())
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    react(main, (json.loads(sys.argv[1]), sys.argv[2:] or list(SCENARIOS)))
