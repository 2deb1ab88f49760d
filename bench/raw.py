"""The wire's ceiling: AMQP over a raw socket, with pre-encoded frames and no decoding.

Nothing here is a client anyone should use. It opens a connection the slow, simple way (the
handshake is decoded with :mod:`amqp_core.frame`, untimed), and from then on it only writes
bytes encoded before the clock starts and scans what comes back by frame header: a delivery is
counted when its method frame's class and method ids say ``basic.deliver``, a confirm's delivery
tag is read at its fixed offset, and nothing is turned into objects. What the broker does with
that is the most any Python client could get out of it on this machine, so the benchmark shows
every client's figure also as a share of it.

The same module fills queues for the consume scenario (:func:`fill_queue`), answers the RPC
scenario's requests (:func:`rpc_responder`) and reads a queue's depth with a passive
``queue.declare`` (:class:`RawConnection.message_count`; ``python -m bench.raw wait-for-depth``
is the publish scenario's poller, in a process of its own), so that none of the clients
measured does any of that work.
"""

from __future__ import annotations

import socket
import struct
import sys
import time
from urllib.parse import unquote, urlsplit

from amqp_core import frame, spec
from amqp_core.amqp_object import Method

__all__ = ("RawConnection", "fill_queue", "publish_frames", "rpc_responder")

_FRAME_HEAD = struct.Struct(">BHI")
_METHOD_IDS = struct.Struct(">HH")
_ACK_FIELDS = struct.Struct(">QB")
# class 60 (basic): deliver 60, ack 80, nack 120, consume-ok 21; frame end octet.
_DELIVER = (60 << 16) | 60
_ACK = (60 << 16) | 80
_NACK = (60 << 16) | 120
_FRAME_END = 0xCE


class RawConnection:
    """One AMQP connection on a plain socket, with one open channel (number 1).

    Args:
        url: ``amqp://user:password@host:port/vhost``.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname or "localhost", parts.port or 5672))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.frame_max = 0
        user = unquote(parts.username or "guest")
        password = unquote(parts.password or "guest")
        vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        self.sock.sendall(b"AMQP\x00\x00\x09\x01")
        self.expect(spec.Connection.Start)
        self.send_method(
            0,
            spec.Connection.StartOk(
                client_properties={"product": "bench-raw"},
                mechanism="PLAIN",
                response=f"\0{user}\0{password}",
                locale="en_US",
            ),
        )
        tune = self.expect(spec.Connection.Tune)
        assert isinstance(tune, spec.Connection.Tune)
        self.frame_max = tune.frame_max
        self.send_method(
            0, spec.Connection.TuneOk(channel_max=tune.channel_max, frame_max=tune.frame_max)
        )
        self.send_method(0, spec.Connection.Open(virtual_host=vhost))
        self.expect(spec.Connection.OpenOk)
        self.send_method(1, spec.Channel.Open())
        self.expect(spec.Channel.OpenOk)

    # -- the slow, decoded path (setup only) ----------------------------------------------

    def send_method(self, channel: int, method: Method) -> None:
        """Encode and send one method frame."""
        self.sock.sendall(frame.encode_method_frame(channel, method))

    def expect(self, kind: type) -> object:
        """Read frames until a method of type ``kind`` arrives; return it."""
        while True:
            parsed = frame.parse_frame(self.buf)
            if parsed is None:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("the broker closed the socket")
                self.buf += chunk
                continue
            got, end = parsed
            del self.buf[:end]
            if isinstance(got, frame.Method):
                if isinstance(got.method, kind):
                    return got.method
                if isinstance(got.method, spec.Connection.Close | spec.Channel.Close):
                    raise ConnectionError(f"closed by the broker: {got.method!r}")

    def rpc(self, method: Method, reply: type) -> object:
        """Send a method on channel 1 and wait for its reply."""
        self.send_method(1, method)
        return self.expect(reply)

    def message_count(self, queue: str) -> int:
        """The queue's depth, by a passive declare."""
        ok = self.rpc(spec.Queue.Declare(queue=queue, passive=True), spec.Queue.DeclareOk)
        assert isinstance(ok, spec.Queue.DeclareOk)
        return ok.message_count

    def close(self) -> None:
        """Close the connection politely, then the socket."""
        try:
            bye = spec.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0)
            self.send_method(0, bye)
            self.expect(spec.Connection.CloseOk)
        finally:
            self.sock.close()

    # -- the fast path ----------------------------------------------------------------------

    def scan(self, want: int, ack_every: int = 0) -> int:
        """Count deliveries by frame header until ``want`` arrived; ack every ``ack_every``.

        Returns the number counted (``want``). Acks are ``multiple`` with the delivery tag equal
        to the count, which holds on a fresh channel.
        """
        sock = self.sock
        buf = self.buf
        unpack_head = _FRAME_HEAD.unpack_from
        unpack_ids = _METHOD_IDS.unpack_from
        pack_ack = ack_frame
        count = 0
        offset = 0
        while count < want:
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("the broker closed the socket")
            buf += chunk
            end = len(buf)
            while end - offset >= 7:
                kind, _channel, size = unpack_head(buf, offset)
                if end - offset < size + 8:
                    break
                if kind == 1:
                    klass, meth = unpack_ids(buf, offset + 7)
                    if (klass << 16) | meth == _DELIVER:
                        count += 1
                        if ack_every and (count % ack_every == 0 or count == want):
                            sock.sendall(pack_ack(count))
                offset += size + 8
            del buf[:offset]
            offset = 0
        return count

    def count_confirms(self, want: int) -> int:
        """Read confirms (acks, multiple or not) until delivery tag ``want`` is confirmed."""
        sock = self.sock
        buf = self.buf
        unpack_head = _FRAME_HEAD.unpack_from
        unpack_ids = _METHOD_IDS.unpack_from
        unpack_ack = _ACK_FIELDS.unpack_from
        confirmed = 0
        offset = 0
        while confirmed < want:
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("the broker closed the socket")
            buf += chunk
            end = len(buf)
            while end - offset >= 7:
                kind, _channel, size = unpack_head(buf, offset)
                if end - offset < size + 8:
                    break
                if kind == 1:
                    klass, meth = unpack_ids(buf, offset + 7)
                    ids = (klass << 16) | meth
                    if ids in (_ACK, _NACK):
                        tag, multiple = unpack_ack(buf, offset + 11)
                        confirmed = tag if multiple & 1 else confirmed + 1
                offset += size + 8
            del buf[:offset]
            offset = 0
        return confirmed


# Basic.Ack on channel 1, multiple: frame header, class 60, method 80, tag, bits, frame end.
_ACK_FRAME = struct.Struct(">BHIHHQBB")


def encode_publishes(routing_key: str, body: bytes, count: int, frame_max: int) -> bytes:
    """``count`` copies of one publish to the default exchange, as one byte string."""
    one = b"".join(
        bytes(piece)
        for piece in frame.encode_content(
            1,
            spec.Basic.Publish(exchange="", routing_key=routing_key),
            spec.BasicProperties(),
            body,
            frame_max,
        )
    )
    return one * count


def publish_frames(connection: RawConnection, data: bytes) -> None:
    """Write pre-encoded frames as fast as the socket takes them."""
    view = memoryview(data)
    step = 1 << 18
    send = connection.sock.sendall
    for start in range(0, len(view), step):
        send(view[start : start + step])


def fill_queue(url: str, queue: str, count: int, body: bytes) -> None:
    """Publish ``count`` messages into ``queue`` (with confirms, so they are all there)."""
    connection = RawConnection(url)
    try:
        connection.rpc(spec.Confirm.Select(), spec.Confirm.SelectOk)
        publish_frames(connection, encode_publishes(queue, body, count, connection.frame_max))
        connection.count_confirms(count)
    finally:
        connection.close()


def rpc_responder(url: str, requests: str, replies: str, ready: object = None) -> None:
    """Answer every request on ``requests`` with a reply on ``replies``, until killed.

    The reply is pre-encoded; the request is recognised by its body frame and not decoded.
    """
    connection = RawConnection(url)
    connection.rpc(spec.Basic.Consume(queue=requests, no_ack=True), spec.Basic.ConsumeOk)
    reply = encode_publishes(replies, b"r" * 64, 1, connection.frame_max)
    if callable(ready):
        ready()
    sock = connection.sock
    buf = connection.buf
    unpack_head = _FRAME_HEAD.unpack_from
    offset = 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return
        buf += chunk
        end = len(buf)
        while end - offset >= 7:
            kind, _channel, size = unpack_head(buf, offset)
            if end - offset < size + 8:
                break
            if kind == 3:
                sock.sendall(reply)
            offset += size + 8
        del buf[:offset]
        offset = 0


def wait_for_body(connection: RawConnection) -> None:
    """Read until one body frame has arrived (an RPC reply), scanning frame headers only."""
    sock = connection.sock
    buf = connection.buf
    unpack_head = _FRAME_HEAD.unpack_from
    offset = 0
    while True:
        end = len(buf)
        while end - offset >= 7:
            kind, _channel, size = unpack_head(buf, offset)
            if end - offset < size + 8:
                break
            offset += size + 8
            if kind == 3:
                del buf[:offset]
                return
        del buf[:offset]
        offset = 0
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the broker closed the socket")
        buf += chunk


def ack_frame(tag: int) -> bytes:
    """A ``basic.ack`` (multiple) for ``tag`` on channel 1."""
    return _ACK_FRAME.pack(1, 1, 13, 60, 80, tag, 1, _FRAME_END)


def main(argv: list[str]) -> int:
    """``wait-for-depth URL QUEUE COUNT``: the benchmark's depth poller, in a process of its own.

    Prints ``ready`` once connected, then, when the queue holds ``COUNT`` messages, the
    monotonic time it did.
    """
    command, url, queue, count = argv
    if command != "wait-for-depth":
        raise SystemExit(f"unknown command {command!r}")
    connection = RawConnection(url)
    try:
        print("ready", flush=True)
        deadline = time.monotonic() + 300.0
        while connection.message_count(queue) < int(count):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{queue} did not reach {count} messages")
            time.sleep(0.002)
        print(repr(time.monotonic()), flush=True)
    finally:
        connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
