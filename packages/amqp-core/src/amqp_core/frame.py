"""AMQP 0-9-1 frames: encoding, and incremental parsing over a receive buffer.

The wire format (spec section 4.2.3, "General Frame Format") is a 7-octet header (type,
channel, payload size), the payload, and the frame-end octet 0xCE. This module turns frames into
bytes and bytes into frames, and holds no state: the caller owns the buffer and the offsets.

Parsing is incremental. :func:`parse_frame` returns ``None`` when the buffer does not yet hold a
whole frame ("need more bytes" is a value, never an exception) and reads through the buffer at
offsets, so a receive buffer holding many frames is never copied per frame. Every malformed input
raises :class:`~amqp_core.exceptions.AMQPCodecError` (or a subclass) carrying the reply code the
connection must be closed with.

The lower-level functions (:func:`parse_frame_header`, :func:`decode_method_payload`,
:func:`decode_header_payload`) are what an engine uses on its hot path; :func:`parse_frame`
composes them into the pika-compatible frame objects (:class:`Method`, :class:`Header`,
:class:`Body`, :class:`Heartbeat`, :class:`ProtocolHeader`).

Two fused entry points serve whole messages: :func:`decode_content` decodes a content-carrying
method, its content header and its body frames in one call when they all lie in the buffer, and
:func:`encode_content` encodes a method, its properties and its body into frames in one call.
"""

from __future__ import annotations

import struct
from typing import Final

from amqp_core import spec
from amqp_core._types import Buffer
from amqp_core.amqp_object import Method as AMQPMethod
from amqp_core.amqp_object import Properties
from amqp_core.exceptions import (
    AMQPCodecError,
    InvalidFrameError,
    ProtocolVersionMismatch,
)

__all__ = (
    "FRAME_END_BYTE",
    "FRAME_OVERHEAD",
    "PROTOCOL_HEADER",
    "Body",
    "Frame",
    "Header",
    "Heartbeat",
    "Method",
    "ProtocolHeader",
    "decode_content",
    "decode_frame",
    "decode_header_payload",
    "decode_method_payload",
    "encode_content",
    "encode_heartbeat",
    "encode_message",
    "encode_method_frame",
    "parse_frame",
    "parse_frame_header",
    "parse_protocol_header",
)

#: What a client sends first (spec section 4.2.2): "AMQP", 0, then the version 0-9-1.
PROTOCOL_HEADER: Final = b"AMQP\x00\x00\x09\x01"
#: The frame-end octet as a one-byte string.
FRAME_END_BYTE: Final = bytes((spec.FRAME_END,))
#: Bytes a frame adds around its payload: the 7-octet header and the end octet.
FRAME_OVERHEAD: Final = spec.FRAME_HEADER_SIZE + spec.FRAME_END_SIZE

_FRAME_HEADER = struct.Struct(">BHI")
_METHOD_ID = struct.Struct(">I")
_METHOD_FRAME_START = struct.Struct(">BHII")
_CONTENT_HEADER = struct.Struct(">HHQ")
_HEADER_FRAME_START = struct.Struct(">BHIHHQ")
# The fused message codec reads across frame boundaries: the end octet of one frame as one
# short with the type of the next; the class id and weight of a content header as one long.
# Method frame: type, channel, size, method index.
_METHOD_HEAD = struct.Struct(">BHII")
# Method frame end + header frame type, channel, size, class + weight, body size, flags.
_HEADER_HEAD = struct.Struct(">HHIIQH")
# Header frame end + body frame type, channel, size.
_BODY_HEAD = struct.Struct(">HHI")
_HEARTBEAT = _FRAME_HEADER.pack(spec.FRAME_HEARTBEAT, 0, 0) + FRAME_END_BYTE
_PROTOCOL_VERSION = struct.Struct("BBB")

_FRAME_ERROR: Final = spec.FRAME_ERROR
_SYNTAX_ERROR: Final = spec.SYNTAX_ERROR
_NOT_IMPLEMENTED: Final = spec.NOT_IMPLEMENTED
_FRAME_END: Final = spec.FRAME_END
_HEADER_SIZE: Final = spec.FRAME_HEADER_SIZE


class Frame:
    """Base of the frame objects: a frame type and the channel it travels on.

    Args:
        frame_type: ``spec.FRAME_METHOD``, ``FRAME_HEADER``, ``FRAME_BODY`` or
            ``FRAME_HEARTBEAT``.
        channel_number: the channel, 0 for the connection itself.
    """

    __slots__ = ("channel_number", "frame_type")

    def __init__(self, frame_type: int, channel_number: int) -> None:
        self.frame_type = frame_type
        self.channel_number = channel_number

    def marshal(self) -> bytes:
        """Return the frame as wire bytes."""
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in _slot_names(self))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in _slot_names(self))
        return f"<{type(self).__name__}({fields})>"


def _slot_names(frame: object) -> list[str]:
    names: list[str] = []
    for cls in reversed(type(frame).__mro__):
        names.extend(getattr(cls, "__slots__", ()))
    return names


class Method(Frame):
    """A method frame: one AMQP method on a channel.

    Args:
        channel_number: the channel.
        method: the method, for example a ``spec.Basic.Deliver``.
    """

    __slots__ = ("method",)

    def __init__(self, channel_number: int, method: AMQPMethod) -> None:
        super().__init__(spec.FRAME_METHOD, channel_number)
        self.method = method

    def marshal(self) -> bytes:
        """Return the method frame as wire bytes."""
        return encode_method_frame(self.channel_number, self.method)


class Header(Frame):
    """A content header frame: the size of the body that follows and its properties.

    Args:
        channel_number: the channel.
        body_size: the size of the whole body, over all body frames.
        props: the content properties (a ``spec.BasicProperties``).
    """

    __slots__ = ("body_size", "properties")

    def __init__(self, channel_number: int, body_size: int, props: Properties) -> None:
        super().__init__(spec.FRAME_HEADER, channel_number)
        self.body_size = body_size
        self.properties = props

    def marshal(self) -> bytes:
        """Return the content header frame as wire bytes."""
        payload = self.properties.pack()
        return b"".join(
            (
                _HEADER_FRAME_START.pack(
                    spec.FRAME_HEADER,
                    self.channel_number,
                    _CONTENT_HEADER.size + len(payload),
                    self.properties.INDEX,
                    0,
                    self.body_size,
                ),
                payload,
                FRAME_END_BYTE,
            )
        )


class Body(Frame):
    """A content body frame: one fragment of a message body.

    Args:
        channel_number: the channel.
        fragment: the bytes of this fragment.
    """

    __slots__ = ("fragment",)

    def __init__(self, channel_number: int, fragment: bytes) -> None:
        super().__init__(spec.FRAME_BODY, channel_number)
        self.fragment = fragment

    def marshal(self) -> bytes:
        """Return the body frame as wire bytes."""
        return b"".join(
            (
                _FRAME_HEADER.pack(spec.FRAME_BODY, self.channel_number, len(self.fragment)),
                self.fragment,
                FRAME_END_BYTE,
            )
        )


class Heartbeat(Frame):
    """A heartbeat frame; it always travels on channel 0 with an empty payload."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(spec.FRAME_HEARTBEAT, 0)

    def marshal(self) -> bytes:
        """Return the heartbeat frame as wire bytes."""
        return _HEARTBEAT


class ProtocolHeader:
    """The protocol header that opens a connection (spec section 4.2.2).

    Args:
        major: protocol major version.
        minor: protocol minor version.
        revision: protocol revision.
    """

    __slots__ = ("major", "minor", "revision")

    frame_type = -1

    def __init__(
        self,
        major: int = spec.PROTOCOL_VERSION[0],
        minor: int = spec.PROTOCOL_VERSION[1],
        revision: int = spec.PROTOCOL_VERSION[2],
    ) -> None:
        self.major = major
        self.minor = minor
        self.revision = revision

    def marshal(self) -> bytes:
        """Return the protocol header as wire bytes."""
        return b"AMQP\x00" + _PROTOCOL_VERSION.pack(self.major, self.minor, self.revision)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProtocolHeader):
            return NotImplemented
        return (self.major, self.minor, self.revision) == (
            other.major,
            other.minor,
            other.revision,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<ProtocolHeader({self.major}-{self.minor}-{self.revision})>"


def encode_method_frame(channel_number: int, method: AMQPMethod) -> bytes:
    """Encode one method as a whole method frame.

    Args:
        channel_number: the channel the method travels on.
        method: the method.

    Returns:
        The frame's wire bytes.
    """
    payload = method.pack()
    return b"".join(
        (
            _FRAME_HEADER.pack(spec.FRAME_METHOD, channel_number, len(payload)),
            payload,
            FRAME_END_BYTE,
        )
    )


def encode_heartbeat() -> bytes:
    """Return the wire bytes of a heartbeat frame."""
    return _HEARTBEAT


# A content header without properties (flag word 0), its end octet and the head of the body
# frame that follows it.
_pack_bare_head = struct.Struct(">BHIHHQHBBHI").pack
_BASIC_CLASS: Final = spec.BasicProperties.INDEX
_NO_PROPERTIES: Final = spec.BasicProperties()

# Bodies up to this size are copied into the one joined buffer of the message; larger ones are
# handed out as views so that a big message is never copied just to put frame headers around it.
_JOIN_BODY_LIMIT: Final = 64 * 1024


def encode_message(
    channel_number: int,
    method_frame: bytes,
    properties: Properties | None,
    body: bytes | bytearray | memoryview,
    frame_max: int,
) -> list[Buffer]:
    """Encode a content-carrying method, its header and its body as frames.

    The body is split into body frames of at most ``frame_max`` bytes each, frame header and end
    octet included (spec section 4.2.6.2); ``frame_max`` 0 means no limit. A small message comes
    out as one joined ``bytes``; a large body is referenced by ``memoryview`` slices, never
    copied.

    Args:
        channel_number: the channel.
        method_frame: the already encoded method frame (see :func:`encode_method_frame`), which a
            caller publishing repeatedly to one exchange and routing key may cache.
        properties: the content properties, or None for an empty ``BasicProperties``.
        body: the message body.
        frame_max: the negotiated maximum frame size, or 0 for no limit.

    Returns:
        The pieces to write, in order.

    Raises:
        ValueError: ``frame_max`` is below the spec's minimum frame size.
    """
    body_size = len(body)
    if properties is None:
        if 0 < body_size <= _JOIN_BODY_LIMIT and (
            not frame_max or spec.FRAME_MIN_SIZE <= frame_max >= body_size + FRAME_OVERHEAD
        ):
            # The most common publish: no properties, a body that fits one frame. Its header
            # frame and the body frame's head are one precompiled struct.
            return [
                b"".join(
                    (
                        method_frame,
                        _pack_bare_head(
                            spec.FRAME_HEADER,
                            channel_number,
                            _CONTENT_HEADER.size + 2,
                            _BASIC_CLASS,
                            0,
                            body_size,
                            0,
                            _FRAME_END,
                            spec.FRAME_BODY,
                            channel_number,
                            body_size,
                        ),
                        body,
                        FRAME_END_BYTE,
                    )
                )
            ]
        properties = _NO_PROPERTIES
    props = properties.pack()
    header = _HEADER_FRAME_START.pack(
        spec.FRAME_HEADER,
        channel_number,
        _CONTENT_HEADER.size + len(props),
        properties.INDEX,
        0,
        body_size,
    )
    if frame_max and frame_max < spec.FRAME_MIN_SIZE:
        raise ValueError(f"frame_max {frame_max} is below the minimum of {spec.FRAME_MIN_SIZE}")
    if not body_size:
        # Spec 4.2.6: a message with an empty body has no body frame at all.
        return [b"".join((method_frame, header, props, FRAME_END_BYTE))]
    chunk = frame_max - FRAME_OVERHEAD if frame_max else body_size
    if body_size <= chunk and body_size <= _JOIN_BODY_LIMIT:
        return [
            b"".join(
                (
                    method_frame,
                    header,
                    props,
                    FRAME_END_BYTE,
                    _FRAME_HEADER.pack(spec.FRAME_BODY, channel_number, body_size),
                    body,
                    FRAME_END_BYTE,
                )
            )
        ]
    view = memoryview(body).cast("B") if not isinstance(body, bytes) else memoryview(body)
    pieces: list[Buffer] = [b"".join((method_frame, header, props, FRAME_END_BYTE))]
    for start in range(0, body_size, chunk):
        fragment = view[start : start + chunk]
        pieces.append(_FRAME_HEADER.pack(spec.FRAME_BODY, channel_number, len(fragment)))
        pieces.append(fragment)
        pieces.append(FRAME_END_BYTE)
    return pieces


def parse_protocol_header(
    buf: Buffer, offset: int = 0, end: int | None = None
) -> ProtocolHeader | None:
    """Parse the 8-octet protocol header a client opens a connection with.

    Args:
        buf: the receive buffer.
        offset: where the header starts.
        end: where the received bytes end (``len(buf)`` by default).

    Returns:
        The header, or ``None`` when fewer than 8 bytes have arrived.

    Raises:
        ProtocolVersionMismatch: the bytes are not an AMQP protocol header.
    """
    stop = len(buf) if end is None else end
    if stop - offset < len(PROTOCOL_HEADER):
        if bytes(buf[offset:stop]) != PROTOCOL_HEADER[: stop - offset]:
            raise ProtocolVersionMismatch(
                f"not an AMQP protocol header: {bytes(buf[offset:stop])!r}"
            )
        return None
    head = bytes(buf[offset : offset + 5])
    if head != b"AMQP\x00":
        raise ProtocolVersionMismatch(
            f"not an AMQP protocol header: {bytes(buf[offset : offset + 8])!r}"
        )
    return ProtocolHeader(*_PROTOCOL_VERSION.unpack_from(buf, offset + 5))


def parse_frame_header(
    buf: Buffer, offset: int, end: int, frame_max: int = 0
) -> tuple[int, int, int, int] | None:
    """Read the header of the frame at ``offset`` and check that the whole frame is sound.

    Args:
        buf: the receive buffer.
        offset: where the frame starts.
        end: where the received bytes end.
        frame_max: the negotiated maximum frame size (header and end octet included), or 0 for
            no limit.

    Returns:
        ``(frame_type, channel, payload_start, payload_end)`` with the frame-end octet at
        ``payload_end``, or ``None`` when the frame has not fully arrived yet. A frame larger
        than ``frame_max`` is refused as soon as its header is read, without waiting for it.

    Raises:
        InvalidFrameError: the frame is over ``frame_max`` or its end octet is not 0xCE (501).
    """
    if end - offset < _HEADER_SIZE:
        return None
    frame_type, channel, size = _FRAME_HEADER.unpack_from(buf, offset)
    if frame_max and size + FRAME_OVERHEAD > frame_max:
        raise InvalidFrameError(
            f"frame of {size + FRAME_OVERHEAD} bytes on channel {channel} is over the "
            f"negotiated frame_max of {frame_max}"
        )
    payload_start = offset + _HEADER_SIZE
    payload_end = payload_start + size
    if payload_end >= end:
        return None
    if buf[payload_end] != _FRAME_END:
        raise InvalidFrameError(
            f"frame end octet is 0x{buf[payload_end]:02x}, not 0xce (type {frame_type}, "
            f"channel {channel}, size {size})"
        )
    return frame_type, channel, payload_start, payload_end


def decode_method_payload(buf: Buffer, start: int, end: int) -> AMQPMethod:
    """Decode the payload of a method frame.

    Args:
        buf: the receive buffer.
        start: where the payload starts (the class id).
        end: where it ends (the frame-end octet).

    Returns:
        The method.

    Raises:
        AMQPCodecError: the payload is too short for a class and method id (502), names a
            method this protocol does not have (540), or its arguments are malformed (502).
    """
    if end - start < 4:
        raise AMQPCodecError(
            f"method frame payload of {end - start} bytes has no method id", _SYNTAX_ERROR
        )
    (index,) = _METHOD_ID.unpack_from(buf, start)
    method_class = spec.methods.get(index)
    if method_class is None:
        raise AMQPCodecError(
            f"unknown method: class {index >> 16}, method {index & 0xFFFF}", _NOT_IMPLEMENTED
        )
    return method_class.unpack(buf, start + 4, end)


def decode_header_payload(buf: Buffer, start: int, end: int) -> tuple[int, int, Properties]:
    """Decode the payload of a content header frame (spec section 4.2.6.1).

    Args:
        buf: the receive buffer.
        start: where the payload starts (the class id).
        end: where it ends (the frame-end octet).

    Returns:
        ``(class_id, body_size, properties)``.

    Raises:
        AMQPCodecError: the payload is truncated, the weight is not zero, the class carries no
            content, or the property list is malformed (all 502; an unknown class is 540).
    """
    if end - start < _CONTENT_HEADER.size:
        raise AMQPCodecError(
            f"content header payload of {end - start} bytes is shorter than 12", _SYNTAX_ERROR
        )
    class_id, weight, body_size = _CONTENT_HEADER.unpack_from(buf, start)
    if weight:
        # Spec 4.2.6.1: "The weight field is unused and must be zero."
        raise AMQPCodecError(f"content header weight is {weight}, must be zero", _SYNTAX_ERROR)
    props_class = spec.props.get(class_id)
    if props_class is None:
        raise AMQPCodecError(
            f"content header for class {class_id}, which has no content", _NOT_IMPLEMENTED
        )
    return class_id, body_size, props_class.unpack(buf, start + _CONTENT_HEADER.size, end)


def parse_frame(
    buf: Buffer, offset: int = 0, end: int | None = None, frame_max: int = 0
) -> tuple[Frame, int] | None:
    """Parse the frame at ``offset`` into a frame object.

    Args:
        buf: the receive buffer (bytes, bytearray, or a memoryview over one).
        offset: where the frame starts.
        end: where the received bytes end (``len(buf)`` by default).
        frame_max: the negotiated maximum frame size, or 0 for no limit.

    Returns:
        ``(frame, next_offset)``, or ``None`` when the frame has not fully arrived yet.

    Raises:
        AMQPCodecError: the frame is malformed; its ``reply_code`` says how (501 frame error,
            502 syntax error, 540 unknown method ...).
    """
    stop = len(buf) if end is None else end
    located = parse_frame_header(buf, offset, stop, frame_max)
    if located is None:
        return None
    frame_type, channel, start, payload_end = located
    frame: Frame
    if frame_type == spec.FRAME_METHOD:
        frame = Method(channel, decode_method_payload(buf, start, payload_end))
    elif frame_type == spec.FRAME_HEADER:
        _, body_size, props = decode_header_payload(buf, start, payload_end)
        frame = Header(channel, body_size, props)
    elif frame_type == spec.FRAME_BODY:
        frame = Body(channel, bytes(buf[start:payload_end]))
    elif frame_type == spec.FRAME_HEARTBEAT:
        # Spec 4.2.7: heartbeat frames travel on channel 0 and carry no payload.
        if channel or payload_end != start:
            raise InvalidFrameError(
                f"heartbeat frame on channel {channel} with {payload_end - start} payload bytes"
            )
        frame = Heartbeat()
    else:
        raise InvalidFrameError(f"unknown frame type {frame_type} on channel {channel}")
    return frame, payload_end + 1


def decode_frame(data_in: Buffer, offset: int = 0) -> tuple[int, Frame | ProtocolHeader | None]:
    """Decode one frame or protocol header, the way pika's ``frame.decode_frame`` does.

    Args:
        data_in: the received bytes.
        offset: where to start reading.

    Returns:
        ``(bytes_consumed, frame)``, or ``(0, None)`` when more bytes are needed.

    Raises:
        AMQPCodecError: the input is malformed.
    """
    if bytes(data_in[offset : offset + 4]) == b"AMQP":
        header = parse_protocol_header(data_in, offset)
        return (0, None) if header is None else (8, header)
    parsed = parse_frame(data_in, offset)
    if parsed is None:
        return 0, None
    frame, next_offset = parsed
    return next_offset - offset, frame


# --------------------------------------------------------------------------------------------
# Whole messages in one call
# --------------------------------------------------------------------------------------------

# Content-carrying methods by index: the method class, the property class of its content and
# the class id and weight (zero) its content header must have, as one 32-bit value.
_CONTENT_METHODS: Final[dict[int, tuple[type[AMQPMethod], type[Properties], int]]] = {
    index: (method_class, spec.props[index >> 16], index & 0xFFFF0000)
    for index, method_class in spec.methods.items()
    if method_class.HAS_CONTENT
}
_unpack_method_head = _METHOD_HEAD.unpack_from
_unpack_header_head = _HEADER_HEAD.unpack_from
_unpack_body_head = _BODY_HEAD.unpack_from
_pack_method_head = _FRAME_HEADER.pack
_pack_header_head = struct.Struct(">BBHIHHQ").pack  # method frame end, then the header frame
_pack_body_head = struct.Struct(">BBHI").pack  # header frame end, then the body frame's header


def decode_content(
    buf: Buffer, offset: int, end: int, frame_max: int = 0
) -> tuple[int, AMQPMethod, Properties, bytes, int] | None:
    """Decode a content-carrying method with its content header and body frames, in one call.

    This is the fast path for deliveries (``Basic.Deliver``, ``Basic.GetOk``, ``Basic.Return``):
    when the method frame at ``offset`` carries content and its content header and body frames
    follow it contiguously on the same channel, all of them already received, the three are
    located with one read across each frame boundary and decoded together. The body is copied
    once (the body frames joined into one ``bytes``); from a ``bytearray`` or ``memoryview`` the
    method and header payloads are copied once more, together.

    Anything else returns ``None``, and the caller proceeds frame by frame with
    :func:`parse_frame_header` and friends, which either wait for more bytes, handle frames of
    other channels interleaved with the content, or report what is wrong: a frame that is not
    a content method, a message not yet complete, a frame of another type or channel between
    the frames of the message, body frames larger than the body size, or malformed framing
    (a wrong end octet, a frame over ``frame_max``, a content header of the wrong class or
    with a non-zero weight).

    Args:
        buf: the receive buffer.
        offset: where the method frame starts.
        end: where the received bytes end.
        frame_max: the negotiated maximum frame size, or 0 for no limit.

    Returns:
        ``(channel, method, properties, body, next_offset)``, or ``None`` as above.

    Raises:
        AMQPCodecError: the method's arguments or the property list are malformed, exactly as
            :func:`decode_method_payload` and :func:`decode_header_payload` raise for them.
    """
    if end - offset < 11:
        return None
    frame_type, channel, size, index = _unpack_method_head(buf, offset)
    content = _CONTENT_METHODS.get(index)
    if content is None or frame_type != 1:
        return None
    method_class, props_class, class_and_weight = content
    size_limit = frame_max - FRAME_OVERHEAD if frame_max else 0xFFFFFFFF
    method_end = offset + 7 + size
    header_start = method_end + 8
    # The header frame's payload is at least 14 bytes: class, weight, body size, flags.
    if header_start + 14 > end or size > size_limit:
        return None
    # The end octet of the method frame and the type of the header frame are read as one
    # short, the class id and the (zero) weight as one long.
    end_and_type, header_channel, size, class_weight, body_size, flags = _unpack_header_head(
        buf, method_end
    )
    header_end = header_start + size
    if (
        end_and_type != 0xCE02
        or class_weight != class_and_weight
        or header_channel != channel
        or header_end >= end
        or size < 14
        or size > size_limit
    ):
        return None
    if body_size:
        body_start = header_end + 8
        if body_start > end:
            return None
        end_and_type, body_channel, size = _unpack_body_head(buf, header_end)
        body_end = body_start + size
        if (
            size != body_size
            or end_and_type != 0xCE03
            or body_channel != channel
            or body_end >= end
            or buf[body_end] != 206
            or size > size_limit
        ):
            if end_and_type != 0xCE03 or size >= body_size:
                return None
            # The body comes in several frames.
            gathered = _gather_body(buf, header_end + 1, end, channel, body_size, frame_max)
            if gathered is None:
                return None
            body, next_offset = gathered
        else:
            body = (
                buf[body_start:body_end] if type(buf) is bytes else bytes(buf[body_start:body_end])
            )
            next_offset = body_end + 1
    else:
        if buf[header_end] != 206:
            return None
        body_start = header_end
        body = b""
        next_offset = header_end + 1
    if type(buf) is bytes:
        data = buf
    else:
        # One copy of the method and header frames: the decoders read bytes fastest.
        data = bytes(buf[offset:body_start])
        method_end -= offset
        header_start -= offset
        header_end -= offset
        offset = 0
    method = method_class.unpack(data, offset + 11, method_end)
    try:
        decoder = props_class._DECODERS.get(flags) or props_class._decoder(flags)
        props = decoder(props_class, data, header_start + 14, header_end)
    except Exception:
        # A continued flag word, or malformed: the class's own decoder decodes or reports it.
        props = props_class.unpack(data, header_start + 12, header_end)
    return channel, method, props, body, next_offset


def _gather_body(
    buf: Buffer, offset: int, end: int, channel: int, body_size: int, frame_max: int
) -> tuple[bytes, int] | None:
    """Join the body frames at ``offset`` into the body; None unless all are there, sound."""
    view = memoryview(buf)
    pieces = []
    remaining = body_size
    while remaining:
        if offset + 7 > end:
            return None
        frame_type, body_channel, size = _FRAME_HEADER.unpack_from(buf, offset)
        start = offset + 7
        stop = start + size
        if (
            frame_type != 3
            or body_channel != channel
            or size > remaining
            or stop >= end
            or buf[stop] != 206
            or (frame_max and size + 8 > frame_max)
        ):
            return None
        pieces.append(view[start:stop])
        remaining -= size
        offset = stop + 1
    return b"".join(pieces), offset


def encode_content(
    channel_number: int,
    method: AMQPMethod,
    properties: Properties,
    body: bytes | bytearray | memoryview,
    frame_max: int,
) -> list[Buffer]:
    """Encode a content-carrying method, its content header and its body, in one call.

    The same frames as ``encode_message(channel_number, encode_method_frame(channel_number,
    method), properties, body, frame_max)``, with the method, header and body of a small
    message joined into one ``bytes`` at once.

    Args:
        channel_number: the channel.
        method: the method, for example a ``spec.Basic.Publish``.
        properties: the content properties.
        body: the message body.
        frame_max: the negotiated maximum frame size, or 0 for no limit.

    Returns:
        The pieces to write, in order (see :func:`encode_message`).

    Raises:
        ValueError: ``frame_max`` is below the spec's minimum frame size, or the method does
            not carry content.
        AMQPEncodeError: a value of the method or the properties cannot be encoded.
    """
    if not method.HAS_CONTENT:
        raise ValueError(f"{method.NAME} does not carry content")
    payload = method.pack()
    props = properties.pack()
    body_size = len(body)
    if (
        body_size > _JOIN_BODY_LIMIT
        or (frame_max and body_size + FRAME_OVERHEAD > frame_max)
        or (frame_max and frame_max < spec.FRAME_MIN_SIZE)
    ):
        method_frame = b"".join(
            (_pack_method_head(1, channel_number, len(payload)), payload, FRAME_END_BYTE)
        )
        return encode_message(channel_number, method_frame, properties, body, frame_max)
    header = _pack_header_head(
        206, 2, channel_number, 12 + len(props), properties.INDEX, 0, body_size
    )
    if not body_size:
        # Spec 4.2.6: a message with an empty body has no body frame at all.
        return [
            b"".join(
                (
                    _pack_method_head(1, channel_number, len(payload)),
                    payload,
                    header,
                    props,
                    FRAME_END_BYTE,
                )
            )
        ]
    return [
        b"".join(
            (
                _pack_method_head(1, channel_number, len(payload)),
                payload,
                header,
                props,
                _pack_body_head(206, 3, channel_number, body_size),
                body,
                FRAME_END_BYTE,
            )
        )
    ]
