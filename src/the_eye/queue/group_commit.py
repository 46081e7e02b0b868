"""Group commit: concurrent requests share one durable write instead of paying one each."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")

# Writes the batches of one group together and says how each fared: None once it is
# written, or the exception its submitter gets. Raising fails every batch of the group.
WriteGroup = Callable[[list[list[T]]], Awaitable[list[Exception | None]]]


class GroupCommit(Generic[T]):
    """Collects batches from many coroutines and hands them to one write together.

    While one write is in flight, new batches wait; the next write takes all of them.
    Under load the group grows by itself, and an idle system writes at once.
    """

    def __init__(self, write_group: WriteGroup[T]) -> None:
        self._write_group = write_group
        self._pending: list[tuple[list[T], asyncio.Future[None]]] = []
        self._running = False
        self._task: asyncio.Task[None] | None = None

    async def submit(self, batch: list[T]) -> None:
        """Return once `batch` is written; raise what its write raised."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((batch, future))
        if not self._running:
            self._running = True
            self._task = loop.create_task(self._drain())
        await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                group, self._pending = self._pending, []
                try:
                    outcomes = await self._write_group([batch for batch, _ in group])
                except Exception as exc:
                    outcomes = [exc] * len(group)
                for (_, future), outcome in zip(group, outcomes, strict=True):
                    if future.done():
                        continue
                    if outcome is None:
                        future.set_result(None)
                    else:
                        future.set_exception(outcome)
        finally:
            self._running = False

    def close(self) -> None:
        """Release what the writes hold."""


class ThreadGroupCommit(GroupCommit[T]):
    """Group commit for a blocking driver: each group is one write of all its items, on a
    thread of its own, and succeeds or fails whole.

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
        super().__init__(self._write_all)
        self._write = write
        self._write_now = write_now
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def _write_all(self, batches: list[list[T]]) -> list[Exception | None]:
        items = [item for batch in batches for item in batch]
        if self._write_now is None or not self._write_now(items):
            await asyncio.get_running_loop().run_in_executor(self._executor, self._write, items)
        return [None] * len(batches)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
