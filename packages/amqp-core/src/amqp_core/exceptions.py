"""Every exception amqp_core raises, in pika's hierarchy.

pika programs catch ``pika.exceptions.X``; the same names live here with the same bases, so an
``except`` clause moves over with its import. Two additions sit inside that hierarchy:

* :class:`AMQPCodecError` is the one type the codec raises for malformed input. It carries the
  AMQP reply code the peer should be closed with (501 FRAME_ERROR, 502 SYNTAX_ERROR,
  503 COMMAND_INVALID, 505 UNEXPECTED_FRAME, 540 NOT_IMPLEMENTED ...). pika's finer-grained
  decoding errors (:class:`InvalidFrameError`, :class:`InvalidFieldTypeException`, ...) are its
  subclasses, so catching either works.
* :class:`OutputBufferFullError` is raised by ``basic_publish`` of the callback API when the
  connection already holds ``max_unsent_bytes`` of output the broker has not taken (typically
  while the broker blocks the connection); nothing of that message was queued.
* :class:`AMQPEncodeError` is raised before anything is sent when a value cannot be put on the
  wire (a NaN in a header table, an integer outside the signed 64-bit range, a short string over
  255 bytes). It is also a :class:`ValueError`.
"""

from __future__ import annotations

__all__ = (
    "AMQPChannelError",
    "AMQPCodecError",
    "AMQPConnectionError",
    "AMQPConnectionWorkflowAborted",
    "AMQPConnectionWorkflowFailed",
    "AMQPConnectionWorkflowWrongState",
    "AMQPConnectorAMQPHandshakeError",
    "AMQPConnectorAborted",
    "AMQPConnectorException",
    "AMQPConnectorPhaseErrorBase",
    "AMQPConnectorSocketConnectError",
    "AMQPConnectorStackTimeout",
    "AMQPConnectorTransportSetupError",
    "AMQPConnectorWrongState",
    "AMQPEncodeError",
    "AMQPError",
    "AMQPHeartbeatTimeout",
    "AuthenticationError",
    "BodyTooLongError",
    "ChannelClosed",
    "ChannelClosedByBroker",
    "ChannelClosedByClient",
    "ChannelError",
    "ChannelStateError",
    "ChannelWrongStateError",
    "ConnectionBlockedTimeout",
    "ConnectionClosed",
    "ConnectionClosedByBroker",
    "ConnectionClosedByClient",
    "ConnectionOpenAborted",
    "ConnectionRecoveryFailed",
    "ConnectionStateError",
    "ConnectionWrongStateError",
    "ConsumerCancelled",
    "DuplicateConsumerTag",
    "DuplicateGetOkCallback",
    "IncompatibleProtocolError",
    "InvalidChannelNumber",
    "InvalidFieldTypeException",
    "InvalidFrameError",
    "LocalProtocolError",
    "MethodNotImplemented",
    "NackError",
    "NoFreeChannels",
    "OutputBufferFullError",
    "ProbableAccessDeniedError",
    "ProbableAuthenticationError",
    "ProtocolSyntaxError",
    "ProtocolVersionMismatch",
    "RecoveryInterrupted",
    "ReentrancyError",
    "RemoteProtocolError",
    "ShortStringTooLong",
    "StreamLostError",
    "UnexpectedFrameError",
    "UnroutableError",
    "UnsupportedAMQPFieldException",
)

# Reply codes used by the codec errors, from the spec's constants (amqp0-9-1 section 1.2.1).
_FRAME_ERROR = 501
_SYNTAX_ERROR = 502
_UNEXPECTED_FRAME = 505


class AMQPError(Exception):
    """Base of every AMQP error raised by amqp_core and its adapters."""

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}: An unspecified AMQP error has occurred; {self.args}"


class AMQPConnectionError(AMQPError):
    """The connection could not be opened, or it was lost or closed.

    Args:
        *args: the error's arguments (pika's: a message, or a reply code and text).
        host: the broker host the connection was for, when known (pika's HEAD adds it).
        port: the broker port, when known.

    Attributes:
        host: as given (the callback layer fills it in for errors it reports).
        port: as given.
    """

    def __init__(self, *args: object, host: str | None = None, port: int | None = None) -> None:
        super().__init__(*args)
        self.host = host
        self.port = port

    def __repr__(self) -> str:
        if len(self.args) == 2:
            return f"{self.__class__.__name__}: ({self.args[0]}) {self.args[1]}"
        return f"{self.__class__.__name__}: {self.args}"


class ConnectionOpenAborted(AMQPConnectionError):
    """Client closed the connection while it was still being opened."""


class StreamLostError(AMQPConnectionError):
    """The transport (TCP or TLS stream) was lost."""


class IncompatibleProtocolError(AMQPConnectionError):
    """The peer does not speak AMQP 0-9-1 (it answered with another protocol header)."""


class AuthenticationError(AMQPConnectionError):
    """The broker offers no authentication mechanism the credentials can use."""


class ProbableAuthenticationError(AMQPConnectionError):
    """The broker dropped the connection during the handshake: most likely bad credentials."""


class ProbableAccessDeniedError(AMQPConnectionError):
    """The broker refused the virtual host: it is missing or not permitted."""


class NoFreeChannels(AMQPConnectionError):
    """Every channel number up to the negotiated channel_max is in use."""


class ConnectionWrongStateError(AMQPConnectionError):
    """The connection is in a state that does not allow the requested operation."""


class ConnectionClosed(AMQPConnectionError):
    """The connection was closed, with an AMQP reply code and text."""

    def __init__(
        self,
        reply_code: int,
        reply_text: str,
        *,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        super().__init__(int(reply_code), str(reply_text), host=host, port=port)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}: ({self.reply_code}) {self.reply_text!r}"

    @property
    def reply_code(self) -> int:
        """The AMQP reply code of the close."""
        code: int = self.args[0]
        return code

    @property
    def reply_text(self) -> str:
        """The reply text of the close."""
        text: str = self.args[1]
        return text


class ConnectionClosedByBroker(ConnectionClosed):
    """The broker closed the connection (Connection.Close from the broker)."""


class ConnectionClosedByClient(ConnectionClosed):
    """The client closed the connection."""


class ConnectionBlockedTimeout(AMQPConnectionError):
    """The broker kept the connection blocked for longer than ``blocked_connection_timeout``."""


class AMQPHeartbeatTimeout(AMQPConnectionError):
    """Nothing was received from the peer for two heartbeat intervals."""


class ConnectionRecoveryFailed(AMQPConnectionError):
    """Automatic recovery gave up (bounds reached, or the broker refused the login).

    ``__cause__`` holds the last error: why the connection was lost, or the refusal.
    """


class RecoveryInterrupted(AMQPConnectionError):
    """The connection was lost while a request waited for its reply; it has been recovered.

    The broker may or may not have carried out the request: repeat it if it is idempotent
    (declarations, bindings, QoS), check first otherwise.
    """


class AMQPChannelError(AMQPError):
    """Base of the errors that concern one channel."""

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}: {self.args!r}"


class ChannelWrongStateError(AMQPChannelError):
    """The channel is in a state that does not allow the requested operation."""


class ChannelClosed(AMQPChannelError):
    """The channel was closed, with an AMQP reply code and text."""

    def __init__(self, reply_code: int, reply_text: str) -> None:
        super().__init__(int(reply_code), str(reply_text))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}: ({self.reply_code}) {self.reply_text!r}"

    @property
    def reply_code(self) -> int:
        """The AMQP reply code of the close."""
        code: int = self.args[0]
        return code

    @property
    def reply_text(self) -> str:
        """The reply text of the close."""
        text: str = self.args[1]
        return text


class ChannelClosedByBroker(ChannelClosed):
    """The broker closed the channel (Channel.Close from the broker)."""


class ChannelClosedByClient(ChannelClosed):
    """The client closed the channel."""


class DuplicateConsumerTag(AMQPChannelError):
    """The consumer tag is already in use on this channel."""


class ConsumerCancelled(AMQPChannelError):
    """The broker cancelled the consumer (Basic.Cancel from the broker)."""


class UnroutableError(AMQPChannelError):
    """Mandatory messages were returned by the broker as unroutable.

    Args:
        messages: the returned messages, each with ``method``, ``properties`` and ``body``.
    """

    def __init__(self, messages: list[object]) -> None:
        super().__init__(f"{len(messages)} unroutable message(s) returned")
        self.messages = messages

    def __repr__(self) -> str:
        count = len(self.messages)
        return f"{self.__class__.__name__}: {count} unroutable messages returned by broker"


class NackError(AMQPChannelError):
    """The broker answered published messages with Basic.Nack.

    Args:
        messages: the nacked messages, each with ``method``, ``properties`` and ``body``.
    """

    def __init__(self, messages: list[object]) -> None:
        super().__init__(f"{len(messages)} message(s) NACKed")
        self.messages = messages

    def __repr__(self) -> str:
        count = len(self.messages)
        return f"{self.__class__.__name__}: {count} unroutable messages returned by broker"


class InvalidChannelNumber(AMQPError):
    """A channel number outside 1..channel_max was asked for."""


class ProtocolSyntaxError(AMQPError):
    """Base of the errors about the syntax of AMQP data."""


class AMQPCodecError(ProtocolSyntaxError):
    """Malformed AMQP input: the single error type of the codec.

    Args:
        reply_code: the AMQP reply code a peer receiving this input closes the connection with
            (501 FRAME_ERROR, 502 SYNTAX_ERROR, 505 UNEXPECTED_FRAME, 540 NOT_IMPLEMENTED ...).
        reason: what was wrong, in words.

    Attributes:
        reply_code: as given.
        reason: as given.
    """

    default_reply_code = _SYNTAX_ERROR

    def __init__(self, reason: str, reply_code: int | None = None) -> None:
        code = self.default_reply_code if reply_code is None else reply_code
        super().__init__(code, reason)
        self.reply_code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"({self.reply_code}) {self.reason}"

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.reason!r}, reply_code={self.reply_code})"


class InvalidFrameError(AMQPCodecError):
    """A frame is malformed: wrong frame-end octet, unknown type, over frame_max (501)."""

    default_reply_code = _FRAME_ERROR


class InvalidFieldTypeException(AMQPCodecError):
    """A field table holds a value of an unknown type tag (502)."""


class BodyTooLongError(AMQPCodecError):
    """Content bodies add up to more than the content header announced (501)."""

    default_reply_code = _FRAME_ERROR


class UnexpectedFrameError(AMQPCodecError):
    """A frame arrived that is not allowed at this point of the stream (505)."""

    default_reply_code = _UNEXPECTED_FRAME


class ProtocolVersionMismatch(AMQPCodecError):
    """The peer answered with a protocol header of another protocol or version (501)."""

    default_reply_code = _FRAME_ERROR


class MethodNotImplemented(AMQPError):
    """The broker does not implement the requested method or capability."""


class OutputBufferFullError(AMQPError):
    """A publish was refused: the connection holds too much output the broker has not taken.

    Raised by ``Channel.basic_publish`` when the message would take the connection's unsent
    output over the ``max_unsent_bytes`` connection parameter (the broker blocks the
    connection, or the network is slower than the publisher). The message was not queued at
    all; publish it again once the connection's output-drained callbacks have run (see
    ``Connection.add_on_output_drained_callback``).

    Args:
        unsent: the bytes of output waiting to be sent when the publish was refused.
        limit: the connection's ``max_unsent_bytes``.

    Attributes:
        unsent: as given.
        limit: as given.
    """

    def __init__(self, unsent: int, limit: int) -> None:
        super().__init__(
            f"{unsent} bytes of output wait to be sent, and the message would take them over "
            f"max_unsent_bytes={limit}: publish again once the output has drained"
        )
        self.unsent = unsent
        self.limit = limit

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}: {self.args[0]}"


class AMQPEncodeError(AMQPError, ValueError):
    """A value cannot be encoded for the wire; raised before anything is sent."""


class ShortStringTooLong(AMQPEncodeError):
    """A short string (or table key) is longer than 255 bytes once encoded as UTF-8."""


class UnsupportedAMQPFieldException(AMQPEncodeError, ProtocolSyntaxError, TypeError):
    """A field table value has a Python type with no AMQP field type."""


class ChannelError(Exception):
    """Base of misuse errors of a channel that are not AMQP errors (pika compatibility)."""


class DuplicateGetOkCallback(ChannelError):
    """basic_get was called again before the previous one completed."""


class ReentrancyError(Exception):
    """A blocking call was made from a callback where it would re-enter the event loop."""


class LocalProtocolError(AMQPError):
    """A command was given to the engine that is illegal in its current state.

    Nothing was sent and the engine's state did not change: it stays usable wherever the
    protocol allows (h11's rule for local errors).

    Args:
        message: what was wrong, in words; it names the state and the command.
        state: the name of the state the connection or channel was in.
        command: the name of the command (an engine method or an AMQP method name).

    Attributes:
        state: as given.
        command: as given.
    """

    def __init__(self, message: str, *, state: str = "", command: str = "") -> None:
        super().__init__(message)
        self.state = state
        self.command = command

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.args[0]!r})"


class ConnectionStateError(LocalProtocolError, ConnectionWrongStateError):
    """A connection-level command is illegal in the connection's current state.

    Also a pika :class:`ConnectionWrongStateError`, so pika's ``except`` clauses catch it.
    """


class ChannelStateError(LocalProtocolError, ChannelWrongStateError):
    """A channel command is illegal in the channel's current state (or the channel is unknown).

    Also a pika :class:`ChannelWrongStateError`, so pika's ``except`` clauses catch it.
    """


class RemoteProtocolError(AMQPConnectionError):
    """The peer broke the protocol; the engine closed the connection with ``reply_code``.

    Args:
        reply_code: the AMQP reply code the connection was closed with (501 FRAME_ERROR,
            503 COMMAND_INVALID, 504 CHANNEL_ERROR, 505 UNEXPECTED_FRAME ...).
        reply_text: what was wrong, in words; it names the state and the input.
        class_id: the class of the method that caused the error, or 0.
        method_id: the method that caused the error, or 0.

    Attributes:
        reply_code: as given.
        reply_text: as given.
        class_id: as given.
        method_id: as given.
    """

    def __init__(
        self, reply_code: int, reply_text: str, class_id: int = 0, method_id: int = 0
    ) -> None:
        super().__init__(reply_code, reply_text)
        self.reply_code = reply_code
        self.reply_text = reply_text
        self.class_id = class_id
        self.method_id = method_id


# ---------------------------------------------------------------------- connection workflow
# pika keeps these in pika.adapters.utils.connection_workflow; here they live with the others
# (amqp_core.exceptions) and the adapters re-export them under pika's module path.


class AMQPConnectorException(Exception):
    """Base of the errors of the connection workflow (pika's ``connection_workflow``)."""


class AMQPConnectorStackTimeout(AMQPConnectorException):
    """One attempt's TCP + TLS + AMQP bring-up took longer than ``stack_timeout``."""


class AMQPConnectorAborted(AMQPConnectorException):
    """One attempt was aborted by the client."""


class AMQPConnectorWrongState(AMQPConnectorException):
    """A connector operation was requested in the wrong state."""


class AMQPConnectorPhaseErrorBase(AMQPConnectorException):
    """One attempt failed in a given phase; ``exception`` is the underlying error.

    Args:
        exception: what went wrong.
        *args: further arguments (a description naming host, port and phase).

    Attributes:
        exception: as given.
    """

    def __init__(self, exception: BaseException, *args: object) -> None:
        super().__init__(exception, *args)
        self.exception = exception

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}: {self.exception!r}; {self.args[1:]}"


class AMQPConnectorSocketConnectError(AMQPConnectorPhaseErrorBase):
    """The TCP phase failed (resolution, connect, or connect timeout)."""


class AMQPConnectorTransportSetupError(AMQPConnectorPhaseErrorBase):
    """The TLS phase failed (handshake, certificate verification)."""


class AMQPConnectorAMQPHandshakeError(AMQPConnectorPhaseErrorBase):
    """The AMQP handshake failed (bad credentials, vhost refused, not an AMQP peer ...)."""


class AMQPConnectionWorkflowAborted(AMQPConnectorException):
    """The whole workflow was aborted by the client."""


class AMQPConnectionWorkflowWrongState(AMQPConnectorException):
    """A workflow operation was requested in the wrong state."""


class AMQPConnectionWorkflowFailed(AMQPConnectorException):
    """Every host and every attempt failed; ``exceptions`` holds each failure, in order.

    Args:
        exceptions: one entry per failed attempt (connector errors, mostly phase errors).
        *args: further arguments.

    Attributes:
        exceptions: as given.
    """

    def __init__(self, exceptions: list[BaseException], *args: object) -> None:
        super().__init__(exceptions, *args)
        self.exceptions = list(exceptions)

    def __repr__(self) -> str:
        last = self.exceptions[-1] if self.exceptions else None
        return (
            f"{self.__class__.__name__}: {len(self.exceptions)} exceptions in all; "
            f"last exception - {last!r}; first exception - "
            f"{self.exceptions[0] if self.exceptions else None!r}"
        )
