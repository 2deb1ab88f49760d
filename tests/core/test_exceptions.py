"""Tests of amqp_core.exceptions: pika's hierarchy, attributes and reprs, and the additions."""

from __future__ import annotations

import pika.adapters.utils.connection_workflow as pika_workflow
import pika.exceptions
import pytest

from amqp_core import exceptions


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("AMQPError", ("something",)),
        ("AMQPConnectionError", ("lost",)),
        ("AMQPConnectionError", (320, "CONNECTION_FORCED")),
        ("ConnectionOpenAborted", ("aborted",)),
        ("StreamLostError", ("Transport indicated EOF",)),
        ("ConnectionBlockedTimeout", ()),
        ("AMQPHeartbeatTimeout", ("no heartbeat",)),
        ("ConnectionClosed", (320, "CONNECTION_FORCED - bye")),
        ("ConnectionClosedByBroker", (403, "ACCESS_REFUSED")),
        ("ConnectionClosedByClient", (200, "Normal shutdown")),
        ("AMQPChannelError", ("channel trouble",)),
        ("ChannelWrongStateError", ("Channel is closed.",)),
        ("ChannelClosed", (404, "NOT_FOUND - no queue 'q'")),
        ("ChannelClosedByBroker", (406, "PRECONDITION_FAILED")),
        ("ChannelClosedByClient", (200, "Normal shutdown")),
        ("UnroutableError", ([object(), object()],)),
        ("NackError", ([object()],)),
        ("MethodNotImplemented", ("nope",)),
    ],
)
def test_repr_and_args_match_pika(name: str, args: tuple[object, ...]) -> None:
    ours = getattr(exceptions, name)(*args)
    theirs = getattr(pika.exceptions, name)(*args)
    assert repr(ours) == repr(theirs)
    assert ours.args == theirs.args


@pytest.mark.parametrize(
    ("cls", "code", "text"),
    [
        (exceptions.ConnectionClosedByBroker, 320, "CONNECTION_FORCED"),
        (exceptions.ChannelClosedByBroker, 404, "NOT_FOUND"),
        (exceptions.ChannelClosedByClient, 200, "Normal shutdown"),
    ],
)
def test_closed_errors_carry_code_and_text(
    cls: type[exceptions.ConnectionClosed] | type[exceptions.ChannelClosed], code: int, text: str
) -> None:
    # pika converts whatever it is given to int and str.
    error = cls(str(code), text.encode())  # type: ignore[arg-type]
    assert error.reply_code == code
    assert error.reply_text == str(text.encode())
    error = cls(code, text)
    assert (error.reply_code, error.reply_text) == (code, text)
    assert error.args == (code, text)


def test_connection_errors_carry_host_and_port() -> None:
    error = exceptions.ConnectionClosedByBroker(320, "bye", host="rabbit", port=5671)
    assert (error.host, error.port) == ("rabbit", 5671)
    plain = exceptions.StreamLostError("EOF")
    assert (plain.host, plain.port) == (None, None)


def test_unroutable_and_nack_errors_keep_the_messages() -> None:
    messages: list[object] = ["m1", "m2", "m3"]
    unroutable = exceptions.UnroutableError(messages)
    assert unroutable.messages is messages
    assert str(unroutable) == "3 unroutable message(s) returned"
    nacked = exceptions.NackError(messages[:1])
    assert nacked.messages == ["m1"]
    assert str(nacked) == "1 message(s) NACKed"


def test_codec_error_carries_reply_code_and_reason() -> None:
    error = exceptions.AMQPCodecError("bad table")
    assert (error.reply_code, error.reason) == (502, "bad table")
    assert str(error) == "(502) bad table"
    assert repr(error) == "AMQPCodecError('bad table', reply_code=502)"
    frame_error = exceptions.InvalidFrameError("wrong end octet")
    assert repr(frame_error) == "InvalidFrameError('wrong end octet', reply_code=501)"
    assert exceptions.UnexpectedFrameError("x").reply_code == 505
    assert exceptions.BodyTooLongError("x").reply_code == 501
    assert exceptions.ProtocolVersionMismatch("x").reply_code == 501
    assert exceptions.AMQPCodecError("unknown method", 540).reply_code == 540
    assert isinstance(error, pika.exceptions.ProtocolSyntaxError) is False  # our own hierarchy
    assert isinstance(error, exceptions.ProtocolSyntaxError)


def test_local_protocol_errors_name_state_and_command() -> None:
    error = exceptions.ChannelStateError(
        "cannot publish on channel 1 in state CLOSED", state="CLOSED", command="publish"
    )
    assert (error.state, error.command) == ("CLOSED", "publish")
    assert repr(error) == "ChannelStateError('cannot publish on channel 1 in state CLOSED')"
    assert isinstance(error, exceptions.ChannelWrongStateError)
    connection_error = exceptions.ConnectionStateError("no")
    assert (connection_error.state, connection_error.command) == ("", "")
    assert isinstance(connection_error, exceptions.ConnectionWrongStateError)


def test_remote_protocol_error_attributes() -> None:
    error = exceptions.RemoteProtocolError(505, "UNEXPECTED_FRAME", 60, 40)
    assert (error.reply_code, error.reply_text, error.class_id, error.method_id) == (
        505,
        "UNEXPECTED_FRAME",
        60,
        40,
    )
    assert repr(error) == "RemoteProtocolError: (505) UNEXPECTED_FRAME"
    assert isinstance(error, exceptions.AMQPConnectionError)


def test_connector_phase_errors_wrap_the_cause() -> None:
    cause = ConnectionRefusedError(111, "refused")
    error = exceptions.AMQPConnectorSocketConnectError(cause, "localhost:5672")
    assert error.exception is cause
    assert error.args == (cause, "localhost:5672")
    assert repr(error) == (
        "AMQPConnectorSocketConnectError: ConnectionRefusedError(111, 'refused'); "
        "('localhost:5672',)"
    )
    # pika's repr names the cause the same way (it leaves out the further arguments).
    theirs = pika_workflow.AMQPConnectorSocketConnectError(cause, "localhost:5672")
    assert repr(error).startswith(repr(theirs))


def test_workflow_failed_lists_every_attempt() -> None:
    first = exceptions.AMQPConnectorStackTimeout("slow")
    last = exceptions.AMQPConnectorSocketConnectError(OSError("unreachable"))
    attempts: list[BaseException] = [first, last]
    error = exceptions.AMQPConnectionWorkflowFailed(attempts)
    assert error.exceptions == attempts
    assert error.exceptions is not attempts  # a copy
    assert repr(error) == (
        f"AMQPConnectionWorkflowFailed: 2 exceptions in all; last exception - {last!r}; "
        f"first exception - {first!r}"
    )
    assert repr(error) == repr(pika_workflow.AMQPConnectionWorkflowFailed(attempts))
    empty = exceptions.AMQPConnectionWorkflowFailed([])
    assert repr(empty) == (
        "AMQPConnectionWorkflowFailed: 0 exceptions in all; last exception - None; "
        "first exception - None"
    )
