"""Fixtures for the adapter tests: a loop driver per adapter, and test-time certificates."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trustme

from tests.adapters.loops import DRIVER_NAMES, LoopDriver, make_driver


@pytest.fixture(params=DRIVER_NAMES)
def driver(request: pytest.FixtureRequest) -> Iterator[LoopDriver]:
    the_driver = make_driver(request.param)
    yield the_driver
    the_driver.close()


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A certificate authority made for this test session."""
    return trustme.CA()


@pytest.fixture(scope="session")
def server_cert(ca: trustme.CA) -> trustme.LeafCert:
    """A server certificate for localhost and 127.0.0.1, signed by :func:`ca`."""
    return ca.issue_cert("localhost", "127.0.0.1")
