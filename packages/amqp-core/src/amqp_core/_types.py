"""Type aliases shared by the codec modules."""

from __future__ import annotations

from typing import TypeAlias

#: Anything the decoders read from: the engine hands them a ``memoryview`` over its receive
#: buffer, tests and users usually pass ``bytes``.
Buffer: TypeAlias = "bytes | bytearray | memoryview"
