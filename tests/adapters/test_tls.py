"""TLS on every callback-style adapter (and Twisted) against a RabbitMQ TLS listener.

The module starts its own node (the TLS listener and the EXTERNAL mechanism must be configured
before the node starts): a CA, a server certificate for localhost/127.0.0.1 and a client
certificate whose common name is ``guest`` are made with trustme.
"""

from __future__ import annotations

import pathlib
import socket
import ssl
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import trustme

from amqp_core import exceptions
from amqp_core.credentials import ExternalCredentials
from amqp_core.parameters import ConnectionParameters, SSLOptions, URLParameters
from tests.adapters.amqp_support import close_connection, open_connection, wait
from tests.adapters.loops import LoopDriver, make_driver
from tools.broker import RabbitMQNode, find_free_port, release_port

pytestmark = pytest.mark.broker


@dataclass
class TLSBroker:
    node: RabbitMQNode
    port: int
    ca_file: pathlib.Path
    client_cert: pathlib.Path
    client_key: pathlib.Path

    def client_context(self, *, with_certificate: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if with_certificate:
            context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context


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
def tls_broker(
    tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA, server_cert: trustme.LeafCert
) -> Iterator[TLSBroker]:
    directory = tmp_path_factory.mktemp("tls")
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server_pem, server_key = directory / "server.pem", directory / "server.key"
    server_cert.cert_chain_pems[0].write_to_path(str(server_pem))
    server_cert.private_key_pem.write_to_path(str(server_key))
    client = ca.issue_cert("guest", common_name="guest")
    client_pem, client_key = directory / "client.pem", directory / "client.key"
    client.cert_chain_pems[0].write_to_path(str(client_pem))
    client.private_key_pem.write_to_path(str(client_key))
    port = find_free_port()
    config = "\n".join(
        [
            f"listeners.ssl.default = 127.0.0.1:{port}",
            f"ssl_options.cacertfile = {ca_file}",
            f"ssl_options.certfile = {server_pem}",
            f"ssl_options.keyfile = {server_key}",
            "ssl_options.verify = verify_peer",
            "ssl_options.fail_if_no_peer_cert = false",
            "auth_mechanisms.1 = PLAIN",
            "auth_mechanisms.2 = AMQPLAIN",
            "auth_mechanisms.3 = EXTERNAL",
            "ssl_cert_login_from = common_name",
        ]
    )
    node = RabbitMQNode(extra_config=config, plugins=("rabbitmq_auth_mechanism_ssl",))
    try:
        with node:
            _wait_for_port(port, time.monotonic() + 30)
            yield TLSBroker(node, port, ca_file, client_pem, client_key)
    finally:
        release_port(port)


@pytest.fixture(params=("select", "asyncio", "tornado", "gevent"))
def adapter(request: pytest.FixtureRequest) -> Iterator[LoopDriver]:
    driver = make_driver("select-select" if request.param == "select" else request.param)
    yield driver
    driver.close()


def _round_trip(driver: LoopDriver, connection: object) -> bytes:
    (channel,) = wait(driver, lambda done: connection.channel(on_open_callback=done))  # type: ignore[attr-defined]
    (frame,) = wait(driver, lambda done: channel.queue_declare("", exclusive=True, callback=done))
    queue = frame.method.queue
    channel.basic_publish("", queue, b"over TLS")
    _, _, _, body = wait(driver, lambda done: channel.basic_get(queue, done, auto_ack=True))
    assert isinstance(body, bytes)
    return body


def test_plain_login_over_tls(adapter: LoopDriver, tls_broker: TLSBroker) -> None:
    params = ConnectionParameters(
        host="localhost",
        port=tls_broker.port,
        ssl_options=SSLOptions(tls_broker.client_context()),
    )
    conn = open_connection(adapter, params)
    try:
        assert _round_trip(adapter, conn) == b"over TLS"
    finally:
        close_connection(adapter, conn)


def test_amqps_url_with_ssl_options(adapter: LoopDriver, tls_broker: TLSBroker) -> None:
    options = urllib.parse.quote(repr({"ca_certs": str(tls_broker.ca_file)}))
    url = f"amqps://guest:guest@127.0.0.1:{tls_broker.port}/%2F?ssl_options={options}"
    conn = open_connection(adapter, URLParameters(url))
    try:
        assert _round_trip(adapter, conn) == b"over TLS"
    finally:
        close_connection(adapter, conn)


def test_server_certificate_that_does_not_verify(
    adapter: LoopDriver, tls_broker: TLSBroker
) -> None:
    # amqps:// uses the system's trust store, which does not know the test CA.
    url = f"amqps://guest:guest@localhost:{tls_broker.port}/%2F?socket_timeout=5"
    with pytest.raises(exceptions.AMQPConnectionError) as caught:
        open_connection(adapter, URLParameters(url))
    message = str(caught.value)
    assert "TLS" in message
    assert f"localhost:{tls_broker.port}" in message
    assert "certificate verify failed" in message
    assert "guest:guest" not in message


def test_wrong_server_hostname_does_not_verify(adapter: LoopDriver, tls_broker: TLSBroker) -> None:
    params = ConnectionParameters(
        host="127.0.0.1",
        port=tls_broker.port,
        ssl_options=SSLOptions(tls_broker.client_context(), server_hostname="rabbit.example"),
    )
    with pytest.raises(exceptions.AMQPConnectionError, match="TLS") as caught:
        open_connection(adapter, params)
    assert "Hostname mismatch" in str(caught.value)


def test_external_login_with_client_certificate(adapter: LoopDriver, tls_broker: TLSBroker) -> None:
    params = ConnectionParameters(
        host="localhost",
        port=tls_broker.port,
        credentials=ExternalCredentials(),
        ssl_options=SSLOptions(tls_broker.client_context(with_certificate=True)),
    )
    conn = open_connection(adapter, params)
    try:
        assert _round_trip(adapter, conn) == b"over TLS"
        listing = tls_broker.node.rabbitmqctl(
            "--quiet", "list_connections", "user", "auth_mechanism", "ssl", "--no-table-headers"
        )
        # Connections of earlier tests may still be on their way out; ours is the EXTERNAL one.
        assert ["guest", "EXTERNAL", "true"] in [line.split() for line in listing.splitlines()]
    finally:
        close_connection(adapter, conn)


def test_external_login_without_certificate_is_refused(
    adapter: LoopDriver, tls_broker: TLSBroker
) -> None:
    params = ConnectionParameters(
        host="localhost",
        port=tls_broker.port,
        credentials=ExternalCredentials(),
        ssl_options=SSLOptions(tls_broker.client_context()),
    )
    with pytest.raises(exceptions.AMQPConnectionError):
        open_connection(adapter, params)


def test_twisted_over_tls_plain_and_external_login(tls_broker: TLSBroker) -> None:
    """TwistedProtocolConnection over Twisted's TLS (in a process of its own: tests/twisted)."""
    from tests.twisted.test_twisted import run_tls_scenario

    run_tls_scenario(tls_broker)
