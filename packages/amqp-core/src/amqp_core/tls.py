"""A TLS client session over memory BIOs, for adapters whose streams are not ``ssl`` sockets.

Some event loops cannot wrap their sockets with ``ssl`` (gevent's cooperative reads, Twisted's
protocols fed by the reactor), so they run TLS over memory: ciphertext read from the stream is
fed in, plaintext comes out, and what the session wants sent collects in :attr:`outgoing`. No
socket is touched here; the adapter moves the bytes. The ``ssl.SSLContext`` is the one
:class:`~amqp_core.parameters.SSLOptions` gives every adapter, so verification and ciphers are
the same whichever loop carries them.
"""

from __future__ import annotations

import contextlib
import ssl

from amqp_core._types import Buffer
from amqp_core.transport import READ_SIZE


class TLSSession:
    """The client side of one TLS connection, over a pair of memory BIOs.

    Args:
        context: the client context (certificates, verification, ciphers).
        server_hostname: the name the broker's certificate must carry (also sent as SNI).

    Attributes:
        incoming: ciphertext received from the stream, not yet read by the session.
        outgoing: ciphertext the session produced; the adapter sends it on the stream.
        session: the ``ssl.SSLObject`` itself.
    """

    __slots__ = ("incoming", "outgoing", "session")

    def __init__(self, context: ssl.SSLContext, server_hostname: str) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.session = context.wrap_bio(
            self.incoming, self.outgoing, server_hostname=server_hostname
        )

    def handshake(self, data: bytes = b"") -> bool:
        """Feed ``data`` to the handshake; return whether the handshake is done.

        Whatever the session answers is in :attr:`outgoing` afterwards, also when the handshake
        fails (the alert that tells the broker why).

        Raises:
            ssl.SSLError: the handshake failed (``ssl.SSLCertVerificationError`` for a
                certificate that does not verify).
        """
        if data:
            self.incoming.write(data)
        try:
            self.session.do_handshake()
        except ssl.SSLWantReadError:
            return False
        return True

    def decrypt(self, data: bytes) -> tuple[bytes, bool]:
        """Return the plaintext that ``data`` completes, and whether the peer closed TLS.

        Raises:
            ssl.SSLError: the ciphertext is corrupt or the peer sent a fatal alert.
        """
        self.incoming.write(data)
        pieces: list[bytes] = []
        while True:
            try:
                piece = self.session.read(READ_SIZE)
            except ssl.SSLWantReadError:
                return b"".join(pieces), False
            except ssl.SSLZeroReturnError:
                return b"".join(pieces), True
            if not piece:
                # The peer's close_notify: SSLObject.read answers it with b"", not an error.
                return b"".join(pieces), True
            pieces.append(piece)

    def encrypt(self, data: Buffer) -> bytes:
        """Return the ciphertext of ``data`` (and of anything else the session had to send)."""
        self.session.write(data)
        return self.outgoing.read()

    def goodbye(self) -> bytes:
        """Return our close_notify (to send before closing the stream); the reply is not awaited."""
        with contextlib.suppress(ssl.SSLError):
            self.session.unwrap()
        return self.outgoing.read()
