"""Group commit: batches submitted at once share one write, and each gets its own outcome."""

from __future__ import annotations

import asyncio
import threading

import pytest

from the_eye.queue.group_commit import GroupCommit, ThreadGroupCommit


class Refused(Exception):
    pass


def test_batches_submitted_together_share_one_write_and_get_their_own_outcomes():
    groups: list[list[list[int]]] = []

    async def write_group(batches: list[list[int]]) -> list[Exception | None]:
        groups.append(batches)
        return [Refused(batch) if 0 in batch else None for batch in batches]

    async def submit_at_once() -> list:
        group = GroupCommit(write_group)
        batches = [[1], [0, 2], [3, 4]]
        return await asyncio.gather(*map(group.submit, batches), return_exceptions=True)

    outcomes = asyncio.run(submit_at_once())
    assert groups == [[[1], [0, 2], [3, 4]]]
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], Refused)


def test_batches_that_arrive_during_a_write_go_together_in_the_next():
    groups: list[list[list[int]]] = []

    async def write_group(batches: list[list[int]]) -> list[Exception | None]:
        groups.append(batches)
        await asyncio.sleep(0.01)
        return [None] * len(batches)

    async def scenario() -> None:
        group = GroupCommit(write_group)
        first = asyncio.create_task(group.submit([1]))
        await asyncio.sleep(0)  # the first write is now in flight
        await asyncio.gather(first, group.submit([2]), group.submit([3]))

    asyncio.run(scenario())
    assert groups == [[[1]], [[2], [3]]]


def test_a_write_that_raises_fails_every_batch_of_its_group_and_not_the_next():
    calls = []

    async def write_group(batches: list[list[int]]) -> list[Exception | None]:
        calls.append(batches)
        if len(calls) == 1:
            raise Refused("down")
        return [None] * len(batches)

    async def scenario() -> list:
        group = GroupCommit(write_group)
        failed = await asyncio.gather(group.submit([1]), group.submit([2]), return_exceptions=True)
        await group.submit([3])
        return failed

    failed = asyncio.run(scenario())
    assert [type(f) for f in failed] == [Refused, Refused]
    assert calls[-1] == [[3]]


def test_a_thread_group_commit_writes_all_items_at_once_off_the_event_loop():
    written: list[tuple[list[int], str]] = []

    def write(items: list[int]) -> None:
        written.append((items, threading.current_thread().name))

    group = ThreadGroupCommit(write, name="test-writer")

    async def submit_at_once() -> None:
        await asyncio.gather(group.submit([1, 2]), group.submit([3]))

    try:
        asyncio.run(submit_at_once())
    finally:
        group.close()
    assert [items for items, _ in written] == [[1, 2, 3]]
    assert written[0][1].startswith("test-writer")


def test_a_thread_group_commit_writes_on_the_loop_when_write_now_can():
    on_loop: list[list[int]] = []

    def write(items: list[int]) -> None:
        raise AssertionError("the writer thread should not be used")

    def write_now(items: list[int]) -> bool:
        on_loop.append(items)
        return True

    group = ThreadGroupCommit(write, write_now=write_now)
    try:
        asyncio.run(group.submit([7]))
    finally:
        group.close()
    assert on_loop == [[7]]


def test_a_failed_write_reaches_its_submitter():
    def write(items: list[int]) -> None:
        raise Refused("disk full")

    group = ThreadGroupCommit(write)
    try:
        with pytest.raises(Refused, match="disk full"):
            asyncio.run(group.submit([1]))
    finally:
        group.close()
