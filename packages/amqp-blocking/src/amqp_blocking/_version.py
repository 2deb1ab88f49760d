"""The version of the amqp-blocking distribution."""

__version__ = "0.1.0"
