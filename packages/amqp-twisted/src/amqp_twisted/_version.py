"""The version of the amqp-twisted distribution."""

__version__ = "0.1.0"
