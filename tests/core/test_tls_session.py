"""amqp_core.tls: the TLS session over memory BIOs that the gevent and Twisted adapters use."""

from __future__ import annotations

import contextlib
import ssl

import pytest
import trustme

from amqp_core.tls import TLSSession


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


def _pair(
    authority: trustme.CA, hostname: str = "localhost"
) -> tuple[TLSSession, ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    authority.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    client = TLSSession(client_context, hostname)
    server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_context.wrap_bio(server_in, server_out, server_side=True)
    for _ in range(10):
        client_done = client.handshake()
        server_in.write(client.outgoing.read())
        try:
            server.do_handshake()
            server_done = True
        except ssl.SSLWantReadError:
            server_done = False
        client.incoming.write(server_out.read())
        if client_done and server_done:
            break
    return client, server, server_in, server_out


def test_data_then_close_notify_ends_the_stream(authority: trustme.CA) -> None:
    client, server, _server_in, server_out = _pair(authority)
    server.write(b"last words")
    # The server then waits for our close_notify; only its own matters here.
    with contextlib.suppress(ssl.SSLWantReadError):
        server.unwrap()
    # Python's SSLObject.read answers the close_notify with b"" rather than raising: that must
    # end the stream, not be read again forever.
    assert client.decrypt(server_out.read()) == (b"last words", True)


def test_data_without_an_end_keeps_the_stream_open(authority: trustme.CA) -> None:
    client, server, _server_in, server_out = _pair(authority)
    server.write(b"more to come")
    assert client.decrypt(server_out.read()) == (b"more to come", False)


def test_both_ways_and_goodbye(authority: trustme.CA) -> None:
    client, server, server_in, _server_out = _pair(authority)
    server_in.write(client.encrypt(b"AMQP\x00\x00\x09\x01"))
    assert server.read(64) == b"AMQP\x00\x00\x09\x01"
    server_in.write(client.goodbye())
    # The server reads our close_notify as the clean end of the stream.
    assert server.read(64) == b""


def test_a_certificate_for_another_name_fails_the_handshake(authority: trustme.CA) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        _pair(authority, hostname="rabbit.example")


def test_corrupt_ciphertext_is_an_ssl_error(authority: trustme.CA) -> None:
    client, _server, _server_in, _server_out = _pair(authority)
    with pytest.raises(ssl.SSLError):
        client.decrypt(b"\x17\x03\x03\x00\x05garbage")
