"""The connection and channel state machines, as tables.

Theory of operation
-------------------

Rule 1: every state transition lives in a table in this file; the engine asks
:func:`connection_next` / :func:`channel_next` for the next state and never assigns a state
that is not the answer. Rule 2: this file knows nothing of frames or bytes; inputs are named
``SEND_*`` (a command the client gives) or ``RECV_*`` (something that arrived), plus the few
internal causes (``FAIL``, ``TIMEOUT``, ``EOF``).

The connection (spec section 2.2.4, "The Connection Class", and 4.2.2 for the header)::

    AWAIT_START --RECV_START--> AWAIT_TUNE --RECV_TUNE--> AWAIT_OPEN_OK --RECV_OPEN_OK--> OPEN
    OPEN --SEND_CLOSE--> CLOSING --RECV_CLOSE_OK--> CLOSED
    any state but CLOSED --RECV_CLOSE / FAIL / TIMEOUT / EOF--> CLOSED

The client sends the protocol header when it is created, so there is no state before
``AWAIT_START``. A close the client asks for before ``OPEN`` aborts the handshake
(``SEND_ABORT``): nothing is sent and the connection is ``CLOSED`` at once.

A channel (spec section 2.2.5, "The Channel Class")::

    (no channel) --SEND_OPEN--> OPENING --RECV_OPEN_OK--> OPEN
    OPENING / OPEN --SEND_CLOSE--> CLOSING --RECV_CLOSE_OK--> CLOSED
    OPENING / OPEN --RECV_CLOSE--> CLOSED          (the engine answers Close-Ok)
    CLOSING --RECV_CLOSE--> CLOSING               (both sides closed at once; Close-Ok sent)

A ``CLOSED`` channel's number is free to be opened again. Spec 2.2.5 and 2.2.4 both say that
after sending Close, a peer discards every method except Close and Close-Ok until Close-Ok
arrives: the engine does that in ``CLOSING``.
"""

from __future__ import annotations

import enum

from amqp_core.exceptions import ChannelStateError, ConnectionStateError

__all__ = (
    "CHANNEL_TRANSITIONS",
    "CONNECTION_TRANSITIONS",
    "ChannelInput",
    "ChannelState",
    "ConnectionInput",
    "ConnectionState",
    "channel_next",
    "connection_next",
)


class ConnectionState(enum.Enum):
    """The states of the connection."""

    #: The protocol header is sent; waiting for ``Connection.Start``.
    AWAIT_START = "AWAIT_START"
    #: ``Start-Ok`` is sent; waiting for ``Connection.Tune`` (a drop here: bad credentials).
    AWAIT_TUNE = "AWAIT_TUNE"
    #: ``Tune-Ok`` and ``Open`` are sent; waiting for ``Open-Ok`` (a drop here: vhost refused).
    AWAIT_OPEN_OK = "AWAIT_OPEN_OK"
    #: Open: channels may be used.
    OPEN = "OPEN"
    #: The client sent ``Connection.Close``; waiting for ``Close-Ok``.
    CLOSING = "CLOSING"
    #: Over; every later command raises.
    CLOSED = "CLOSED"


class ConnectionInput(enum.Enum):
    """What moves the connection from state to state."""

    RECV_START = "RECV_START"
    RECV_TUNE = "RECV_TUNE"
    RECV_OPEN_OK = "RECV_OPEN_OK"
    RECV_CLOSE = "RECV_CLOSE"
    RECV_CLOSE_OK = "RECV_CLOSE_OK"
    SEND_CLOSE = "SEND_CLOSE"
    SEND_ABORT = "SEND_ABORT"
    #: The peer broke the protocol: the engine sent Close with an error code.
    FAIL = "FAIL"
    #: Two heartbeat intervals passed with nothing received.
    TIMEOUT = "TIMEOUT"
    #: The transport reported end of file.
    EOF = "EOF"


class ChannelState(enum.Enum):
    """The states of one channel."""

    #: ``Channel.Open`` is sent; waiting for ``Open-Ok``.
    OPENING = "OPENING"
    #: Open.
    OPEN = "OPEN"
    #: The client sent ``Channel.Close``; waiting for ``Close-Ok``.
    CLOSING = "CLOSING"
    #: Closed; the number is free.
    CLOSED = "CLOSED"


class ChannelInput(enum.Enum):
    """What moves a channel from state to state."""

    RECV_OPEN_OK = "RECV_OPEN_OK"
    SEND_CLOSE = "SEND_CLOSE"
    RECV_CLOSE = "RECV_CLOSE"
    RECV_CLOSE_OK = "RECV_CLOSE_OK"


_C = ConnectionState
_CI = ConnectionInput

#: ``(state, input) -> next state`` for the connection. A pair that is missing is illegal.
CONNECTION_TRANSITIONS: dict[tuple[ConnectionState, ConnectionInput], ConnectionState] = {
    (_C.AWAIT_START, _CI.RECV_START): _C.AWAIT_TUNE,
    (_C.AWAIT_TUNE, _CI.RECV_TUNE): _C.AWAIT_OPEN_OK,
    (_C.AWAIT_OPEN_OK, _CI.RECV_OPEN_OK): _C.OPEN,
    (_C.OPEN, _CI.SEND_CLOSE): _C.CLOSING,
    (_C.CLOSING, _CI.RECV_CLOSE_OK): _C.CLOSED,
    **{
        (state, _CI.SEND_ABORT): _C.CLOSED
        for state in (_C.AWAIT_START, _C.AWAIT_TUNE, _C.AWAIT_OPEN_OK)
    },
    **{
        (state, cause): _C.CLOSED
        for state in (_C.AWAIT_START, _C.AWAIT_TUNE, _C.AWAIT_OPEN_OK, _C.OPEN, _C.CLOSING)
        for cause in (_CI.RECV_CLOSE, _CI.FAIL, _CI.TIMEOUT, _CI.EOF)
    },
}

_H = ChannelState
_HI = ChannelInput

#: ``(state, input) -> next state`` for a channel. A pair that is missing is illegal.
CHANNEL_TRANSITIONS: dict[tuple[ChannelState, ChannelInput], ChannelState] = {
    (_H.OPENING, _HI.RECV_OPEN_OK): _H.OPEN,
    (_H.OPENING, _HI.SEND_CLOSE): _H.CLOSING,
    (_H.OPEN, _HI.SEND_CLOSE): _H.CLOSING,
    (_H.OPENING, _HI.RECV_CLOSE): _H.CLOSED,
    (_H.OPEN, _HI.RECV_CLOSE): _H.CLOSED,
    (_H.CLOSING, _HI.RECV_CLOSE): _H.CLOSING,
    (_H.CLOSING, _HI.RECV_CLOSE_OK): _H.CLOSED,
}


def connection_next(state: ConnectionState, event: ConnectionInput) -> ConnectionState | None:
    """Return the connection's next state, or None if ``event`` is illegal in ``state``."""
    return CONNECTION_TRANSITIONS.get((state, event))


def channel_next(state: ChannelState, event: ChannelInput) -> ChannelState | None:
    """Return a channel's next state, or None if ``event`` is illegal in ``state``."""
    return CHANNEL_TRANSITIONS.get((state, event))


def require_connection(
    state: ConnectionState, event: ConnectionInput, command: str
) -> ConnectionState:
    """Return the next state for a command the client gives, or raise.

    Raises:
        ConnectionStateError: the command is illegal in ``state``; it names both.
    """
    nxt = CONNECTION_TRANSITIONS.get((state, event))
    if nxt is None:
        raise ConnectionStateError(
            f"can't {command} when the connection is {state.value}",
            state=state.value,
            command=command,
        )
    return nxt


def require_channel(
    channel_id: int, state: ChannelState, event: ChannelInput, command: str
) -> ChannelState:
    """Return a channel's next state for a command the client gives, or raise.

    Raises:
        ChannelStateError: the command is illegal in ``state``; it names both.
    """
    nxt = CHANNEL_TRANSITIONS.get((state, event))
    if nxt is None:
        raise ChannelStateError(
            f"can't {command} when channel {channel_id} is {state.value}",
            state=state.value,
            command=command,
        )
    return nxt
