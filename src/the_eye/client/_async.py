"""`AsyncEyeClient`: the same client for asyncio applications, never blocking their loop."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from the_eye.client._client import ClientStats, EyeClient


class AsyncEyeClient:
    """`EyeClient` for asyncio: `await track(...)`, `await flush()`, `await aclose()`.

    It shares `EyeClient`'s batching thread and transport rather than speaking HTTP on the
    event loop: queueing an event takes a lock held only for an append, never during I/O, so
    `track` does not block the loop; `flush`, `aclose` and sync-mode sends wait in a worker
    thread (`asyncio.to_thread`). One tested HTTP path, retry policy, exit flush and fork
    handling serve both clients, with no hand-written HTTP parser and no third-party package.
    """

    def __init__(self, write_key: str, host: str = "http://127.0.0.1:8000", **options: Any):
        self._client = EyeClient(write_key, host, **options)

    async def track(
        self,
        session_id: str,
        category: str,
        name: str,
        data: dict[str, Any],
        timestamp: datetime | str | None = None,
        event_id: str | None = None,
    ) -> str:
        """Queue (or, in sync mode, send) one event; its event id."""
        args = (session_id, category, name, data, timestamp, event_id)
        if self._client.sync_mode:
            return await asyncio.to_thread(self._client.track, *args)
        return self._client.track(*args)

    async def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued so far and wait for it; True once sent or given up on."""
        return await asyncio.to_thread(self._client.flush, timeout)

    async def aclose(self, timeout: float | None = None) -> bool:
        """Flush, then stop sending; True when nothing was left unsent."""
        return await asyncio.to_thread(self._client.shutdown, timeout)

    def stats(self) -> ClientStats:
        """Counts of what this client did in this process."""
        return self._client.stats()

    @property
    def dropped(self) -> int:
        """Events dropped because the queue was full (or the client shut down)."""
        return self._client.dropped

    async def __aenter__(self) -> AsyncEyeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
