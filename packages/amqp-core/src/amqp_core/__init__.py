"""amqp_core: a sans-I/O AMQP 0-9-1 protocol core for RabbitMQ clients.

The generated spec (:mod:`amqp_core.spec`), the field-table codec (:mod:`amqp_core.data`), the
frame codec (:mod:`amqp_core.frame`), the exceptions (:mod:`amqp_core.exceptions`) and the
sans-I/O engine (:class:`Engine`, its events and settings) live here; adapters that move the
bytes are published as separate packages (``amqp-blocking``, ``amqp-select``,
``amqp-asyncio``, ``amqp-tornado``, ``amqp-twisted``, ``amqp-gevent``).
"""

from amqp_core import exceptions, frame, spec
from amqp_core._state import ChannelState, ConnectionState
from amqp_core._tune import TuneParameters
from amqp_core._version import __version__
from amqp_core.config import EngineConfig
from amqp_core.connection import Connection
from amqp_core.credentials import ExternalCredentials, PlainCredentials
from amqp_core.delivery_mode import DeliveryMode
from amqp_core.engine import Engine
from amqp_core.events import (
    NEED_DATA,
    ChannelClosed,
    ChannelFlowChanged,
    ChannelOpened,
    ConnectionBlocked,
    ConnectionClosed,
    ConnectionOpened,
    ConnectionTuned,
    ConnectionUnblocked,
    ConsumerCancelled,
    Event,
    GetEmpty,
    GetOk,
    MessageDelivered,
    MessageReturned,
    MethodReceived,
    NeedData,
    PublishAcked,
    PublishNacked,
)
from amqp_core.exchange_type import ExchangeType
from amqp_core.parameters import ConnectionParameters, SSLOptions, URLParameters
from amqp_core.spec import BasicProperties

__all__ = (
    "NEED_DATA",
    "BasicProperties",
    "ChannelClosed",
    "ChannelFlowChanged",
    "ChannelOpened",
    "ChannelState",
    "Connection",
    "ConnectionBlocked",
    "ConnectionClosed",
    "ConnectionOpened",
    "ConnectionParameters",
    "ConnectionState",
    "ConnectionTuned",
    "ConnectionUnblocked",
    "ConsumerCancelled",
    "DeliveryMode",
    "Engine",
    "EngineConfig",
    "Event",
    "ExchangeType",
    "ExternalCredentials",
    "GetEmpty",
    "GetOk",
    "MessageDelivered",
    "MessageReturned",
    "MethodReceived",
    "NeedData",
    "PlainCredentials",
    "PublishAcked",
    "PublishNacked",
    "SSLOptions",
    "TuneParameters",
    "URLParameters",
    "__version__",
    "exceptions",
    "frame",
    "spec",
)
