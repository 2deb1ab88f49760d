"""The version of the amqp-tornado distribution."""

__version__ = "0.1.0"
