"""BlockingConnection over TLS, against a RabbitMQ TLS listener with test-time certificates.

The module starts its own node, since the TLS listener must be configured before the node
starts: a CA and a server certificate for localhost/127.0.0.1 are made with trustme.
"""

from __future__ import annotations

import pathlib
import socket
import ssl
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import trustme

from amqp_blocking import BlockingConnection
from amqp_core.exceptions import AMQPConnectionError
from amqp_core.parameters import ConnectionParameters, SSLOptions, URLParameters
from tools.broker import RabbitMQNode, find_free_port, release_port

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]


def _wait_for_port(port: int, deadline: float) -> None:
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, pathlib.Path]]:
    """A node with a TLS listener; yields its TLS port and the CA file that signed it."""
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    directory = tmp_path_factory.mktemp("blocking-tls")
    ca_file = directory / "ca.pem"
    server_pem, server_key = directory / "server.pem", directory / "server.key"
    ca.cert_pem.write_to_path(str(ca_file))
    server.cert_chain_pems[0].write_to_path(str(server_pem))
    server.private_key_pem.write_to_path(str(server_key))
    port = find_free_port()
    config = "\n".join(
        [
            f"listeners.ssl.default = 127.0.0.1:{port}",
            f"ssl_options.cacertfile = {ca_file}",
            f"ssl_options.certfile = {server_pem}",
            f"ssl_options.keyfile = {server_key}",
            "ssl_options.verify = verify_none",
        ]
    )
    try:
        with RabbitMQNode(extra_config=config):
            _wait_for_port(port, time.monotonic() + 30)
            yield port, ca_file
    finally:
        release_port(port)


def _params(port: int, context: ssl.SSLContext, **kwargs: Any) -> ConnectionParameters:
    return ConnectionParameters(
        host="localhost", port=port, ssl_options=SSLOptions(context, **kwargs)
    )


def test_connect_publish_consume_over_tls(tls_node: tuple[int, pathlib.Path]) -> None:
    port, ca_file = tls_node
    context = ssl.create_default_context(cafile=str(ca_file))
    with BlockingConnection(_params(port, context)) as connection:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        # Bodies of several TLS records and frames, and many small ones in one batch.
        big = bytes(range(256)) * 1024
        outcomes = channel.publish_batch(
            [("", queue, big)] * 20 + [("", queue, b"%d" % i) for i in range(2000)]
        )
        assert all(outcome.ok for outcome in outcomes)
        channel.basic_qos(prefetch_count=500)
        bodies: list[bytes] = []
        for method, _properties, body in channel.consume(queue, inactivity_timeout=10):
            assert method is not None, "a message did not arrive"
            bodies.append(body)
            if len(bodies) % 100 == 0 or len(bodies) == 2020:
                channel.basic_ack(method.delivery_tag, multiple=True)
            if len(bodies) == 2020:
                break
        channel.cancel()
        assert bodies[:20] == [big] * 20
        assert bodies[20:] == [b"%d" % i for i in range(2000)]
        assert channel.queue_declare(queue, passive=True).method.message_count == 0


def test_amqps_url_with_ca_certs(tls_node: tuple[int, pathlib.Path]) -> None:
    port, ca_file = tls_node
    options = urllib.parse.quote(repr({"ca_certs": str(ca_file)}))
    url = f"amqps://guest:guest@127.0.0.1:{port}/%2F?ssl_options={options}"
    with BlockingConnection(URLParameters(url)) as connection:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.basic_publish("", queue, b"over TLS")
        assert channel.basic_get(queue, auto_ack=True)[2] == b"over TLS"


def test_unverifiable_certificate_is_a_typed_error(tls_node: tuple[int, pathlib.Path]) -> None:
    port, _ca_file = tls_node
    # The system's trust store does not know the test CA.
    started = time.monotonic()
    with pytest.raises(AMQPConnectionError, match="TLS") as caught:
        BlockingConnection(_params(port, ssl.create_default_context()))
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert "certificate verify failed" in message
    assert f"localhost:{port}" in message


def test_wrong_server_hostname_is_a_typed_error(tls_node: tuple[int, pathlib.Path]) -> None:
    port, ca_file = tls_node
    context = ssl.create_default_context(cafile=str(ca_file))
    with pytest.raises(AMQPConnectionError, match="TLS") as caught:
        BlockingConnection(_params(port, context, server_hostname="rabbit.example"))
    assert "Hostname mismatch" in str(caught.value)


def test_plain_amqp_to_the_tls_port_fails_cleanly(tls_node: tuple[int, pathlib.Path]) -> None:
    port, _ca_file = tls_node
    params = ConnectionParameters(host="127.0.0.1", port=port, socket_timeout=5)
    started = time.monotonic()
    with pytest.raises(AMQPConnectionError):
        BlockingConnection(params)
    assert time.monotonic() - started < 15
