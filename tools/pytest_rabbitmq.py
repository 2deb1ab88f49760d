"""pytest plugin that gives broker tests a real RabbitMQ.

Fixtures:

* ``amqp_url`` (session): the URL of the broker to test against: ``$AMQP_URL`` when that is set,
  otherwise a throwaway node (:class:`tools.broker.RabbitMQNode`) that the plugin starts the first
  time a test asks for it and stops when the session ends.
* ``rabbitmq`` (session): that throwaway node, for tests that drive ``rabbitmqctl``; None when
  ``$AMQP_URL`` names an existing broker.

A test that uses either fixture is marked ``broker`` automatically, so ``-m "not broker"`` runs
everything else without starting a node. A test marked ``broker`` always gets the broker
started for it, even if it does not ask for a fixture. A broker that cannot be started is an
error, never a skip: in CI a missing broker must fail the run.

Load it from ``tests/conftest.py`` with ``pytest_plugins = ["tools.pytest_rabbitmq"]``.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterator

import pytest

from tools.broker import RabbitMQNode

__all__ = ("AMQP_URL_VARIABLE", "amqp_url", "rabbitmq")

AMQP_URL_VARIABLE = "AMQP_URL"
_BROKER_FIXTURES = frozenset({"amqp_url", "rabbitmq"})


def _external_url() -> str | None:
    return os.environ.get(AMQP_URL_VARIABLE) or None


def _redact(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def pytest_report_header(config: pytest.Config) -> str:
    """Say which broker the broker tests will use."""
    url = _external_url()
    if url is not None:
        return f"rabbitmq: {AMQP_URL_VARIABLE}={_redact(url)}"
    return "rabbitmq: a throwaway node, started when the first broker test runs"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a broker fixture with ``broker``.

    This runs before ``-m`` deselects anything, so ``-m "not broker"`` sees the marks.
    """
    for item in items:
        if _BROKER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.broker)


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[RabbitMQNode | None]:
    """The session's throwaway RabbitMQ node, or None when ``$AMQP_URL`` is set."""
    if _external_url() is not None:
        yield None
        return
    # Start failures raise (RabbitMQNotInstalledError, RabbitMQStartError): an error, not a skip.
    with RabbitMQNode() as node:
        yield node


@pytest.fixture(scope="session")
def amqp_url(rabbitmq: RabbitMQNode | None) -> str:
    """The URL of the broker under test (``$AMQP_URL`` or the throwaway node)."""
    if rabbitmq is None:
        url = _external_url()
        assert url is not None
        return url
    return rabbitmq.url


@pytest.fixture(autouse=True)
def _broker_for_marked_tests(request: pytest.FixtureRequest) -> None:
    # A test marked `broker` by hand gets the broker started even if it takes no fixture, so
    # that it can never pass (or be skipped) for want of one.
    if request.node.get_closest_marker("broker") is not None:
        request.getfixturevalue("amqp_url")
