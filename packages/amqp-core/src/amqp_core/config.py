"""The engine's settings: one frozen, validated object, never module globals.

:class:`EngineConfig` holds everything the engine needs to know before it starts: whom to log in
as, which virtual host to open, what to propose during tuning, and the limits that protect it
from a misbehaving peer. Issue 4 maps pika's ``ConnectionParameters`` onto it; the engine itself
knows nothing about hosts, ports or TLS.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from amqp_core._version import __version__
from amqp_core.credentials import Credentials, ExternalCredentials, PlainCredentials
from amqp_core.data import FieldTable, FieldValue

__all__ = (
    "DEFAULT_CHANNEL_MAX",
    "DEFAULT_FRAME_MAX",
    "DEFAULT_LOCALE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "FRAME_MIN_SIZE",
    "PRODUCT",
    "EngineConfig",
    "HeartbeatSetting",
)

#: The product name sent in the client properties.
PRODUCT: Final = "amqp-core Python client"
#: pika's default: the largest channel number a client proposes (channel ids are 16 bits).
DEFAULT_CHANNEL_MAX: Final = 65535
#: pika's default frame_max, 128 KiB (also RabbitMQ's own default).
DEFAULT_FRAME_MAX: Final = 131072
#: Spec constant ``frame-min-size``: every peer accepts frames of this size, tuned or not.
FRAME_MIN_SIZE: Final = 4096
#: The default cap on an incoming message body: 128 MiB, RabbitMQ's own default
#: ``max_message_size`` since 3.8, so a broker with default settings never sends more.
DEFAULT_MAX_MESSAGE_SIZE: Final = 128 * 1024 * 1024
#: pika's default locale.
DEFAULT_LOCALE: Final = "en_US"

_MAX_UINT32: Final = 0xFFFFFFFF

HeartbeatSetting: TypeAlias = "int | Callable[[int], int] | None"
"""How the heartbeat timeout is chosen during tuning.

``None`` accepts the broker's proposal; an ``int`` (seconds, 0 = off) overrides it; a callable
receives the broker's proposal and returns the value to use (pika's callable takes the
connection too; the callback layer binds it).
"""


def _default_credentials() -> Credentials:
    return PlainCredentials("guest", "guest")


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """Everything the engine needs before the handshake, checked when built.

    Attributes:
        credentials: how to log in (default ``guest``/``guest`` over ``PLAIN``).
        virtual_host: the virtual host opened by ``Connection.Open``.
        client_properties: entries merged (shallowly) over the default client properties
            sent in ``Connection.Start-Ok``; a ``capabilities`` entry replaces the default one.
        connection_name: sent as the ``connection_name`` client property, which RabbitMQ
            shows in its management UI and in ``rabbitmqctl list_connections``.
        channel_max: the highest channel number proposed in tuning (0 = no limit, i.e. 65535).
        frame_max: the largest frame proposed in tuning, header and end octet included
            (0 = no limit, otherwise at least 4096).
        heartbeat: see :data:`HeartbeatSetting`.
        locale: the locale requested in ``Connection.Start-Ok``.
        max_message_size: the largest incoming message body accepted; a delivery, return or
            get-ok announcing a bigger body makes the engine close that channel with 311
            CONTENT_TOO_LARGE (the message stays with the broker, unacknowledged).
    """

    credentials: Credentials = field(default_factory=_default_credentials)
    virtual_host: str = "/"
    client_properties: Mapping[str, FieldValue] | None = None
    connection_name: str | None = None
    channel_max: int = DEFAULT_CHANNEL_MAX
    frame_max: int = DEFAULT_FRAME_MAX
    heartbeat: HeartbeatSetting = None
    locale: str = DEFAULT_LOCALE
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE

    def __post_init__(self) -> None:
        if not isinstance(self.credentials, (PlainCredentials, ExternalCredentials)):
            raise TypeError(
                "credentials must be PlainCredentials or ExternalCredentials, "
                f"not {self.credentials!r}"
            )
        if not isinstance(self.virtual_host, str):
            raise TypeError(f"virtual_host must be a str, not {self.virtual_host!r}")
        if self.client_properties is not None and not isinstance(self.client_properties, Mapping):
            raise TypeError(
                f"client_properties must be a mapping or None, not {self.client_properties!r}"
            )
        if self.connection_name is not None and not isinstance(self.connection_name, str):
            raise TypeError(f"connection_name must be a str or None, not {self.connection_name!r}")
        _check_int("channel_max", self.channel_max, 0, 65535)
        _check_int("frame_max", self.frame_max, 0, _MAX_UINT32)
        if 0 < self.frame_max < FRAME_MIN_SIZE:
            raise ValueError(
                f"frame_max must be 0 or at least {FRAME_MIN_SIZE}, not {self.frame_max}"
            )
        heartbeat = self.heartbeat
        if heartbeat is not None and not callable(heartbeat):
            _check_int("heartbeat", heartbeat, 0, 65535)
        if not isinstance(self.locale, str):
            raise TypeError(f"locale must be a str, not {self.locale!r}")
        _check_int("max_message_size", self.max_message_size, 1, 2**64 - 1)

    def build_client_properties(self) -> FieldTable:
        """Return the client properties for ``Connection.Start-Ok``.

        The defaults announce the product, its version, the platform and the RabbitMQ
        capabilities this engine implements; ``client_properties`` and ``connection_name``
        are merged over them.
        """
        properties: FieldTable = {
            "product": PRODUCT,
            "version": __version__,
            "platform": "Python {}.{}.{}".format(*sys.version_info[:3]),
            "information": "https://pypi.org/project/amqp-core/",
            "capabilities": {
                "authentication_failure_close": True,
                "basic.nack": True,
                "connection.blocked": True,
                "consumer_cancel_notify": True,
                "exchange_exchange_bindings": True,
                "per_consumer_qos": True,
                "publisher_confirms": True,
            },
        }
        if self.client_properties:
            properties.update(self.client_properties)
        if self.connection_name is not None:
            properties["connection_name"] = self.connection_name
        return properties


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, not {value}")
