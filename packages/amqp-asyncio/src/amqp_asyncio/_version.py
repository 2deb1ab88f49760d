"""The version of the amqp-asyncio distribution."""

__version__ = "0.1.0"
