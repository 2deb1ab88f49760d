"""The version of the amqp-gevent distribution."""

__version__ = "0.1.0"
