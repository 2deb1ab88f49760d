"""Connection parameters under pika's names: ``ConnectionParameters``, ``URLParameters`` ...

Every setting is a validated property, so a bad value fails where it is set, with a
``TypeError`` (wrong type) or ``ValueError`` (wrong value) that names the option and the value.
The defaults, the validation rules and the URL grammar follow pika 1.4; the few deliberate
differences are listed in ``docs/migration.md``.

This is the only module of amqp_core that uses :mod:`ssl`: building an ``ssl.SSLContext``
for an ``amqps://`` URL is configuration, not I/O (no socket is touched), and the adapter that
opens the stream receives the finished context. :mod:`ssl` (about 6 MiB of resident memory with
the OpenSSL libraries it loads), :mod:`urllib.parse` and :mod:`ast` are imported only by the
code that needs them, so that a plain-TCP consumer never pays for them.

Passwords never leave this module in text form: reprs show host, port, virtual host and
whether TLS is on, nothing of the credentials.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeAlias

from amqp_core._copying import deep_copy_fields
from amqp_core.config import EngineConfig
from amqp_core.credentials import VALID_TYPES, Credentials, PlainCredentials
from amqp_core.data import FieldValue

if TYPE_CHECKING:
    import ssl

    from amqp_core.recovery import RecoveryPolicy

__all__ = (
    "MIN_MAX_UNSENT_BYTES",
    "TCP_OPTION_NAMES",
    "ConnectionParameters",
    "Parameters",
    "SSLOptions",
    "URLParameters",
)

#: The TCP socket options ``tcp_options`` may name (pika's ``tcp_socket_opts``); the adapter
#: sets those its platform has. Validated by name so that the core need not import socket.
TCP_OPTION_NAMES: Final = frozenset(
    {"TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT", "TCP_USER_TIMEOUT"}
)

HeartbeatCallable: TypeAlias = Callable[[Any, int], int]
"""pika's heartbeat callable: ``(connection, broker_value) -> timeout`` in seconds."""

#: The smallest ``max_unsent_bytes`` (besides 0 and None, no limit). Output-drained callbacks
#: run at half the limit, which must stay above the 64 KiB at which the adapters' transports
#: report that their own buffers drained.
MIN_MAX_UNSENT_BYTES: Final = 1024 * 1024

# pika's spec constants: the smallest frame every peer accepts (spec 4.2.3 "frame-min-size")
# and the largest frame pika agrees to propose.
_FRAME_MIN_SIZE: Final = 4096
_FRAME_MAX_SIZE: Final = 131072


class SSLOptions:
    """TLS settings for a connection: an ``ssl.SSLContext`` and the name to verify.

    Args:
        context: the context that wraps the TCP stream; certificate and hostname checks are
            whatever it says (``ssl.create_default_context()`` checks both).
        server_hostname: the name to check the certificate against and to send as SNI; None
            uses the connection's host.

    Raises:
        TypeError: ``context`` is not an ``ssl.SSLContext``.
    """

    __slots__ = ("context", "server_hostname")

    def __init__(self, context: ssl.SSLContext, server_hostname: str | None = None) -> None:
        # Whoever holds an SSLContext has imported ssl already: this import costs nothing then.
        import ssl

        if not isinstance(context, ssl.SSLContext):
            raise TypeError(f"context must be of ssl.SSLContext type, but got {context!r}")
        self.context = context
        self.server_hostname = server_hostname

    def __repr__(self) -> str:
        return f"<SSLOptions server_hostname={self.server_hostname!r}>"

    def __deepcopy__(self, memo: dict[int, object]) -> SSLOptions:
        # An SSLContext cannot be copied; sharing it is safe (it is configuration).
        return SSLOptions(self.context, self.server_hostname)


class _DefaultType:
    """Marks an argument that was not given (``None`` is a meaningful value for several)."""

    def __repr__(self) -> str:
        return "_DEFAULT"


def _literal_eval(text: str) -> Any:
    # ast is only needed for the dict-valued URL options; most programs never parse one.
    import ast

    return ast.literal_eval(text)


def _type_name(value: object) -> str:
    return type(value).__name__


def _is_real(value: object) -> bool:
    """Whether ``value`` is a ``numbers.Real`` (an int, a float, a Fraction, a NumPy float ...).

    Without importing ``numbers`` when a program has not (most do not need it): a type can
    only be registered as a ``Real`` once ``numbers`` is loaded.
    """
    if isinstance(value, (int, float)):
        return True
    numbers = sys.modules.get("numbers")
    return numbers is not None and isinstance(value, numbers.Real)


def _check_int(name: str, value: object) -> int:
    # bool is an int to Python and to pika (True is accepted as 1).
    if not isinstance(value, int):
        raise TypeError(f"{name} must be an int, but got {value!r}")
    return value


def _check_real(name: str, value: object) -> float:
    if not _is_real(value):
        raise TypeError(f"{name} must be a float or int, but got {value!r}")
    return value  # type: ignore[return-value]  # a Real is float-compatible


def _check_str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, but got {value!r}")
    return value


def _check_optional_timeout(name: str, value: object) -> float | None:
    if value is None:
        return None
    number = _check_real(name, value)
    if number <= 0:
        raise ValueError(f"{name} must be > 0, but got {value!r}")
    return float(number)


class Parameters:
    """The settings of one connection, each a validated property (pika's base class).

    Build it through :class:`ConnectionParameters` or :class:`URLParameters`. Two parameter
    objects are equal when they name the same host and port (pika's rule).
    """

    DEFAULT_USERNAME: ClassVar[str] = "guest"
    DEFAULT_PASSWORD: ClassVar[str] = "guest"

    DEFAULT_BLOCKED_CONNECTION_TIMEOUT: ClassVar[float | None] = None
    DEFAULT_CHANNEL_MAX: ClassVar[int] = 65535
    DEFAULT_CLIENT_PROPERTIES: ClassVar[dict[str, FieldValue] | None] = None
    DEFAULT_CREDENTIALS: ClassVar[Credentials] = PlainCredentials(
        DEFAULT_USERNAME, DEFAULT_PASSWORD
    )
    DEFAULT_CONNECTION_ATTEMPTS: ClassVar[int] = 1
    DEFAULT_FRAME_MAX: ClassVar[int] = _FRAME_MAX_SIZE
    DEFAULT_HEARTBEAT_TIMEOUT: ClassVar[int | None] = None
    DEFAULT_HOST: ClassVar[str] = "localhost"
    DEFAULT_LOCALE: ClassVar[str] = "en_US"
    DEFAULT_MAX_UNSENT_BYTES: ClassVar[int | None] = 64 * 1024 * 1024
    DEFAULT_PORT: ClassVar[int] = 5672
    DEFAULT_RETRY_DELAY: ClassVar[float] = 2.0
    DEFAULT_SOCKET_TIMEOUT: ClassVar[float | None] = 10.0
    DEFAULT_STACK_TIMEOUT: ClassVar[float | None] = 15.0
    DEFAULT_SSL: ClassVar[bool] = False
    DEFAULT_SSL_OPTIONS: ClassVar[SSLOptions | None] = None
    DEFAULT_SSL_PORT: ClassVar[int] = 5671
    DEFAULT_VIRTUAL_HOST: ClassVar[str] = "/"
    DEFAULT_TCP_OPTIONS: ClassVar[dict[str, int] | None] = None

    __slots__ = (
        "_blocked_connection_timeout",
        "_channel_max",
        "_client_properties",
        "_connection_attempts",
        "_credentials",
        "_frame_max",
        "_heartbeat",
        "_host",
        "_locale",
        "_max_unsent_bytes",
        "_port",
        "_recovery",
        "_retry_delay",
        "_socket_timeout",
        "_ssl_options",
        "_stack_timeout",
        "_tcp_options",
        "_virtual_host",
    )

    def __init__(self) -> None:
        self._blocked_connection_timeout: float | None = self.DEFAULT_BLOCKED_CONNECTION_TIMEOUT
        self._channel_max = self.DEFAULT_CHANNEL_MAX
        self._client_properties: dict[str, FieldValue] | None = self.DEFAULT_CLIENT_PROPERTIES
        self._connection_attempts = self.DEFAULT_CONNECTION_ATTEMPTS
        # A copy: erase_on_connect must not erase the class-wide default.
        self._credentials: Credentials = copy.deepcopy(self.DEFAULT_CREDENTIALS)
        self._frame_max = self.DEFAULT_FRAME_MAX
        self._heartbeat: int | HeartbeatCallable | None = self.DEFAULT_HEARTBEAT_TIMEOUT
        self._host = self.DEFAULT_HOST
        self._locale = self.DEFAULT_LOCALE
        self._max_unsent_bytes: int | None = self.DEFAULT_MAX_UNSENT_BYTES
        self._port = self.DEFAULT_PORT
        self._retry_delay: float = self.DEFAULT_RETRY_DELAY
        self._recovery: RecoveryPolicy | None = None
        self._socket_timeout: float | None = self.DEFAULT_SOCKET_TIMEOUT
        self._stack_timeout: float | None = self.DEFAULT_STACK_TIMEOUT
        self._ssl_options: SSLOptions | None = self.DEFAULT_SSL_OPTIONS
        self._tcp_options: dict[str, int] | None = self.DEFAULT_TCP_OPTIONS
        self._virtual_host = self.DEFAULT_VIRTUAL_HOST

    def __repr__(self) -> str:
        # pika's format; nothing of the credentials.
        return (
            f"<{self.__class__.__name__} host={self.host} port={self.port} "
            f"virtual_host={self.virtual_host} ssl={self.ssl_options is not None}>"
        )

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Parameters):
            return (self.host, self.port) == (other.host, other.port)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __deepcopy__(self, memo: dict[int, Any]) -> Parameters:
        # Every connect deep-copies its parameters: field by field is several times cheaper
        # than copy.deepcopy's generic way (see _copying).
        return deep_copy_fields(self, memo)

    # ------------------------------------------------------------------ properties

    @property
    def blocked_connection_timeout(self) -> float | None:
        """Seconds the broker may keep the connection blocked before it is torn down.

        None (the default) waits forever. On expiry the connection closes with
        :class:`~amqp_core.exceptions.ConnectionBlockedTimeout`.
        """
        return self._blocked_connection_timeout

    @blocked_connection_timeout.setter
    def blocked_connection_timeout(self, value: float | None) -> None:
        if value is not None:
            if not _is_real(value):
                raise TypeError(
                    f"blocked_connection_timeout must be a Real number, but got {value!r}"
                )
            if value < 0:
                raise ValueError(f"blocked_connection_timeout must be >= 0, but got {value!r}")
        self._blocked_connection_timeout = value

    @property
    def channel_max(self) -> int:
        """The highest channel number to propose in tuning, 1..65535 (default 65535)."""
        return self._channel_max

    @channel_max.setter
    def channel_max(self, value: int) -> None:
        number = _check_int("channel_max", value)
        if not 0 < number <= 65535:
            raise ValueError(f"channel_max must be <= 65535 and > 0, but got {value!r}")
        self._channel_max = number

    @property
    def client_properties(self) -> dict[str, FieldValue] | None:
        """Entries merged over the default client properties of ``Connection.Start-Ok``."""
        return self._client_properties

    @client_properties.setter
    def client_properties(self, value: dict[str, FieldValue] | None) -> None:
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"client_properties must be dict or None, but got {value!r}")
        self._client_properties = value

    @property
    def connection_attempts(self) -> int:
        """How many times the whole list of hosts is tried (default 1)."""
        return self._connection_attempts

    @connection_attempts.setter
    def connection_attempts(self, value: int) -> None:
        number = _check_int("connection_attempts", value)
        if number <= 0:
            raise ValueError(f"connection_attempts must be > 0, but got {value!r}")
        self._connection_attempts = number

    @property
    def credentials(self) -> Credentials:
        """How to log in: :class:`PlainCredentials` (default guest/guest) or External."""
        return self._credentials

    @credentials.setter
    def credentials(self, value: Credentials) -> None:
        if not isinstance(value, tuple(VALID_TYPES)):
            names = ", ".join(cls.__name__ for cls in VALID_TYPES)
            raise TypeError(f"credentials must be an object of type: {names}, but got {value!r}")
        # A copy, as pika does: erase_on_connect then erases ours, not the caller's object.
        self._credentials = copy.deepcopy(value)

    @property
    def frame_max(self) -> int:
        """The largest frame to propose, 4096..131072 bytes (default 131072)."""
        return self._frame_max

    @frame_max.setter
    def frame_max(self, value: int) -> None:
        number = _check_int("frame_max", value)
        if number < _FRAME_MIN_SIZE:
            raise ValueError(
                f"frame_max: the minimum AMQP 0-9-1 frame size is {_FRAME_MIN_SIZE}, "
                f"but got {value!r}"
            )
        if number > _FRAME_MAX_SIZE:
            raise ValueError(
                f"frame_max: the maximum AMQP 0-9-1 frame size is {_FRAME_MAX_SIZE}, "
                f"but got {value!r}"
            )
        self._frame_max = number

    @property
    def heartbeat(self) -> int | HeartbeatCallable | None:
        """The heartbeat timeout: None takes the broker's, an int overrides it (0 = off).

        A callable ``(connection, broker_value) -> int`` chooses at tuning time.
        """
        return self._heartbeat

    @heartbeat.setter
    def heartbeat(self, value: int | HeartbeatCallable | None) -> None:
        if value is not None and not callable(value):
            if not isinstance(value, int):
                raise TypeError(f"heartbeat must be an int or a callable, but got {value!r}")
            if value < 0:
                raise ValueError(f"heartbeat must be >= 0, but got {value!r}")
        self._heartbeat = value

    @property
    def host(self) -> str:
        """The broker's host name or address (default ``localhost``)."""
        return self._host

    @host.setter
    def host(self, value: str) -> None:
        self._host = _check_str("host", value)

    @property
    def locale(self) -> str:
        """The locale requested in ``Connection.Start-Ok`` (default ``en_US``)."""
        return self._locale

    @locale.setter
    def locale(self, value: str) -> None:
        self._locale = _check_str("locale", value)

    @property
    def max_unsent_bytes(self) -> int | None:
        """How much output may wait unsent before ``basic_publish`` refuses a message.

        Beyond pika, which buffers without limit. Counted in bytes on the wire, over the whole
        connection: what the connection holds and what the adapter's transport has not yet
        handed to the OS. A publish that would take it over the limit raises
        :class:`~amqp_core.exceptions.OutputBufferFullError` and queues nothing; the
        output-drained callbacks run once it falls to half the limit. Default 64 MiB; at
        least 1 MiB; None or 0 for no limit (pika's behaviour).
        """
        return self._max_unsent_bytes

    @max_unsent_bytes.setter
    def max_unsent_bytes(self, value: int | None) -> None:
        if value is not None:
            number = _check_int("max_unsent_bytes", value)
            if number != 0 and number < MIN_MAX_UNSENT_BYTES:
                raise ValueError(
                    f"max_unsent_bytes must be 0, None or >= {MIN_MAX_UNSENT_BYTES} "
                    f"(1 MiB), but got {value!r}"
                )
        self._max_unsent_bytes = value

    @property
    def port(self) -> int:
        """The broker's TCP port (default 5672, or 5671 with ``ssl_options``)."""
        return self._port

    @port.setter
    def port(self, value: int) -> None:
        # pika converts any number (1.5 -> 1) and rejects the rest.
        if not _is_real(value):
            raise TypeError(f"port must be an int, but got {value!r}")
        self._port = int(value)

    @property
    def retry_delay(self) -> float:
        """Seconds to wait before going through the host list again (default 2.0)."""
        return self._retry_delay

    @retry_delay.setter
    def retry_delay(self, value: float) -> None:
        self._retry_delay = _check_real("retry_delay", value)

    @property
    def socket_timeout(self) -> float | None:
        """Seconds allowed for one TCP connect (default 10.0; None: no limit)."""
        return self._socket_timeout

    @socket_timeout.setter
    def socket_timeout(self, value: float | None) -> None:
        self._socket_timeout = _check_optional_timeout("socket_timeout", value)

    @property
    def stack_timeout(self) -> float | None:
        """Seconds allowed for one whole TCP + TLS + AMQP bring-up (default 15.0)."""
        return self._stack_timeout

    @stack_timeout.setter
    def stack_timeout(self, value: float | None) -> None:
        self._stack_timeout = _check_optional_timeout("stack_timeout", value)

    @property
    def ssl_options(self) -> SSLOptions | None:
        """TLS settings, or None for plain TCP (the default)."""
        return self._ssl_options

    @ssl_options.setter
    def ssl_options(self, value: SSLOptions | None) -> None:
        if value is not None and not isinstance(value, SSLOptions):
            raise TypeError(f"ssl_options must be None or SSLOptions, but got {value!r}")
        self._ssl_options = value

    @property
    def virtual_host(self) -> str:
        """The virtual host to open (default ``/``)."""
        return self._virtual_host

    @virtual_host.setter
    def virtual_host(self, value: str) -> None:
        self._virtual_host = _check_str("virtual_host", value)

    @property
    def tcp_options(self) -> dict[str, int] | None:
        """TCP socket options by name (``TCP_KEEPIDLE`` ...), set by the adapter if it can."""
        return self._tcp_options

    @tcp_options.setter
    def tcp_options(self, value: dict[str, int] | None) -> None:
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"tcp_options must be a dict or None, but got {value!r}")
        self._tcp_options = value

    @property
    def recovery(self) -> RecoveryPolicy | None:
        """The automatic recovery policy, or None (pika's behaviour: no recovery).

        Beyond pika; see :mod:`amqp_core.recovery`. With several parameter sets, the first
        one's policy applies to the connection.
        """
        return self._recovery

    @recovery.setter
    def recovery(self, value: RecoveryPolicy | None) -> None:
        from amqp_core.recovery import RecoveryPolicy

        if value is not None and not isinstance(value, RecoveryPolicy):
            raise TypeError(f"recovery must be a RecoveryPolicy or None, but got {value!r}")
        self._recovery = value

    # ------------------------------------------------------------------ for the connection

    def engine_config(self, connection: object = None) -> EngineConfig:
        """Return the engine settings these parameters describe.

        Args:
            connection: passed as the first argument of a heartbeat callable (pika's
                ``(connection, broker_value)`` shape; the engine's callable takes only the
                broker's value).

        Returns:
            A frozen :class:`~amqp_core.config.EngineConfig`.
        """
        heartbeat = self._heartbeat
        setting: int | Callable[[int], int] | None
        if callable(heartbeat):
            chooser = heartbeat

            def setting(broker_value: int) -> int:
                return chooser(connection, broker_value)

        else:
            setting = heartbeat
        return EngineConfig(
            credentials=self._credentials,
            virtual_host=self._virtual_host,
            client_properties=self._client_properties,
            channel_max=self._channel_max,
            frame_max=self._frame_max,
            heartbeat=setting,
            locale=self._locale,
        )


class ConnectionParameters(Parameters):
    """Connection parameters given as keyword arguments (pika's ``ConnectionParameters``).

    Every argument defaults to the class's ``DEFAULT_*`` constant; the :attr:`_DEFAULT`
    sentinel tells "not given" from ``None`` (``heartbeat=None`` accepts the broker's value).
    When ``port`` is not given it is 5671 with ``ssl_options``, else 5672. Beyond pika, the
    keyword-only ``recovery`` takes a :class:`~amqp_core.recovery.RecoveryPolicy` (default
    None: no automatic recovery, as in pika), and the keyword-only ``max_unsent_bytes`` bounds
    the output waiting to be sent (default 64 MiB; see :attr:`Parameters.max_unsent_bytes`).

    Raises:
        TypeError: an argument of the wrong type, or an unknown keyword argument.
        ValueError: an argument out of range.
    """

    _DEFAULT: ClassVar[Any] = _DefaultType()

    __slots__ = ()

    def __init__(
        self,
        host: str = _DEFAULT,
        port: int = _DEFAULT,
        virtual_host: str = _DEFAULT,
        credentials: Credentials = _DEFAULT,
        channel_max: int = _DEFAULT,
        frame_max: int = _DEFAULT,
        heartbeat: int | HeartbeatCallable | None = _DEFAULT,
        ssl_options: SSLOptions | None = _DEFAULT,
        connection_attempts: int = _DEFAULT,
        retry_delay: float = _DEFAULT,
        socket_timeout: float | None = _DEFAULT,
        stack_timeout: float | None = _DEFAULT,
        locale: str = _DEFAULT,
        blocked_connection_timeout: float | None = _DEFAULT,
        client_properties: dict[str, FieldValue] | None = _DEFAULT,
        tcp_options: dict[str, int] | None = _DEFAULT,
        *,
        recovery: RecoveryPolicy | None = None,
        max_unsent_bytes: int | None = _DEFAULT,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.recovery = recovery
        default = self._DEFAULT
        if kwargs:
            raise TypeError(f"unexpected kwargs: {sorted(kwargs)!r}")
        given: dict[str, Any] = {
            "blocked_connection_timeout": blocked_connection_timeout,
            "channel_max": channel_max,
            "client_properties": client_properties,
            "connection_attempts": connection_attempts,
            "credentials": credentials,
            "frame_max": frame_max,
            "heartbeat": heartbeat,
            "host": host,
            "locale": locale,
            "max_unsent_bytes": max_unsent_bytes,
            "retry_delay": retry_delay,
            "socket_timeout": socket_timeout,
            "stack_timeout": stack_timeout,
            "ssl_options": ssl_options,
            "tcp_options": tcp_options,
            "virtual_host": virtual_host,
        }
        for name, value in given.items():
            if value is not default:
                setattr(self, name, value)
        if port is not default:
            self.port = port
        elif self.ssl_options is not None:
            self.port = self.DEFAULT_SSL_PORT


class URLParameters(Parameters):
    """Connection parameters from an AMQP URI (pika's ``URLParameters``).

    ``amqp[s]://username:password@host:port/virtual_host?option=value&...``: user name,
    password and virtual host are percent-decoded; an empty path or ``/`` is the virtual host
    ``/``. ``amqps`` turns TLS on with ``ssl.create_default_context()`` (certificate and host
    name verified) and the default port 5671. Query options: see ``docs/parameters.md``.

    Args:
        url: the URI.

    Raises:
        ValueError: an unknown scheme, an option given twice, an unknown option, or a value
            that does not parse.
        TypeError: a parsed value of the wrong type (e.g. ``client_properties=[1]``).
    """

    __slots__ = ()

    # Each URL option and how its text becomes a value (pika's twelve, and max_unsent_bytes).
    _URL_OPTIONS: ClassVar[tuple[str, ...]] = (
        "blocked_connection_timeout",
        "channel_max",
        "client_properties",
        "connection_attempts",
        "frame_max",
        "heartbeat",
        "locale",
        "max_unsent_bytes",
        "retry_delay",
        "socket_timeout",
        "ssl_options",
        "stack_timeout",
        "tcp_options",
    )

    def __init__(self, url: str) -> None:
        super().__init__()
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, but got {_type_name(url)}")
        scheme, sep, rest = url.partition("://")
        if not sep:
            # No scheme at all: pika parses what follows as a relative URL.
            scheme, rest = "", url
        scheme = scheme.lower()
        if scheme not in ("", "amqp", "amqps", "http", "https"):
            raise ValueError(
                f"Unexpected URL scheme {scheme!r}; supported scheme values: amqp, amqps"
            )
        import urllib.parse

        # urllib only splits user info, host and port for schemes it knows to have them.
        parts = urllib.parse.urlsplit(("http://" + rest) if sep else rest)
        if scheme in ("amqps", "https"):
            import ssl

            self.ssl_options = SSLOptions(ssl.create_default_context())
        if parts.hostname:
            self.host = urllib.parse.unquote(parts.hostname)
        try:
            port = parts.port
        except ValueError:
            # urllib's message would quote the whole netloc, password included.
            text = parts.netloc.rpartition(":")[2]
            raise ValueError(f"URL port could not be cast to integer value as {text!r}") from None
        if port is not None:
            self.port = port
        elif self.ssl_options is not None:
            self.port = self.DEFAULT_SSL_PORT
        if parts.username is not None or parts.password is not None:
            # A user without a password logs in with an empty one (pika 1.4 raises TypeError).
            self.credentials = PlainCredentials(
                urllib.parse.unquote(parts.username or ""),
                urllib.parse.unquote(parts.password or ""),
            )
        path = parts.path
        if len(path) > 1:
            # The first segment is the virtual host; "%2f" is "/".
            self.virtual_host = urllib.parse.unquote(path.split("/")[1])
        if parts.query:
            self._set_query(parts.query)

    def _set_query(self, query: str) -> None:
        import urllib.parse

        options = urllib.parse.parse_qs(query)
        for name, values in options.items():
            if len(values) != 1:
                raise ValueError(
                    f"Expected exactly one value for URL parameter {name}, "
                    f"but got {len(values)} values: {values!r}"
                )
            if name not in self._URL_OPTIONS:
                raise ValueError(f"Unknown URL parameter: {name!r}")
            getattr(self, f"_set_url_{name}")(values[0])

    @staticmethod
    def _parse(name: str, text: str, convert: Callable[[str], Any]) -> Any:
        try:
            return convert(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
            raise ValueError(f"Invalid {name} value {text!r}: {exc!r}") from None

    def _set_url_blocked_connection_timeout(self, text: str) -> None:
        self.blocked_connection_timeout = self._parse("blocked_connection_timeout", text, float)

    def _set_url_channel_max(self, text: str) -> None:
        self.channel_max = self._parse("channel_max", text, int)

    def _set_url_client_properties(self, text: str) -> None:
        self.client_properties = self._parse("client_properties", text, _literal_eval)

    def _set_url_connection_attempts(self, text: str) -> None:
        self.connection_attempts = self._parse("connection_attempts", text, int)

    def _set_url_frame_max(self, text: str) -> None:
        self.frame_max = self._parse("frame_max", text, int)

    def _set_url_heartbeat(self, text: str) -> None:
        self.heartbeat = self._parse("heartbeat", text, int)

    def _set_url_locale(self, text: str) -> None:
        self.locale = text

    def _set_url_max_unsent_bytes(self, text: str) -> None:
        # "0" (or "None") for no limit.
        value = None if text == "None" else self._parse("max_unsent_bytes", text, int)
        self.max_unsent_bytes = value

    def _set_url_retry_delay(self, text: str) -> None:
        self.retry_delay = self._parse("retry_delay", text, float)

    def _set_url_socket_timeout(self, text: str) -> None:
        self.socket_timeout = self._parse("socket_timeout", text, float)

    def _set_url_stack_timeout(self, text: str) -> None:
        self.stack_timeout = self._parse("stack_timeout", text, float)

    def _set_url_tcp_options(self, text: str) -> None:
        self.tcp_options = self._parse("tcp_options", text, _literal_eval)

    def _set_url_ssl_options(self, text: str) -> None:
        options = self._parse("ssl_options", text, _literal_eval)
        if options is None:
            if self.ssl_options is not None:
                raise ValueError(
                    "Specified ssl_options=None URI arg is inconsistent with the specified "
                    "amqps URI scheme."
                )
            return
        if not isinstance(options, dict):
            raise TypeError(f"ssl_options must be a dict or None, but got {_type_name(options)}")
        self.ssl_options = _ssl_options_from_dict(options)


# Accepted keys of the ssl_options URL dict, with pika's aliases folded onto one name.
_SSL_KEYS: Final = {
    "protocol": "protocol",
    "ca_certs": "cafile",
    "cafile": "cafile",
    "ca_path": "capath",
    "capath": "capath",
    "ca_data": "cadata",
    "cadata": "cadata",
    "certfile": "certfile",
    "keyfile": "keyfile",
    "password": "password",
    "ciphers": "ciphers",
    "server_hostname": "server_hostname",
}


def _ssl_options_from_dict(options: Mapping[str, Any]) -> SSLOptions:
    """Build :class:`SSLOptions` from the ``ssl_options`` URL dict (pika's keys)."""
    chosen: dict[str, Any] = {}
    for key, value in options.items():
        name = _SSL_KEYS.get(key)
        if name is None:
            raise ValueError(
                f"Unknown ssl_options key {key!r}; expected one of {sorted(_SSL_KEYS)}"
            )
        chosen[name] = value
    import ssl

    context = ssl.SSLContext(chosen.get("protocol", ssl.PROTOCOL_TLS_CLIENT))
    cafile, capath, cadata = (chosen.get(key) for key in ("cafile", "capath", "cadata"))
    if cafile is None and capath is None and cadata is None:
        # pika raises TypeError here; the system's trust store is the safe reading.
        context.load_default_certs()
    else:
        context.load_verify_locations(cafile, capath, cadata)
    certfile = chosen.get("certfile")
    if certfile is not None:
        context.load_cert_chain(certfile, chosen.get("keyfile"), chosen.get("password"))
    ciphers = chosen.get("ciphers")
    if ciphers is not None:
        context.set_ciphers(ciphers)
    return SSLOptions(context, chosen.get("server_hostname"))
