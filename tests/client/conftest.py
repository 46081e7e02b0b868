"""Clients of the SDK under test, shut down after each test so no sending thread outlives it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from the_eye.client import EyeClient, RetryPolicy

# Retries fast enough for a test, many enough to outlast a server restart.
FAST_RETRY = RetryPolicy(max_retries=1000, backoff=0.05, max_backoff=0.5)


@pytest.fixture
def make_client(server, creds) -> Iterator[Callable[..., EyeClient]]:
    """A factory of clients of the live server, sending with the application's write key."""
    clients: list[EyeClient] = []

    def make(write_key: str | None = None, host: str | None = None, **options) -> EyeClient:
        client = EyeClient(write_key or creds.write_key, host or server.url, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.shutdown(timeout=5)
