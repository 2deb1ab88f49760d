"""The version of the amqp-core distribution."""

__version__ = "0.1.0"
