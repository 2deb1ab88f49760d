"""The small interface an adapter implements so that amqp_core can run on its event loop.

amqp_core makes every AMQP decision; an adapter only moves bytes and keeps time. What it provides
is an :class:`IOServices` object: a clock, timers, a way in from other threads, name resolution,
and opening a byte stream (TCP, then TLS when asked). What it gets back is a
:class:`StreamListener` to feed with what the stream receives.

The connection workflow (several hosts, every resolved address in order, connection attempts,
retry delay, socket and stack timeouts) is written once in amqp_core over this interface; the
adapter never decides which address to try next or whether to retry.

All callbacks run on the adapter's loop thread, except where a method says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from amqp_core._types import Buffer

if TYPE_CHECKING:
    import ssl

__all__ = (
    "READ_SIZE",
    "AddressInfo",
    "Cancellable",
    "IOServices",
    "StreamListener",
    "StreamSettings",
    "SupportsSetsockopt",
    "Transport",
    "address_infos",
    "apply_tcp_options",
    "is_ip_literal",
    "lookup_host",
    "numeric_address_infos",
)


READ_SIZE: Final = 64 * 1024
"""How many bytes an adapter asks for in one read (``recv``, ``SSLObject.read``).

Kept below glibc's default ``mmap`` threshold (128 KiB). CPython allocates the result of a read
at the size asked for, then shrinks it to what arrived. Above the threshold that allocation is
an ``mmap``, given back with ``munmap``, on every read, however little arrives: about 11 us
per read on the development machine, more than the rest of the work for a small reply. A frame
bigger than this takes several reads, which amqp_core's engine joins.
"""


class Cancellable(Protocol):
    """A pending timer or I/O operation that can be called off."""

    def cancel(self) -> None:
        """Call it off; its callback will not run. Calling it twice, or too late, is harmless."""


@dataclass(frozen=True, slots=True)
class AddressInfo:
    """One resolved address of a host, as ``socket.getaddrinfo`` gives it.

    Attributes:
        family: the address family (``socket.AF_INET``, ``socket.AF_INET6`` ...).
        socktype: the socket type (``socket.SOCK_STREAM``).
        proto: the protocol number.
        sockaddr: the address to connect to, e.g. ``("127.0.0.1", 5672)``.
    """

    family: int
    socktype: int
    proto: int
    sockaddr: tuple[str, int] | tuple[str, int, int, int]


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """How to open one byte stream: what the adapter needs to know, and nothing of AMQP.

    Attributes:
        address: where to connect.
        host: the host name the address was resolved from (used for TLS server name checks
            when ``server_hostname`` is None).
        connect_timeout: seconds allowed for the TCP connect (pika's ``socket_timeout``), or
            None for no limit.
        tcp_options: socket options to set after connecting, by name (``TCP_KEEPIDLE``,
            ``TCP_KEEPINTVL``, ``TCP_KEEPCNT``, ``TCP_USER_TIMEOUT``); the adapter sets the ones
            its platform has.
        ssl_context: wrap the stream in TLS with this context, or None for plain TCP.
        server_hostname: the name to check the server's certificate against (and send as SNI).
    """

    address: AddressInfo
    host: str
    connect_timeout: float | None
    tcp_options: Mapping[str, int] | None
    ssl_context: ssl.SSLContext | None
    server_hostname: str | None


class Transport(Protocol):
    """A connected byte stream, as the adapter exposes it to amqp_core."""

    def write(self, data: Buffer) -> None:
        """Queue ``data`` for sending; never blocks. Writes keep their order."""

    def write_buffer_size(self) -> int:
        """Return how many written bytes the stream has not yet handed to the OS.

        amqp_core uses it to stop producing while the peer reads slower than we write.
        """
        ...

    def close(self) -> None:
        """Send what is queued, then close; the listener's ``connection_lost`` follows."""

    def abort(self) -> None:
        """Close at once, dropping what is queued; the listener's ``connection_lost`` follows."""


class StreamListener(Protocol):
    """What amqp_core gives the adapter to report on an open stream."""

    def data_received(self, data: bytes) -> None:
        """Bytes arrived on the stream."""

    def write_drained(self) -> None:
        """The stream's write buffer fell back below the adapter's low-water mark."""

    def connection_lost(self, error: BaseException | None) -> None:
        """The stream ended: ``None`` for an orderly end (EOF or our own close), else why.

        Called exactly once per stream.
        """


class IOServices(Protocol):
    """The services of one event loop, as amqp_core needs them."""

    def now(self) -> float:
        """Return the loop's monotonic clock, in seconds."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        """Run ``callback`` on the loop after ``delay`` seconds (0 = as soon as possible)."""
        ...

    def add_callback_threadsafe(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop soon; may be called from any thread, and wakes the loop."""

    def getaddrinfo(
        self,
        host: str,
        port: int,
        on_done: Callable[[Sequence[AddressInfo] | BaseException], None],
    ) -> Cancellable:
        """Resolve ``host`` for a TCP stream without blocking the loop.

        ``on_done`` gets the addresses in the resolver's order, or the exception it raised.
        """
        ...

    def connect_stream(
        self,
        settings: StreamSettings,
        listener: StreamListener,
        on_done: Callable[[Transport | BaseException], None],
    ) -> Cancellable:
        """Open a TCP connection (and TLS over it when ``settings.ssl_context`` is set).

        ``on_done`` gets the :class:`Transport` once the stream is ready for AMQP (after the TLS
        handshake, if any), or the exception that stopped it: an ``OSError`` (or
        ``TimeoutError``) for the TCP phase, an ``ssl.SSLError`` (``SSLCertVerificationError``
        ...) for the TLS phase. From then on, the stream reports to ``listener``.
        """
        ...


class SupportsSetsockopt(Protocol):
    """A socket, as far as :func:`apply_tcp_options` needs one."""

    def setsockopt(self, level: int, option: int, value: int, /) -> None:
        """Set one socket option."""


def apply_tcp_options(
    sock: SupportsSetsockopt, tcp_options: Mapping[str, int] | None, socket_module: Any
) -> None:
    """Set the options every connection's socket gets: one rule for every adapter.

    ``TCP_NODELAY`` always (AMQP is request/response: Nagle's algorithm would hold a lone
    request back until the previous one is acknowledged). Then, as pika does: keepalive on
    (``SO_KEEPALIVE``) when ``tcp_options`` names one of the ``TCP_KEEP*`` options, which mean
    nothing without it, and each named ``TCP_*`` option this platform has (one it lacks, such
    as ``TCP_USER_TIMEOUT`` outside Linux, is skipped). An error of ``setsockopt`` itself is
    raised: the connection attempt fails with it.

    amqp_core imports no socket module; the adapter passes the one whose constants its sockets
    use (the standard library's ``socket``, or gevent's).

    Args:
        sock: the connected (or connecting) socket.
        tcp_options: the connection parameters' ``tcp_options``.
        socket_module: where the constants come from (``IPPROTO_TCP``, ``TCP_KEEPIDLE`` ...).
    """
    ipproto_tcp = socket_module.IPPROTO_TCP
    sock.setsockopt(ipproto_tcp, socket_module.TCP_NODELAY, 1)
    if not tcp_options:
        return
    if any(name.startswith("TCP_KEEP") for name in tcp_options):
        sock.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_KEEPALIVE, 1)
    for name, value in tcp_options.items():
        option = getattr(socket_module, name, None)
        if name.startswith("TCP_") and isinstance(option, int):
            sock.setsockopt(ipproto_tcp, option, value)


def is_ip_literal(host: str) -> bool:
    """Whether ``host`` is written as an IP address, so that it needs no lookup.

    An IPv6 address has a colon, which no host name has; an IPv4 address has only digits and
    dots (``inet_aton``'s short forms such as ``127.1`` included). The adapter then calls
    ``getaddrinfo`` with ``AI_NUMERICHOST``, which answers at once, with no resolver thread,
    and is the judge of whether the address is well formed. Decided without ``ipaddress``,
    which weighs about 0.25 MiB.
    """
    return ":" in host or (bool(host) and not host.strip("0123456789."))


def lookup_host(host: str) -> str | bytes:
    """``host`` as ``socket.getaddrinfo`` should be given it: ASCII bytes where it is ASCII.

    The socket module encodes a ``str`` host with Python's ``idna`` codec, whose first use
    imports it with ``stringprep`` and ``unicodedata`` (about 0.4 MiB together), and which
    raises ``UnicodeError``, not ``OSError``, for a name with an empty label. An ASCII host
    needs no encoding; a name that is not ASCII is returned as it is, for the codec.
    """
    return host.encode("ascii") if host.isascii() else host


def address_infos(results: Iterable[tuple[Any, Any, int, str, Any]]) -> list[AddressInfo]:
    """``getaddrinfo``'s results (the standard library's, or a framework's) as AddressInfo.

    The family and socket type become plain ints (the socket module gives enum members); the
    socket address is kept whole, an IPv6 address's flow info and scope id included.
    """
    return [
        AddressInfo(int(family), int(socktype), proto, tuple(sockaddr))
        for family, socktype, proto, _canonical_name, sockaddr in results
    ]


def numeric_address_infos(
    host: str, port: int, socket_module: Any
) -> list[AddressInfo] | OSError | None:
    """The lookup's outcome if ``host`` is written as an IP address; None for a name.

    Every adapter asks this first: an address is answered by ``getaddrinfo`` with
    ``AI_NUMERICHOST`` at once, in the calling thread, so no resolver thread or task is started
    for it, which is a noticeable part of a short connection's cost. The outcome is what
    ``IOServices.getaddrinfo`` hands its callback: the addresses, or the ``OSError`` of a host
    that looks like an address but is not a valid one (``1.2.3.4.5``).

    Args:
        host: the host name or address.
        port: the port the addresses get.
        socket_module: the module whose ``getaddrinfo`` answers (the standard library's
            ``socket``; amqp_core imports none).
    """
    if not is_ip_literal(host):
        return None
    try:
        infos = socket_module.getaddrinfo(
            lookup_host(host),
            port,
            type=socket_module.SOCK_STREAM,
            flags=socket_module.AI_NUMERICHOST,
        )
    except OSError as error:
        return error
    return address_infos(infos)
