"""Shared pytest configuration.

``tools.pytest_rabbitmq`` gives broker tests a real RabbitMQ (see its docstring); ``pytester``
lets the harness tests run that plugin in an inner pytest session.
"""

pytest_plugins = ["pytester", "tools.pytest_rabbitmq"]
