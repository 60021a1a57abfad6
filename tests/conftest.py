"""Shared fixtures."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from tests.http_registry import Registry, serving_registry


@pytest.fixture
def prefix() -> str:
    """A name prefix no other test (or earlier run) uses, for queues, topics and roles."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    """A local runtime registry that records the alive pings it gets."""
    async with serving_registry() as registry:
        yield registry
