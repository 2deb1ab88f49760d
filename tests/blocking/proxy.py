"""A tiny loopback TCP proxy for the blocking tests: cut it, or freeze it, on demand.

Cutting closes both sides at once (a TCP drop as the client sees it); freezing keeps the
sockets open but stops forwarding (a broker that went silent).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading


class TCPProxy:
    """Forward one listening loopback port to ``(host, port)``, in a thread.

    Args:
        host: the target host.
        port: the target port.
    """

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.frozen = threading.Event()
        self._stop = threading.Event()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._run, name="test-proxy", daemon=True)
        self._thread.start()

    def cut(self) -> None:
        """Close every proxied connection at once."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):  # the proxy may be closing already
            self._wake_w.send(b"c")

    def freeze(self) -> None:
        """Stop forwarding in both directions, keeping the sockets open."""
        self.frozen.set()

    def close(self) -> None:
        """Stop the proxy and close every socket."""
        self._stop.set()
        self._wake_w.send(b"s")
        self._thread.join(10)
        self._wake_r.close()
        self._wake_w.close()

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.listener, selectors.EVENT_READ, None)
        selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        peers: dict[socket.socket, socket.socket] = {}
        try:
            while not self._stop.is_set():
                for key, _mask in selector.select(0.2):
                    if key.data is None:
                        client, _ = self.listener.accept()
                        upstream = socket.create_connection(self.target)
                        peers[client] = upstream
                        peers[upstream] = client
                        with self._lock:
                            self._pairs.append((client, upstream))
                        selector.register(client, selectors.EVENT_READ, "data")
                        selector.register(upstream, selectors.EVENT_READ, "data")
                    elif key.data == "wake":
                        self._wake_r.recv(100)
                    else:
                        sock = key.fileobj
                        assert isinstance(sock, socket.socket)
                        if self.frozen.is_set():
                            # Leave the bytes in the kernel buffers; nothing moves.
                            selector.unregister(sock)
                            continue
                        try:
                            data = sock.recv(65536)
                        except OSError:
                            data = b""
                        other = peers.get(sock)
                        if not data or other is None:
                            self._drop(selector, peers, sock)
                            continue
                        try:
                            other.sendall(data)
                        except OSError:
                            self._drop(selector, peers, sock)
                # Drop pairs that cut() shut down.
                for sock in list(peers):
                    if sock.fileno() == -1:
                        peers.pop(sock, None)
        finally:
            for sock in list(peers):
                with contextlib.suppress(KeyError, ValueError):
                    selector.unregister(sock)
                sock.close()
            selector.close()
            self.listener.close()

    def _drop(
        self,
        selector: selectors.BaseSelector,
        peers: dict[socket.socket, socket.socket],
        sock: socket.socket,
    ) -> None:
        other = peers.pop(sock, None)
        for s in (sock, other):
            if s is None:
                continue
            peers.pop(s, None)
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(s)
            s.close()
