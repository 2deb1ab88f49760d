"""TLS for the native API: a RabbitMQ TLS listener with certificates made at test time."""

from __future__ import annotations

import pathlib
import socket
import ssl
import time
from collections.abc import Iterator

import anyio
import pytest
import trustme

from amqp_asyncio import connect
from amqp_core.exceptions import AMQPConnectionError
from amqp_core.parameters import ConnectionParameters, SSLOptions
from tools.broker import RabbitMQNode, find_free_port, release_port

pytestmark = [pytest.mark.anyio, pytest.mark.broker]


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
    directory = tmp_path_factory.mktemp("native-tls")
    ca_file, server_pem, server_key = (
        directory / "ca.pem",
        directory / "server.pem",
        directory / "server.key",
    )
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


async def test_tls_with_verified_server_certificate(tls_node: tuple[int, pathlib.Path]) -> None:
    port, ca_file = tls_node
    context = ssl.create_default_context(cafile=str(ca_file))
    params = ConnectionParameters(
        host="localhost", port=port, ssl_options=SSLOptions(context, "localhost")
    )
    with anyio.fail_after(15):
        async with connect(params) as connection, await connection.channel() as channel:
            declared = await channel.queue_declare("", exclusive=True)
            await channel.confirm_delivery()
            await channel.basic_publish("", declared.queue, b"over TLS")
            message = await channel.basic_get(declared.queue, auto_ack=True)
            assert message is not None
            assert message.body == b"over TLS"


async def test_tls_with_untrusted_server_certificate(tls_node: tuple[int, pathlib.Path]) -> None:
    port, _ca_file = tls_node
    # The default trust store does not know the test CA.
    params = ConnectionParameters(
        host="localhost",
        port=port,
        ssl_options=SSLOptions(ssl.create_default_context(), "localhost"),
        connection_attempts=1,
    )
    with anyio.fail_after(15), pytest.raises(AMQPConnectionError) as caught:
        async with connect(params):
            pytest.fail("the connection must not open")
    assert "TLS" in str(caught.value)
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
