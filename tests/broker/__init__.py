"""Tests of the real-RabbitMQ harness (tools.broker and its pytest plugin)."""
