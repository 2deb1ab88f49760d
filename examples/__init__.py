"""Runnable examples; the docs include them and tests/adapters runs them against RabbitMQ."""
