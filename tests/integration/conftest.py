"""Fixtures of the RabbitMQ tests: a private vhost per module, a checker, unique names."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from tests.integration.amqp_helpers import Rabbit, private_vhost


@pytest.fixture(scope="module")
def vhost() -> Iterator[str]:
    with private_vhost() as name:
        yield name


@pytest.fixture
async def rabbit(vhost: str) -> AsyncIterator[Rabbit]:
    checker = Rabbit(vhost)
    yield checker
    await checker.close()


@pytest.fixture
def name() -> Callable[[str], str]:
    prefix = uuid.uuid4().hex[:8]
    return lambda suffix: f"{prefix}.{suffix}"
