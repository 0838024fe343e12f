"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fake_segment import FakeSegment


@pytest.fixture
def segment_server() -> Iterator[FakeSegment]:
    """A started local stand-in for Segment's Tracking API; see tests/fake_segment.py."""
    with FakeSegment() as server:
        yield server
