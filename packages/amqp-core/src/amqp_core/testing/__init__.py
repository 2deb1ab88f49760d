"""Test helpers for code built on amqp_core; install them with ``pip install 'amqp-core[testing]'``.

* :mod:`amqp_core.testing.strategies`: hypothesis strategies for field values and tables,
  every method class, ``BasicProperties``, frames, messages, byte streams split into arbitrary
  chunks and mutated wire bytes, for property-based tests and fuzzing of AMQP code (see
  ``docs/fuzzing.md``). It needs hypothesis, which the ``testing`` extra installs.
* :mod:`amqp_core.testing.peer`: an in-memory broker peer for tests without a socket.

Nothing is imported here, so that ``import amqp_core.testing`` works without hypothesis and
each submodule is loaded only when asked for.
"""

# TODO(lead): re-export FakeBroker from amqp_core.testing.peer here once the engine engineer
# declares it stable; it imports cleanly without hypothesis today, but it is still changing.
