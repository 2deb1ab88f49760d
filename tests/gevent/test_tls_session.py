"""amqp-gevent's TLS session over memory BIOs, without a socket: how the peer's end is read."""

from __future__ import annotations

import contextlib
import ssl

import trustme

from amqp_gevent.io_services import _TLS


def _pair() -> tuple[_TLS, ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    authority = trustme.CA()
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    authority.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    client = _TLS(client_context, "localhost")
    server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_context.wrap_bio(server_in, server_out, server_side=True)
    for _ in range(10):
        done = True
        for side in (client.session, server):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                done = False
        server_in.write(client.outgoing.read())
        client.incoming.write(server_out.read())
        if done:
            break
    return client, server, server_in, server_out


def test_data_then_close_notify_ends_the_stream() -> None:
    client, server, _server_in, server_out = _pair()
    server.write(b"last words")
    # The server then waits for our close_notify; only its own matters here.
    with contextlib.suppress(ssl.SSLWantReadError):
        server.unwrap()
    # Python's SSLObject.read answers the close_notify with b"" rather than raising: that must
    # end the stream, not be read again forever.
    assert client.decrypt(server_out.read()) == (b"last words", True)


def test_data_without_an_end_keeps_the_stream_open() -> None:
    client, server, _server_in, server_out = _pair()
    server.write(b"more to come")
    assert client.decrypt(server_out.read()) == (b"more to come", False)
