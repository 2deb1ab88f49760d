"""Benchmarks that compare amqp_core and its adapters with pika, in the same run."""
