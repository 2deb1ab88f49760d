"""OutputBufferFullError: where it sits in the hierarchy, what it carries and says."""

from __future__ import annotations

from amqp_core import exceptions


def test_carries_the_figures_and_names_the_parameter() -> None:
    error = exceptions.OutputBufferFullError(1_000_000, 1_048_576)
    assert isinstance(error, exceptions.AMQPError)
    assert not isinstance(error, exceptions.AMQPConnectionError)  # the connection is fine
    assert (error.unsent, error.limit) == (1_000_000, 1_048_576)
    assert "1000000 bytes" in str(error)
    assert "max_unsent_bytes=1048576" in str(error)
    assert repr(error) == f"OutputBufferFullError: {error}"
    assert "OutputBufferFullError" in exceptions.__all__
