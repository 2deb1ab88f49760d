"""Codec benchmark: amqp_core against pika, in the same run, printed as ratios.

Two workloads, as fixed by the foundation issue:

* encode: a Basic.Publish, its content header (content_type, delivery_mode, a 3-entry headers
  table, message_id) and a 64-byte body into wire bytes;
* decode: a stream of 10,000 Basic.Deliver + content header + 64-byte body messages into
  (method, properties, body) per message.

pika is measured at its most favourable: its decoder is handed each frame as its own ``bytes``
object (its connection really decodes from a buffer that it re-slices after every frame, which
costs more). amqp_core parses the one stream buffer at offsets, as its engine does.

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

BODY = b"x" * 64
HEADERS = {"x-trace": "abc123", "x-retries": 3, "x-urgent": True}


def _our_properties() -> spec.BasicProperties:
    return spec.BasicProperties(
        content_type="application/json", delivery_mode=2, headers=HEADERS, message_id="msg-0001"
    )


def _pika_properties() -> Any:
    return pika.spec.BasicProperties(
        content_type="application/json", delivery_mode=2, headers=HEADERS, message_id="msg-0001"
    )


def encode_ours(count: int) -> None:
    """Encode ``count`` publishes, each method encoded afresh (no method-frame cache)."""
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
    method = frame.encode_method_frame(1, spec.Basic.Publish(exchange="amq.direct", routing_key="bench"))
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
    pieces = []
    for tag in range(1, count + 1):
        method = frame.encode_method_frame(
            1,
            spec.Basic.Deliver(
                consumer_tag="ctag1.bench", delivery_tag=tag, exchange="amq.direct", routing_key="bench"
            ),
        )
        pieces.extend(bytes(p) for p in frame.encode_message(1, method, props, BODY, 131072))
    return b"".join(pieces)


def decode_ours(stream: bytes) -> list[tuple[Any, Any, bytes]]:
    """Decode a delivery stream with the engine's low-level calls, at offsets in one buffer."""
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
        messages.append((method.method, header.properties, body.fragment))
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


def _check_equivalent() -> None:
    """Both decoders must agree before their speed means anything."""
    sample = deliveries(3)
    ours = decode_ours(sample)
    theirs = decode_pika(split_frames(sample))
    assert len(ours) == len(theirs) == 3
    for (m1, p1, b1), (m2, p2, b2) in zip(ours, theirs):
        assert (m1.delivery_tag, m1.routing_key) == (m2.delivery_tag, m2.routing_key)
        assert (p1.headers, p1.message_id) == (p2.headers, p2.message_id)
        assert bytes(b1) == b2


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a markdown table of medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="repetitions; medians are shown")
    parser.add_argument("--messages", type=int, default=10_000, help="messages per repetition")
    args = parser.parse_args(argv)
    count = args.messages
    stream = deliveries(count)
    pika_frames = split_frames(stream)
    _check_equivalent()

    cases: dict[str, Callable[[], object]] = {
        "encode: pika": lambda: encode_pika(count),
        "encode: amqp_core": lambda: encode_ours(count),
        "encode: amqp_core, cached method frame": lambda: encode_ours_cached(count),
        "decode: pika": lambda: decode_pika(pika_frames),
        "decode: amqp_core": lambda: decode_ours(stream),
        "decode: amqp_core, frame objects": lambda: decode_ours_frames(stream),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeat):
        # Interleaved, so that a noisy neighbour slows both libraries alike.
        for name, case in cases.items():
            samples[name].append(_time(case))
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
