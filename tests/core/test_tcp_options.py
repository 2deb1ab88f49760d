"""amqp_core.transport.apply_tcp_options: the one rule for every adapter's socket options."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from amqp_core.transport import apply_tcp_options


@pytest.fixture
def sock() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        yield s


def _nodelay(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def _keepalive(sock: socket.socket) -> int:
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)


def test_no_options_means_nodelay_only(sock: socket.socket) -> None:
    apply_tcp_options(sock, None, socket)
    assert _nodelay(sock)
    assert not _keepalive(sock)


def test_keepalive_options_turn_keepalive_on(sock: socket.socket) -> None:
    apply_tcp_options(sock, {"TCP_KEEPIDLE": 42, "TCP_KEEPINTVL": 7, "TCP_KEEPCNT": 4}, socket)
    assert _nodelay(sock)
    assert _keepalive(sock)
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 42
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 7
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4


def test_user_timeout_alone_leaves_keepalive_off(sock: socket.socket) -> None:
    apply_tcp_options(sock, {"TCP_USER_TIMEOUT": 2500}, socket)
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 2500
    assert not _keepalive(sock)


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int]] = []

    def setsockopt(self, level: int, option: int, value: int, /) -> None:
        self.calls.append((level, option, value))


def test_options_the_platform_lacks_are_skipped() -> None:
    # A platform without TCP_USER_TIMEOUT (macOS, Windows): only what exists is set.
    class Platform:
        IPPROTO_TCP = 6
        SOL_SOCKET = 1
        TCP_NODELAY = 1
        SO_KEEPALIVE = 9
        TCP_KEEPIDLE = 4

    recorder = _Recorder()
    apply_tcp_options(recorder, {"TCP_USER_TIMEOUT": 1000, "TCP_KEEPIDLE": 60}, Platform)
    assert recorder.calls == [(6, 1, 1), (1, 9, 1), (6, 4, 60)]


def test_a_setsockopt_error_is_raised() -> None:
    class Refusing:
        def setsockopt(self, level: int, option: int, value: int, /) -> None:
            raise OSError(92, "Protocol not available")

    with pytest.raises(OSError, match="Protocol not available"):
        apply_tcp_options(Refusing(), {"TCP_KEEPIDLE": 60}, socket)
