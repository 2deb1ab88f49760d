"""The blocking adapter's I/O services on their own, over a socket pair (no broker)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from amqp_blocking import _io


class _Listener:
    """A stream listener that records what it is told."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.drained = 0
        self.lost: list[BaseException | None] = []

    def data_received(self, data: bytes) -> None:
        self.data.append(data)

    def write_drained(self) -> None:
        self.drained += 1

    def connection_lost(self, error: BaseException | None) -> None:
        self.lost.append(error)


@pytest.fixture
def pair() -> Iterator[tuple[_io.ThreadIOServices, _io._SocketTransport, socket.socket, _Listener]]:
    """I/O services whose thread never starts, and a transport over one end of a socket pair."""
    lock = threading.RLock()
    io = _io.ThreadIOServices(lock, lambda: None)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    listener = _Listener()
    transport = _io._SocketTransport(io, ours, listener, tls=False)
    io._transports.add(transport)
    yield io, transport, theirs, listener
    io.join()
    ours.close()
    theirs.close()


def _read(sock: socket.socket, size: int) -> bytes:
    sock.settimeout(5)
    data = b""
    while len(data) < size:
        data += sock.recv(size - len(data))
    return data


def test_writes_of_a_batch_leave_in_one_send_at_its_end(
    pair: tuple[_io.ThreadIOServices, _io._SocketTransport, socket.socket, _Listener],
) -> None:
    io, transport, theirs, listener = pair
    sent_during: list[int] = []

    def flush() -> None:
        for index in range(100):
            transport.write(b"%03d" % index)
        sent_during.append(transport.out_size)

    with io._lock:
        io.call_later(0, flush)
        io.run_ready()
    assert sent_during == [300]  # nothing left while the batch ran
    assert transport.write_buffer_size() == 0
    assert _read(theirs, 300) == b"".join(b"%03d" % index for index in range(100))
    assert listener.drained == 0  # nobody asked: nobody held anything back

    def flush_twice() -> None:
        # A second flush of the batch finds output waiting and may hold its own back.
        transport.write(b"first")
        if transport.write_buffer_size() < 1:
            transport.write(b"second")

    with io._lock:
        io.call_later(0, flush_twice)
        io.run_ready()
    assert _read(theirs, 5) == b"first"
    assert listener.drained == 1  # told that the buffer drained: it can send the rest


def test_a_stream_closed_in_a_batch_ends_once_its_output_is_sent(
    pair: tuple[_io.ThreadIOServices, _io._SocketTransport, socket.socket, _Listener],
) -> None:
    io, transport, theirs, _listener = pair

    def write_then_close() -> None:
        transport.write(b"last words")
        transport.close()

    with io._lock:
        io.call_later(0, write_then_close)
        io.run_ready()
    assert _read(theirs, 10) == b"last words"
    assert transport.closed


def test_a_write_outside_a_batch_is_sent_at_once(
    pair: tuple[_io.ThreadIOServices, _io._SocketTransport, socket.socket, _Listener],
) -> None:
    io, transport, theirs, _listener = pair
    with io._lock:
        transport.write(b"now")
        assert transport.write_buffer_size() == 0
    assert _read(theirs, 3) == b"now"
