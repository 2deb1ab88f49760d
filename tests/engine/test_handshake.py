"""The connection handshake, tuning, and every way it can fail."""

from __future__ import annotations

import sys

import pytest

from amqp_core import (
    ConnectionClosed,
    ConnectionOpened,
    ConnectionState,
    ConnectionTuned,
    Engine,
    EngineConfig,
    ExternalCredentials,
    PlainCredentials,
    spec,
)
from amqp_core.exceptions import (
    AuthenticationError,
    ConnectionClosedByBroker,
    ConnectionOpenAborted,
    ConnectionStateError,
    IncompatibleProtocolError,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
    RemoteProtocolError,
)
from amqp_core.frame import PROTOCOL_HEADER, encode_method_frame
from amqp_core.testing.peer import FakeBroker
from tests.engine.helpers import Pair, types


def test_engine_sends_protocol_header_first() -> None:
    engine = Engine()
    assert engine.data_to_send() == PROTOCOL_HEADER
    assert engine.data_to_send() == b""
    assert engine.state is ConnectionState.AWAIT_START


def test_handshake_plain() -> None:
    pair = Pair(connection_name="my-conn")
    events = pair.open()
    assert types(events) == ["ConnectionTuned", "ConnectionOpened"]
    tuned, opened = events
    assert isinstance(tuned, ConnectionTuned)
    assert (tuned.channel_max, tuned.frame_max, tuned.heartbeat) == (2047, 131072, 60)
    assert isinstance(opened, ConnectionOpened)
    assert opened.server_properties["product"] == "FakeBroker"
    assert pair.client.server_capabilities["publisher_confirms"] is True
    assert pair.broker.user == "guest"
    start_ok = pair.broker.start_ok
    assert start_ok is not None
    assert start_ok.mechanism == "PLAIN"
    props = start_ok.client_properties
    assert props is not None
    assert props["connection_name"] == "my-conn"
    assert props["platform"] == "Python {}.{}.{}".format(*sys.version_info[:3])
    capabilities = props["capabilities"]
    assert isinstance(capabilities, dict)
    assert set(capabilities) == {
        "authentication_failure_close",
        "basic.nack",
        "connection.blocked",
        "consumer_cancel_notify",
        "exchange_exchange_bindings",
        "per_consumer_qos",
        "publisher_confirms",
    }
    assert pair.client.tune_parameters is not None
    assert pair.client.tune_parameters.heartbeat == 60


def test_handshake_amqplain() -> None:
    broker = FakeBroker(mechanisms="AMQPLAIN", users={"u": "pässword"})
    pair = Pair(broker=broker, credentials=PlainCredentials("u", "pässword"))
    pair.open()
    assert broker.start_ok is not None
    assert broker.start_ok.mechanism == "AMQPLAIN"
    assert broker.user == "u"


def test_handshake_external() -> None:
    broker = FakeBroker(mechanisms="PLAIN EXTERNAL", external_user="cn")
    pair = Pair(broker=broker, credentials=ExternalCredentials())
    pair.open()
    assert broker.user == "cn"


def test_no_common_mechanism() -> None:
    pair = Pair(broker=FakeBroker(mechanisms="PLAIN"), credentials=ExternalCredentials())
    events = pair.pump()
    assert types(events) == ["ConnectionClosed"]
    closed = events[0]
    assert isinstance(closed, ConnectionClosed)
    assert isinstance(closed.exception, AuthenticationError)
    assert pair.client.state is ConnectionState.CLOSED


def test_erase_on_connect() -> None:
    credentials = PlainCredentials("guest", "guest", erase_on_connect=True)
    pair = Pair(credentials=credentials)
    pair.open()
    assert credentials.username == credentials.password == ""


def test_wrong_password_closed_with_403() -> None:
    pair = Pair(credentials=PlainCredentials("guest", "nope"))
    events = pair.pump()
    assert types(events) == ["ConnectionClosed"]
    closed = events[0]
    assert isinstance(closed, ConnectionClosed)
    assert closed.reply_code == 403
    assert isinstance(closed.exception, ConnectionClosedByBroker)
    assert "ACCESS_REFUSED" in closed.reply_text
    # The engine answered the broker's Close with Close-Ok.
    assert isinstance(pair.broker.received[-1], spec.Connection.CloseOk)


def test_wrong_password_dropped() -> None:
    broker = FakeBroker(authentication_failure_close=False)
    pair = Pair(broker=broker, credentials=PlainCredentials("guest", "nope"))
    events = pair.pump()
    closed = events[-1]
    assert isinstance(closed, ConnectionClosed)
    assert isinstance(closed.exception, ProbableAuthenticationError)


def test_missing_vhost() -> None:
    pair = Pair(virtual_host="nope")
    events = pair.pump()
    assert types(events) == ["ConnectionTuned", "ConnectionClosed"]
    closed = events[-1]
    assert isinstance(closed, ConnectionClosed)
    assert (closed.reply_code, closed.class_id, closed.method_id) == (530, 10, 40)
    assert isinstance(closed.exception, ConnectionClosedByBroker)


def test_vhost_dropped_is_probable_access_denied() -> None:
    engine = Engine()
    broker = FakeBroker()
    broker.receive_data(engine.data_to_send())
    engine.receive_data(broker.data_to_send(), 0)
    broker.receive_data(engine.data_to_send())
    engine.receive_data(broker.data_to_send(), 0)  # Tune
    engine.receive_data(b"", 0)
    events = [engine.next_event() for _ in range(2)]
    closed = events[-1]
    assert isinstance(closed, ConnectionClosed)
    assert isinstance(closed.exception, ProbableAccessDeniedError)


def test_other_protocol_header() -> None:
    engine = Engine()
    engine.receive_data(b"AMQP", 0)
    assert engine.state is ConnectionState.AWAIT_START
    engine.receive_data(b"\x00\x00\x08\x00", 0)
    closed = engine.next_event()
    assert isinstance(closed, ConnectionClosed)
    assert isinstance(closed.exception, IncompatibleProtocolError)
    assert "AMQP\\x00\\x00\\x08\\x00" in closed.reply_text


def test_eof_before_start() -> None:
    engine = Engine()
    engine.receive_data(b"", 0)
    closed = engine.next_event()
    assert isinstance(closed, ConnectionClosed)
    assert isinstance(closed.exception, IncompatibleProtocolError)
    # Anything after the end is ignored.
    engine.receive_data(b"more", 1)
    engine.receive_data(b"", 1)
    assert engine.data_to_send() == PROTOCOL_HEADER


def test_start_with_wrong_version() -> None:
    engine = Engine()
    engine.receive_data(
        encode_method_frame(0, spec.Connection.Start(version_major=1, version_minor=0)), 0
    )
    closed = engine.next_event()
    assert isinstance(closed, ConnectionClosed)
    assert isinstance(closed.exception, IncompatibleProtocolError)


def test_secure_is_refused() -> None:
    engine = Engine()
    engine.receive_data(encode_method_frame(0, spec.Connection.Start()), 0)
    engine.receive_data(encode_method_frame(0, spec.Connection.Secure(b"challenge")), 0)
    closed = engine.next_event()
    assert isinstance(closed, ConnectionClosed)
    assert isinstance(closed.exception, AuthenticationError)
    assert closed.reply_code == 540


def test_tune_with_tiny_frame_max_is_refused() -> None:
    engine = Engine()
    engine.receive_data(encode_method_frame(0, spec.Connection.Start()), 0)
    engine.receive_data(encode_method_frame(0, spec.Connection.Tune(0, 1024, 0)), 0)
    closed = engine.next_event()
    assert isinstance(closed, ConnectionClosed)
    assert isinstance(closed.exception, RemoteProtocolError)
    assert closed.reply_code == 530


def test_unexpected_method_during_handshake() -> None:
    engine = Engine()
    engine.receive_data(encode_method_frame(0, spec.Connection.Tune(0, 0, 0)), 0)
    closed = engine.next_event()
    assert isinstance(closed, ConnectionClosed)
    assert isinstance(closed.exception, RemoteProtocolError)
    assert closed.reply_code == 503
    assert "AWAIT_START" in closed.reply_text
    assert (closed.class_id, closed.method_id) == (10, 30)


@pytest.mark.parametrize("steps", [0, 1, 2])
def test_close_during_handshake_aborts(steps: int) -> None:
    engine = Engine()
    broker = FakeBroker()
    for _ in range(steps):
        broker.receive_data(engine.data_to_send())
        engine.receive_data(broker.data_to_send(), 0)
    engine.close()
    events = []
    while (event := engine.next_event()) is not None and isinstance(
        event, (ConnectionClosed, ConnectionTuned)
    ):
        events.append(event)
    closed = events[-1]
    assert isinstance(closed, ConnectionClosed)
    assert isinstance(closed.exception, ConnectionOpenAborted)
    with pytest.raises(ConnectionStateError, match="CLOSED"):
        engine.close()


def test_client_close_and_broker_drops_instead_of_close_ok() -> None:
    pair = Pair()
    pair.open()
    pair.client.close(320, "bye")
    pair.client.receive_data(b"", 0)
    closed = pair.drain()[-1]
    assert isinstance(closed, ConnectionClosed)
    assert closed.reply_code == 320


def test_broker_close_while_open() -> None:
    pair = Pair()
    pair.open()
    pair.channel()
    pair.broker.close_connection(320, "CONNECTION_FORCED - bye")
    events = pair.pump()
    closed = events[-1]
    assert isinstance(closed, ConnectionClosed)
    assert closed.reply_code == 320
    assert isinstance(closed.exception, ConnectionClosedByBroker)
    assert pair.client.channel_ids == []


def test_close_is_illegal_twice() -> None:
    pair = Pair()
    pair.open()
    pair.client.close()
    with pytest.raises(ConnectionStateError, match="can't close when the connection is CLOSING"):
        pair.client.close()
    # Frames arriving while closing are discarded, Close-Ok ends it.
    pair.broker.block()
    events = pair.pump()
    assert types(events) == ["ConnectionClosed"]


def test_simultaneous_close() -> None:
    pair = Pair()
    pair.open()
    pair.client.close()
    pair.client.receive_data(encode_method_frame(0, spec.Connection.Close(320, "forced", 0, 0)), 0)
    closed = pair.drain()[-1]
    assert isinstance(closed, ConnectionClosed)
    assert closed.reply_code == 320
    assert pair.client.data_to_send().endswith(encode_method_frame(0, spec.Connection.CloseOk()))


def test_heartbeat_callable_and_overrides() -> None:
    pair = Pair(heartbeat=lambda proposed: proposed // 2)
    pair.open()
    assert pair.broker.tune_ok is not None
    assert pair.broker.tune_ok.heartbeat == 30
    pair = Pair(heartbeat=0, channel_max=10, frame_max=0)
    pair.open()
    assert pair.broker.tune_ok is not None
    assert (pair.broker.tune_ok.channel_max, pair.broker.tune_ok.frame_max) == (10, 131072)
    assert pair.broker.tune_ok.heartbeat == 0
    assert pair.client.next_timer() is None


def test_bad_heartbeat_callable_closes() -> None:
    pair = Pair(heartbeat=lambda proposed: -1)
    closed = pair.pump()[-1]
    assert isinstance(closed, ConnectionClosed)
    assert isinstance(closed.exception, RemoteProtocolError)


def test_update_secret() -> None:
    pair = Pair()
    pair.open()
    pair.client.update_secret(b"token", "refresh")
    pair.client.send_method(0, spec.Connection.UpdateSecret("token2", "again"))
    events = pair.pump()
    assert types(events) == ["MethodReceived", "MethodReceived"]
    # An unsolicited Update-Secret-Ok is a protocol error.
    pair.client.receive_data(encode_method_frame(0, spec.Connection.UpdateSecretOk()), 0)
    closed = pair.drain()[-1]
    assert isinstance(closed, ConnectionClosed)
    assert closed.reply_code == 503


def test_blocked_unblocked() -> None:
    pair = Pair()
    pair.open()
    pair.broker.block("low on memory")
    events = pair.pump()
    assert types(events) == ["ConnectionBlocked"]
    assert pair.client.is_blocked
    pair.broker.unblock()
    assert types(pair.pump()) == ["ConnectionUnblocked"]
    assert not pair.client.is_blocked


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="frame_max"):
        EngineConfig(frame_max=100)
    with pytest.raises(TypeError, match="channel_max"):
        EngineConfig(channel_max="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="heartbeat"):
        EngineConfig(heartbeat=-1)
    with pytest.raises(TypeError, match="credentials"):
        EngineConfig(credentials="guest")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="virtual_host"):
        EngineConfig(virtual_host=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="client_properties"):
        EngineConfig(client_properties=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="connection_name"):
        EngineConfig(connection_name=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="locale"):
        EngineConfig(locale=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="max_message_size"):
        EngineConfig(max_message_size=True)
    props = EngineConfig(client_properties={"product": "mine", "x": 1}).build_client_properties()
    assert props["product"] == "mine"
    assert props["x"] == 1


def test_credentials_api() -> None:
    plain = PlainCredentials("u", "p")
    assert plain == PlainCredentials("u", "p")
    assert plain != PlainCredentials("u", "q")
    assert plain != "u"
    assert "p" not in repr(plain)
    start = spec.Connection.Start(mechanisms=b"EXTERNAL")
    assert plain.response_for(start) == (None, None)
    assert plain.response_for(spec.Connection.Start(mechanisms="PLAIN")) == ("PLAIN", b"\x00u\x00p")
    external = ExternalCredentials()
    assert external == ExternalCredentials()
    assert external != plain
    assert repr(external) == "ExternalCredentials()"
    assert external.response_for(start) == ("EXTERNAL", b"")
    external.erase_credentials()
    plain.erase_credentials()
    assert plain.username == "u"
