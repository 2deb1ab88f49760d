"""Shared pytest configuration.

``tools.pytest_rabbitmq`` gives broker tests a real RabbitMQ (see its docstring); ``pytester``
lets the harness tests run that plugin in an inner pytest session.

Hypothesis: the suite runs on a shared two-core machine next to a RabbitMQ node, where how long
one example takes to *generate* says nothing about the code under test, so the ``too_slow``
health check is off for every test. Deadlines stay as each test sets them: those are how the
fuzz tests catch a hang.
"""

from hypothesis import HealthCheck, settings

pytest_plugins = ["pytester", "tools.pytest_rabbitmq"]

settings.register_profile("amqp-suite", suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("amqp-suite")
