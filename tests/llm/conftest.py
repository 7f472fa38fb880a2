"""Fixtures of the LLM layer's tests; the fake endpoint itself is in llm_fakes.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from llm_fakes import FakeEndpoint


@pytest.fixture
def fake_endpoint() -> Iterator[Callable[..., FakeEndpoint]]:
    """Factory: `fake_endpoint(plan=..., upstream=..., api_key=...)`, stopped after the test."""
    started: list[FakeEndpoint] = []

    def start(**kwargs: object) -> FakeEndpoint:
        server = FakeEndpoint(**kwargs).__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__()
