"""The version of the amqp-select distribution."""

__version__ = "0.1.0"
