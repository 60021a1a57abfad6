"""Shared fixtures."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def prefix() -> str:
    """A name prefix no other test (or earlier run) uses, for queues, topics and roles."""
    return f"t{uuid.uuid4().hex[:10]}"
