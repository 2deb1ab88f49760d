# ruff: noqa: PT018, PT011
from __future__ import annotations

import copy
import ssl
from fractions import Fraction
from typing import Any

import pytest

import amqp_core
from amqp_core import connection as amqp_connection
from amqp_core.credentials import ExternalCredentials, PlainCredentials
from amqp_core.parameters import ConnectionParameters, Parameters, SSLOptions, URLParameters

pika = pytest.importorskip("pika")

OPTIONS = [
    "blocked_connection_timeout",
    "channel_max",
    "client_properties",
    "connection_attempts",
    "frame_max",
    "heartbeat",
    "host",
    "locale",
    "port",
    "retry_delay",
    "socket_timeout",
    "stack_timeout",
    "ssl_options",
    "virtual_host",
    "tcp_options",
]


def test_import_paths() -> None:
    assert amqp_core.ConnectionParameters is amqp_connection.ConnectionParameters
    assert amqp_core.URLParameters is amqp_connection.URLParameters
    assert amqp_core.SSLOptions is amqp_connection.SSLOptions
    assert amqp_core.PlainCredentials is PlainCredentials
    assert int(amqp_core.DeliveryMode.Persistent) == 2
    assert amqp_core.ExchangeType.topic == "topic"
    assert amqp_core.BasicProperties is amqp_core.spec.BasicProperties


def test_defaults_match_pika() -> None:
    ours, theirs = ConnectionParameters(), pika.ConnectionParameters()
    for name in OPTIONS:
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.credentials == PlainCredentials("guest", "guest")
    for name in dir(pika.connection.Parameters):
        if name.startswith("DEFAULT_") and name != "DEFAULT_CREDENTIALS":
            assert getattr(Parameters, name) == getattr(pika.connection.Parameters, name), name
    assert repr(ours) == repr(theirs)


GOOD: list[dict[str, Any]] = [
    {"blocked_connection_timeout": 1.5},
    {"blocked_connection_timeout": None},
    {"blocked_connection_timeout": 0},
    {"channel_max": 1},
    {"channel_max": 65535},
    {"client_properties": {"a": 1}},
    {"client_properties": None},
    {"connection_attempts": 3},
    {"frame_max": 4096},
    {"frame_max": 131072},
    {"heartbeat": 0},
    {"heartbeat": None},
    {"heartbeat": 30},
    {"host": "h"},
    {"locale": "de"},
    {"port": 1},
    {"port": 1.5},
    {"retry_delay": 0},
    {"retry_delay": 2.5},
    {"retry_delay": Fraction(5, 2)},  # any numbers.Real, as in pika
    {"socket_timeout": None},
    {"socket_timeout": 3},
    {"stack_timeout": None},
    {"stack_timeout": 0.5},
    {"virtual_host": "v"},
    {"tcp_options": {"TCP_KEEPIDLE": 1}},
    {"tcp_options": None},
    {"credentials": ExternalCredentials()},
]
BAD: list[dict[str, Any]] = [
    {"blocked_connection_timeout": -1},
    {"blocked_connection_timeout": "x"},
    {"channel_max": 0},
    {"channel_max": 65536},
    {"channel_max": "x"},
    {"channel_max": 1.5},
    {"channel_max": None},
    {"client_properties": "x"},
    {"connection_attempts": 0},
    {"connection_attempts": "x"},
    {"connection_attempts": None},
    {"credentials": "x"},
    {"credentials": None},
    {"frame_max": 4095},
    {"frame_max": 131073},
    {"frame_max": "x"},
    {"frame_max": None},
    {"heartbeat": -1},
    {"heartbeat": "x"},
    {"heartbeat": 1.5},
    {"host": 1},
    {"host": None},
    {"host": b"x"},
    {"locale": 1},
    {"locale": None},
    {"port": "x"},
    {"port": None},
    {"retry_delay": "x"},
    {"retry_delay": None},
    {"socket_timeout": 0},
    {"socket_timeout": -1},
    {"socket_timeout": "x"},
    {"stack_timeout": 0},
    {"stack_timeout": "x"},
    {"ssl_options": "x"},
    {"ssl_options": {}},
    {"virtual_host": 1},
    {"virtual_host": None},
    {"tcp_options": "x"},
    {"bogus": 1},
]


@pytest.mark.parametrize("kwargs", GOOD)
def test_good_values_like_pika(kwargs: dict[str, Any]) -> None:
    ours = ConnectionParameters(**kwargs)
    theirs = pika.ConnectionParameters(
        **{
            k: (pika.credentials.ExternalCredentials() if k == "credentials" else v)
            for k, v in kwargs.items()
        }
    )
    for name in OPTIONS:
        assert getattr(ours, name) == getattr(theirs, name), name


@pytest.mark.parametrize("kwargs", BAD)
def test_bad_values_raise_like_pika(kwargs: dict[str, Any]) -> None:
    with pytest.raises(Exception) as theirs:
        pika.ConnectionParameters(**kwargs)
    with pytest.raises(type(theirs.value)) as ours:
        ConnectionParameters(**kwargs)
    ((name, value),) = kwargs.items()
    assert name in str(ours.value) or (name == "frame_max" and "frame" in str(ours.value))
    assert repr(value)[:10] in str(ours.value) or name == "bogus"


def test_setters_validate() -> None:
    params = ConnectionParameters()
    with pytest.raises(ValueError, match="channel_max"):
        params.channel_max = 0
    params.heartbeat = lambda conn, value: value
    assert callable(params.heartbeat)


def test_ssl_port_and_eq() -> None:
    ctx = ssl.create_default_context()
    assert ConnectionParameters(ssl_options=SSLOptions(ctx)).port == 5671
    assert ConnectionParameters(ssl_options=SSLOptions(ctx), port=1).port == 1
    assert ConnectionParameters(host="a", port=1) == ConnectionParameters(
        host="a", port=1, virtual_host="x"
    )
    assert ConnectionParameters(port=2) != ConnectionParameters(port=1)
    assert ConnectionParameters().__eq__("x") is NotImplemented
    with pytest.raises(TypeError, match="SSLContext"):
        SSLOptions("x")  # type: ignore[arg-type]
    assert "server_hostname='h'" in repr(SSLOptions(ctx, "h"))
    assert "ssl=True" in repr(ConnectionParameters(ssl_options=SSLOptions(ctx)))


URLS = [
    "amqp://",
    "amqp://h",
    "amqp://h/",
    "amqp://h/%2f",
    "amqp://u:p%40@h:99/v%2Fx",
    "amqps://h",
    "AMQP://h",
    "amqp://h/a/b",
    "amqp://[::1]:5/",
    "amqp://:p@h",
    "",
    "//h",
    "amqp://h:0",
    "amqp://h?heartbeat=",
    "amqp://h?ssl_options=None",
    "amqp://h?channel_max=10&frame_max=5000&blocked_connection_timeout=1.5&connection_attempts=3"
    "&locale=de&retry_delay=3&socket_timeout=4&stack_timeout=5&client_properties={'a':1}"
    "&tcp_options={'TCP_KEEPIDLE':60}&heartbeat=7",
    "amqp://h?retry_delay=-1",
    "http://h",
]


@pytest.mark.parametrize("url", URLS)
def test_url_parsing_like_pika(url: str) -> None:
    ours, theirs = URLParameters(url), pika.URLParameters(url)
    for name in OPTIONS:
        if name == "ssl_options":
            assert (ours.ssl_options is None) == (theirs.ssl_options is None)
        else:
            assert getattr(ours, name) == getattr(theirs, name), name
    creds = ours.credentials
    assert isinstance(creds, PlainCredentials)
    assert creds.username == theirs.credentials.username
    assert creds.password == theirs.credentials.password
    assert repr(ours) == repr(theirs)


BAD_URLS = [
    "foo://h",
    "amqp://h?foo=1",
    "amqp://h?heartbeat=1&heartbeat=2",
    "amqp://h?heartbeat=x",
    "amqp://h?heartbeat=1.5",
    "amqps://h?ssl_options=None",
    "amqp://h?client_properties=[1]",
    "amqp://h?tcp_options=1",
    "amqp://h:x",
    "amqp://h?socket_timeout=0",
    "amqp://h?channel_max=x",
    "amqp://h?blocked_connection_timeout=x",
    "amqp://h?connection_attempts=1.0",
    "amqp://h?client_properties=x",
    "amqp://h?frame_max=1",
    "amqp://h?stack_timeout=x",
    "amqp://h?retry_delay=x",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_bad_urls_raise_like_pika(url: str) -> None:
    with pytest.raises(Exception) as theirs:
        pika.URLParameters(url)
    with pytest.raises(type(theirs.value)):
        URLParameters(url)


def test_url_differences_from_pika() -> None:
    # pika raises TypeError for a user without a password; we log in with an empty one.
    assert URLParameters("amqp://u@h").credentials == PlainCredentials("u", "")
    with pytest.raises(ValueError, match="Unknown ssl_options key 'bogus'"):
        URLParameters("amqp://h?ssl_options={'bogus':1}")
    with pytest.raises(ValueError, match="ssl_options"):
        URLParameters("amqp://h?ssl_options=[")
    with pytest.raises(TypeError, match="ssl_options must be a dict"):
        URLParameters("amqp://h?ssl_options=1")
    with pytest.raises(TypeError, match="url must be a str"):
        URLParameters(1)  # type: ignore[arg-type]


def test_url_ssl_options_dict(tmp_path: Any) -> None:
    params = URLParameters("amqp://h?ssl_options={'server_hostname':'x','ciphers':'HIGH'}")
    assert params.ssl_options is not None and params.ssl_options.server_hostname == "x"
    assert params.port == 5672
    with pytest.raises(FileNotFoundError):
        URLParameters("amqp://h?ssl_options={'ca_certs':'/nonexistent','certfile':'/x'}")
    amqps = URLParameters("amqps://h")
    assert amqps.ssl_options is not None
    assert amqps.ssl_options.context.verify_mode == ssl.CERT_REQUIRED
    assert amqps.ssl_options.context.check_hostname


def test_password_never_shown() -> None:
    url = "amqp://user:s3cret@h:1/v"
    params = URLParameters(url)
    assert "s3cret" not in repr(params)
    assert "s3cret" not in repr(params.credentials)
    with pytest.raises(ValueError) as err:
        URLParameters("amqp://user:s3cret@h:xx/v")
    assert "s3cret" not in str(err.value)


def test_credentials_copied_and_engine_config() -> None:
    creds = PlainCredentials("a", "b", erase_on_connect=True)
    params = ConnectionParameters(credentials=creds, heartbeat=lambda conn, value: value // 2)
    assert params.credentials == creds and params.credentials is not creds
    config = params.engine_config("conn")
    assert callable(config.heartbeat) and config.heartbeat(60) == 30
    assert ConnectionParameters(heartbeat=5).engine_config().heartbeat == 5


def test_a_deep_copy_shares_only_what_cannot_change() -> None:
    # Every connect deep-copies its parameters field by field (amqp_core._copying).
    from amqp_core.recovery import RecoveryPolicy

    def heartbeat(_connection: object, value: int) -> int:
        return value

    context = ssl.create_default_context()
    policy = RecoveryPolicy()
    params = URLParameters("amqp://u:p@example.com:5673/vh?heartbeat=7&locale=de_DE")
    params.client_properties = {"product": "x", "capabilities": {"nested": True}}
    params.tcp_options = {"TCP_KEEPIDLE": 60}
    params.ssl_options = SSLOptions(context, "name")
    params.heartbeat = heartbeat
    params.recovery = policy
    clone = copy.deepcopy(params)
    assert type(clone) is URLParameters
    for name in Parameters.__slots__:
        assert getattr(clone, name) == getattr(params, name) or name == "_ssl_options", name
    for name in ("_client_properties", "_tcp_options", "_credentials", "_ssl_options"):
        assert getattr(clone, name) is not getattr(params, name), name
    assert clone.client_properties is not None and params.client_properties is not None
    assert clone.client_properties["capabilities"] is not params.client_properties["capabilities"]
    assert clone.ssl_options is not None and clone.ssl_options.context is context
    assert clone.heartbeat is heartbeat and clone.recovery is policy
    copied, original = clone.credentials, params.credentials
    assert isinstance(copied, PlainCredentials) and isinstance(original, PlainCredentials)
    copied.erase_on_connect = True
    copied.erase_credentials()
    assert (copied.username, original.username, original.password) == ("", "u", "p")
    # One object reached twice is copied once, as copy.deepcopy promises.
    first, second = copy.deepcopy([params, params])
    assert first is second and first is not params


def test_a_deep_copy_of_a_subclass_keeps_its_own_fields() -> None:
    class Tagged(ConnectionParameters):
        __slots__ = ("__hidden", "__weakref__", "tag", "unset")

        def __init__(self) -> None:
            super().__init__()
            self.tag = ["a"]
            self.__hidden = {"k": 1}

        def hidden(self) -> dict[str, int]:
            return self.__hidden

    class Named(Tagged):
        __slots__ = "name"  # a lone slot may be a string
        name: str

    class Tokens(PlainCredentials):
        pass  # a __dict__ of its own

    params = Named()
    params.name = "n"
    credentials = Tokens("user", "secret")
    credentials.scopes = ["read"]  # type: ignore[attr-defined]
    params.credentials = credentials
    clone = copy.deepcopy(params)
    assert type(clone) is Named and clone.tag == ["a"] and clone.tag is not params.tag
    assert clone.hidden() == {"k": 1} and clone.hidden() is not params.hidden()
    assert clone.name == "n" and not hasattr(clone, "unset")
    copied = clone.credentials
    assert type(copied) is Tokens and copied.password == "secret"
    assert copied.scopes == ["read"] and copied.scopes is not credentials.scopes  # type: ignore[attr-defined]
    external = copy.deepcopy(ExternalCredentials())
    assert external == ExternalCredentials() and external.erase_on_connect is False
