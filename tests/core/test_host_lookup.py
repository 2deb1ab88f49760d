"""amqp_core.transport's host helpers: how every adapter hands a host to the OS.

``is_ip_literal``, ``lookup_host``, and ``numeric_address_infos`` / ``address_infos``, which
every adapter uses to answer an IP address at once and to turn ``getaddrinfo``'s results into
``AddressInfo``.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from types import SimpleNamespace
from typing import Any

import pytest

from amqp_core.transport import (
    AddressInfo,
    address_infos,
    is_ip_literal,
    lookup_host,
    numeric_address_infos,
)
from tests.fresh_interpreter import run_python

ADDRESSES = ["127.0.0.1", "0.0.0.0", "255.255.255.255", "::1", "::", "fe80::1%lo", "2001:db8::7"]
NAMES = ["localhost", "rabbit.example.com", "host-1", "xn--bcher-kva.example", "bücher.example"]


@pytest.mark.parametrize("host", ADDRESSES)
def test_addresses_are_literals_that_need_no_lookup(host: str) -> None:
    assert is_ip_literal(host)
    ipaddress.ip_address(host.split("%")[0])  # what the adapters used to decide it with
    infos = socket.getaddrinfo(
        lookup_host(host), 5672, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
    )
    assert infos


@pytest.mark.parametrize("host", NAMES)
def test_names_are_looked_up(host: str) -> None:
    assert not is_ip_literal(host)


def test_an_empty_host_is_not_a_literal() -> None:
    assert not is_ip_literal("")


def test_a_malformed_address_is_refused_by_getaddrinfo_as_an_oserror() -> None:
    # Taken for a literal (no name has only digits and dots), then judged by the OS: the
    # adapter reports the OSError as the lookup's outcome.
    assert is_ip_literal("1.2.3.4.5")
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo(lookup_host("1.2.3.4.5"), 1, flags=socket.AI_NUMERICHOST)


def test_ascii_hosts_go_as_bytes_and_others_as_text() -> None:
    assert lookup_host("127.0.0.1") == b"127.0.0.1"
    assert lookup_host("rabbit.example.com") == b"rabbit.example.com"
    assert lookup_host("bücher.example") == "bücher.example"


def test_an_empty_label_fails_as_an_oserror_not_a_unicode_error() -> None:
    # Given as text, the socket module's idna codec would raise UnicodeError, which adapters
    # that expect a lookup's OSError would let escape.
    with pytest.raises(UnicodeError):
        socket.getaddrinfo("a..b", 1)
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo(lookup_host("a..b"), 1)


def test_a_numeric_lookup_loads_no_idna_codec() -> None:
    script = (
        "import json, socket, sys\n"
        "from amqp_core.transport import lookup_host\n"
        "socket.getaddrinfo(lookup_host('127.0.0.1'), 1, flags=socket.AI_NUMERICHOST)\n"
        "print(json.dumps([m for m in ('encodings.idna', 'ipaddress') if m in sys.modules]))\n"
    )
    assert json.loads(run_python(script)) == []


@pytest.mark.parametrize("host", ADDRESSES)
def test_an_address_is_answered_whole_without_a_lookup(host: str) -> None:
    infos = numeric_address_infos(host, 5672, socket)
    assert isinstance(infos, list)
    assert infos
    for info in infos:
        assert type(info.family) is int
        assert info.family in (socket.AF_INET, socket.AF_INET6)
        assert info.socktype == socket.SOCK_STREAM
        assert type(info.socktype) is int
        assert info.sockaddr[1] == 5672
    # An IPv6 address keeps its flow info and scope id (a link-local one needs the scope).
    expected = socket.getaddrinfo(host, 5672, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    assert [info.sockaddr for info in infos] == [tuple(found[4]) for found in expected]


@pytest.mark.parametrize("host", NAMES)
def test_a_name_is_left_to_the_adapters_resolver(host: str) -> None:
    def never(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a name must not be looked up here")

    fake_socket = SimpleNamespace(getaddrinfo=never, SOCK_STREAM=1, AI_NUMERICHOST=4)
    assert numeric_address_infos(host, 5672, fake_socket) is None


def test_a_malformed_address_is_answered_with_the_lookups_oserror() -> None:
    # Returned, not raised: it is what the adapter hands its callback, as a failed lookup.
    assert isinstance(numeric_address_infos("1.2.3.4.5", 5672, socket), socket.gaierror)


def test_address_infos_takes_any_resolvers_tuples() -> None:
    results = [
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ["::1", 1, 0, 0]),
        (int(socket.AF_INET), int(socket.SOCK_STREAM), 6, "name", ("10.0.0.1", 1)),
    ]
    assert address_infos(results) == [
        AddressInfo(int(socket.AF_INET6), int(socket.SOCK_STREAM), 6, ("::1", 1, 0, 0)),
        AddressInfo(int(socket.AF_INET), int(socket.SOCK_STREAM), 6, ("10.0.0.1", 1)),
    ]
    assert all(type(info.family) is int for info in address_infos(results))
