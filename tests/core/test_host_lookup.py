"""amqp_core.transport.is_ip_literal and lookup_host: how every adapter hands a host to the OS."""

from __future__ import annotations

import ipaddress
import json
import socket

import pytest

from amqp_core.transport import is_ip_literal, lookup_host
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
