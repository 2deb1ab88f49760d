"""The first broker test: a real RabbitMQ's Connection.Start, decoded by amqp_core's codec."""

from __future__ import annotations

import socket
import urllib.parse

from amqp_core import frame, spec


def _read_first_frame(url: str) -> frame.Frame:
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None
    with socket.create_connection((parts.hostname, parts.port or spec.PORT), timeout=10) as sock:
        sock.sendall(frame.PROTOCOL_HEADER)
        buffer = bytearray()
        while True:
            parsed = frame.parse_frame(buffer, 0, len(buffer), spec.FRAME_MIN_SIZE * 32)
            if parsed is not None:
                return parsed[0]
            chunk = sock.recv(4096)
            assert chunk, "the broker closed the connection before sending Connection.Start"
            buffer += chunk


def test_broker_answers_with_connection_start(amqp_url: str) -> None:
    received = _read_first_frame(amqp_url)
    assert isinstance(received, frame.Method)
    assert received.channel_number == 0
    start = received.method
    assert isinstance(start, spec.Connection.Start)
    assert (start.version_major, start.version_minor) == (0, 9)

    properties = start.server_properties
    assert properties is not None
    assert properties["product"] == "RabbitMQ"
    assert isinstance(properties["version"], str)
    capabilities = properties["capabilities"]
    assert isinstance(capabilities, dict)
    for capability in (
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
        "per_consumer_qos",
    ):
        assert capabilities[capability] is True, capability

    # Long strings decode as bytes (docs/spec.md).
    assert isinstance(start.mechanisms, bytes)
    assert isinstance(start.locales, bytes)
    mechanisms = start.mechanisms.split()
    assert b"PLAIN" in mechanisms
    assert b"AMQPLAIN" in mechanisms
    assert b"en_US" in start.locales.split()
