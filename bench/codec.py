"""Codec benchmark: amqp_core against pika, in the same run, printed as ratios.

Two workloads, as fixed by the foundation issue:

* encode: a Basic.Publish, its content header (content_type, delivery_mode, a 3-entry headers
  table, message_id) and a 64-byte body into wire bytes;
* decode: a stream of 10,000 Basic.Deliver + content header + 64-byte body messages into
  (method, properties, body) per message.

pika is measured at its most favourable: its decoder is handed each frame as its own ``bytes``
object (its connection really decodes from a buffer that it re-slices after every frame, which
costs more). amqp_core parses the one stream buffer at offsets, as its engine does.

The headline rows (``encode: amqp_core``, ``decode: amqp_core``) use the one-call message
codec (:func:`amqp_core.frame.encode_content`, :func:`amqp_core.frame.decode_content`); the
other amqp_core rows show the frame-by-frame calls for comparison. Both libraries produce
fully decoded methods, properties (headers included) and bodies, and after timing the run checks
that all decoded messages of every amqp_core case equal pika's, field by field.

Run: ``hatch run bench-codec`` (``python -m bench.codec [--repeat N] [--messages N]``). The
machine is shared and noisy: read the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import pika.frame
import pika.spec

from amqp_core import frame, spec
from amqp_core.data import FieldValue

BODY = b"x" * 64
HEADERS: dict[str, FieldValue] = {"x-trace": "abc123", "x-retries": 3, "x-urgent": True}


def _our_properties() -> spec.BasicProperties:
    return spec.BasicProperties(
        content_type="application/json", delivery_mode=2, headers=HEADERS, message_id="msg-0001"
    )


def _pika_properties() -> Any:
    return pika.spec.BasicProperties(
        content_type="application/json", delivery_mode=2, headers=HEADERS, message_id="msg-0001"
    )


def encode_ours(count: int) -> None:
    """Encode ``count`` publishes in one call each, each method encoded afresh."""
    props = _our_properties()
    encode_content = frame.encode_content
    publish = spec.Basic.Publish
    for _ in range(count):
        encode_content(1, publish(exchange="amq.direct", routing_key="bench"), props, BODY, 131072)


def encode_ours_frames(count: int) -> None:
    """Encode ``count`` publishes frame by frame: method frame, then the message around it."""
    props = _our_properties()
    encode_method_frame = frame.encode_method_frame
    encode_message = frame.encode_message
    publish = spec.Basic.Publish
    for _ in range(count):
        method = encode_method_frame(1, publish(exchange="amq.direct", routing_key="bench"))
        encode_message(1, method, props, BODY, 131072)


def encode_ours_cached(count: int) -> None:
    """Encode ``count`` publishes reusing the method frame, as a publishing engine may."""
    props = _our_properties()
    encode_message = frame.encode_message
    method = frame.encode_method_frame(
        1, spec.Basic.Publish(exchange="amq.direct", routing_key="bench")
    )
    for _ in range(count):
        encode_message(1, method, props, BODY, 131072)


def encode_pika(count: int) -> None:
    """Encode ``count`` publishes the way pika's channel does (three frames, then joined)."""
    props = _pika_properties()
    method_frame = pika.frame.Method
    header_frame = pika.frame.Header
    body_frame = pika.frame.Body
    publish = pika.spec.Basic.Publish
    for _ in range(count):
        b"".join(
            (
                method_frame(1, publish(exchange="amq.direct", routing_key="bench")).marshal(),
                header_frame(1, len(BODY), props).marshal(),
                body_frame(1, BODY).marshal(),
            )
        )


def deliveries(count: int) -> bytes:
    """Return the wire bytes of ``count`` deliveries of the benchmark message."""
    props = _our_properties()
    pieces: list[bytes] = []
    for tag in range(1, count + 1):
        method = frame.encode_method_frame(
            1,
            spec.Basic.Deliver(
                consumer_tag="ctag1.bench",
                delivery_tag=tag,
                exchange="amq.direct",
                routing_key="bench",
            ),
        )
        pieces.extend(bytes(p) for p in frame.encode_message(1, method, props, BODY, 131072))
    return b"".join(pieces)


def decode_ours(stream: bytes) -> list[tuple[Any, Any, bytes]]:
    """Decode a delivery stream one whole message per call, at offsets in one buffer."""
    decode_content = frame.decode_content
    messages: list[tuple[Any, Any, bytes]] = []
    append = messages.append
    offset, end = 0, len(stream)
    while offset < end:
        decoded = decode_content(stream, offset, end, 131072)
        assert decoded is not None
        _, method, props, body, offset = decoded
        append((method, props, body))
    return messages


def decode_ours_calls(stream: bytes) -> list[tuple[Any, Any, bytes]]:
    """Decode a delivery stream frame by frame with the low-level calls, at offsets."""
    parse_header = frame.parse_frame_header
    decode_method = frame.decode_method_payload
    decode_props = frame.decode_header_payload
    messages = []
    offset, end = 0, len(stream)
    while offset < end:
        located = parse_header(stream, offset, end, 131072)
        assert located is not None
        _, _, start, stop = located
        method = decode_method(stream, start, stop)
        located = parse_header(stream, stop + 1, end, 131072)
        assert located is not None
        _, _, start, stop = located
        _, _, props = decode_props(stream, start, stop)
        located = parse_header(stream, stop + 1, end, 131072)
        assert located is not None
        _, _, start, stop = located
        messages.append((method, props, stream[start:stop]))
        offset = stop + 1
    return messages


def decode_ours_frames(stream: bytes) -> list[tuple[Any, Any, bytes]]:
    """Decode a delivery stream through the pika-shaped frame objects of ``parse_frame``."""
    parse = frame.parse_frame
    messages = []
    offset, end = 0, len(stream)
    while offset < end:
        method, offset = parse(stream, offset, end)  # type: ignore[misc]
        header, offset = parse(stream, offset, end)  # type: ignore[misc]
        body, offset = parse(stream, offset, end)  # type: ignore[misc]
        messages.append((method.method, header.properties, body.fragment))  # type: ignore[union-attr]
    return messages


def split_frames(stream: bytes) -> list[bytes]:
    """Cut a stream into one ``bytes`` per frame (for pika's decoder)."""
    frames = []
    offset = 0
    while offset < len(stream):
        located = frame.parse_frame_header(stream, offset, len(stream))
        assert located is not None
        frames.append(stream[offset : located[3] + 1])
        offset = located[3] + 1
    return frames


def decode_pika(frames: list[bytes]) -> list[tuple[Any, Any, bytes]]:
    """Decode pre-split frames with pika's ``decode_frame``."""
    decode = pika.frame.decode_frame
    messages = []
    for index in range(0, len(frames), 3):
        method = decode(frames[index])[1]
        header = decode(frames[index + 1])[1]
        body = decode(frames[index + 2])[1]
        messages.append((method.method, header.properties, body.fragment))
    return messages


def _time(function: Callable[[], object]) -> float:
    gc.collect()
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


_DELIVER_FIELDS = ("consumer_tag", "delivery_tag", "redelivered", "exchange", "routing_key")
_PROPERTY_FIELDS = tuple(name for name, _, _ in spec.BasicProperties._PROPERTIES)


def _check_equivalent(
    name: str, ours: list[tuple[Any, Any, bytes]], theirs: list[tuple[Any, Any, bytes]]
) -> None:
    """Every decoded message must equal pika's, every field: else the timing means nothing."""
    if len(ours) != len(theirs):
        raise AssertionError(f"{name}: {len(ours)} messages decoded, pika decoded {len(theirs)}")
    for number, ((m1, p1, b1), (m2, p2, b2)) in enumerate(zip(ours, theirs, strict=True)):
        if type(m1) is not spec.Basic.Deliver or m2.NAME != "Basic.Deliver":
            raise AssertionError(f"{name}: message {number}: {m1!r} / {m2!r}")
        for field in _DELIVER_FIELDS:
            if getattr(m1, field) != getattr(m2, field):
                raise AssertionError(f"{name}: message {number}: method {field} differs")
        for field in _PROPERTY_FIELDS:
            if getattr(p1, field) != getattr(p2, field):
                raise AssertionError(f"{name}: message {number}: property {field} differs")
        if p1.headers != HEADERS or bytes(b1) != b2 or b2 != BODY:
            raise AssertionError(f"{name}: message {number}: headers or body differ")


def _check_encoders() -> None:
    """Both of our encoders give the same bytes, which pika decodes back to the message."""
    props = _our_properties()
    method = spec.Basic.Publish(exchange="amq.direct", routing_key="bench")
    fused = b"".join(bytes(p) for p in frame.encode_content(1, method, props, BODY, 131072))
    method_frame = frame.encode_method_frame(1, method)
    pieces = frame.encode_message(1, method_frame, props, BODY, 131072)
    assert fused == b"".join(bytes(p) for p in pieces)
    decoded = decode_pika(split_frames(fused))
    assert len(decoded) == 1
    publish, pika_props, body = decoded[0]
    assert (publish.exchange, publish.routing_key, body) == ("amq.direct", "bench", BODY)
    for field in _PROPERTY_FIELDS:
        assert getattr(pika_props, field) == getattr(props, field), field


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a markdown table of medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="repetitions; medians are shown")
    parser.add_argument("--messages", type=int, default=10_000, help="messages per repetition")
    args = parser.parse_args(argv)
    count = args.messages
    stream = deliveries(count)
    pika_frames = split_frames(stream)
    _check_encoders()

    cases: dict[str, Callable[[], object]] = {
        "encode: pika": lambda: encode_pika(count),
        "encode: amqp_core": lambda: encode_ours(count),
        "encode: amqp_core, frame by frame": lambda: encode_ours_frames(count),
        "encode: amqp_core, cached method frame": lambda: encode_ours_cached(count),
        "decode: pika": lambda: decode_pika(pika_frames),
        "decode: amqp_core": lambda: decode_ours(stream),
        "decode: amqp_core, frame by frame": lambda: decode_ours_calls(stream),
        "decode: amqp_core, frame objects": lambda: decode_ours_frames(stream),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeat):
        # Interleaved, so that a noisy neighbour slows both libraries alike.
        for name, case in cases.items():
            samples[name].append(_time(case))
    # After timing: all messages of every decode case, every field, against pika's.
    theirs = decode_pika(pika_frames)
    for name, case in cases.items():
        if name.startswith("decode: amqp_core"):
            ours = case()
            assert isinstance(ours, list)
            _check_equivalent(name, ours, theirs)
    per_message = {name: statistics.median(times) / count * 1e6 for name, times in samples.items()}

    print(f"# Codec benchmark ({count} messages x {args.repeat} repetitions, medians)\n")
    print(f"Python {platform.python_version()} on {platform.machine()}, pika {pika.__version__}\n")
    print("| case | us per message | speed-up vs pika |")
    print("|---|---:|---:|")
    for name, micros in per_message.items():
        baseline = per_message["encode: pika" if name.startswith("encode") else "decode: pika"]
        print(f"| {name} | {micros:.2f} | {baseline / micros:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
