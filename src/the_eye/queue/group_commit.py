"""Group commit: concurrent requests share one durable write instead of paying one each."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")


class GroupCommit(Generic[T]):
    """Collects items from many coroutines and writes them together on one thread.

    While one write is in flight, new items wait; the next write takes all of them.
    Under load the batch grows by itself, and an idle system writes at once.

    `write_now`, when given, is tried first on the event loop's own thread: it must write
    at once or return False without waiting (a lock held elsewhere), and the group then
    goes to the writer thread, which may wait. A short write on the loop costs less than
    handing it to a thread and back.
    """

    def __init__(
        self,
        write: Callable[[list[T]], None],
        name: str = "group-commit",
        write_now: Callable[[list[T]], bool] | None = None,
    ) -> None:
        self._write = write
        self._write_now = write_now
        self._pending: list[tuple[list[T], asyncio.Future[None]]] = []
        self._running = False
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def submit(self, items: list[T]) -> None:
        """Return once `items` are written; raise what the write raised."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((items, future))
        if not self._running:
            self._running = True
            self._task = loop.create_task(self._drain(loop))
        await future

    async def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            while self._pending:
                group, self._pending = self._pending, []
                items = [item for batch, _ in group for item in batch]
                try:
                    if self._write_now is None or not self._write_now(items):
                        await loop.run_in_executor(self._executor, self._write, items)
                except Exception as exc:
                    for _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for _, future in group:
                        if not future.done():
                            future.set_result(None)
        finally:
            self._running = False

    def close(self) -> None:
        self._executor.shutdown(wait=True)
