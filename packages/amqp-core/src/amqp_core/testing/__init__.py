"""Test helpers for code built on amqp_core.

* :mod:`amqp_core.testing.peer`: :class:`FakeBroker`, an in-memory broker peer for tests
  without a socket, and the :class:`Message` it keeps in its queues. Both are re-exported here.
  They need nothing beyond amqp_core.
* :mod:`amqp_core.testing.strategies`: hypothesis strategies for field values and tables,
  every method class, ``BasicProperties``, frames, messages, byte streams split into arbitrary
  chunks and mutated wire bytes, for property-based tests and fuzzing of AMQP code (see
  ``docs/fuzzing.md``). It needs hypothesis, which the ``testing`` extra installs
  (``pip install 'amqp-core[testing]'``); it is not imported here, so that
  ``import amqp_core.testing`` works without hypothesis.
"""

from amqp_core.testing.peer import FakeBroker, Message

__all__ = ("FakeBroker", "Message")
