"""The controller's work queue: de-duplication, per-key serialisation, delayed requeues."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

from engine.controller.queue import WorkQueue


async def _run_for(queue: WorkQueue, seconds: float) -> None:
    task = asyncio.create_task(queue.run())
    await asyncio.sleep(seconds)
    task.cancel()


class TestWorkQueue:
    """Keys coalesce, never run concurrently with themselves, and requeue once."""

    def test_bursts_coalesce(self) -> None:
        runs: list[Hashable] = []

        async def reconcile(key: Hashable) -> float | None:
            runs.append(key)
            return None

        async def main() -> None:
            queue = WorkQueue(reconcile, workers=4)
            for _ in range(10):
                queue.add("a")
            queue.add("b")
            await _run_for(queue, 0.1)

        asyncio.run(main())
        assert sorted(runs) == ["a", "b"]

    def test_a_key_never_runs_twice_at_once_and_changes_are_not_lost(self) -> None:
        active: set[Hashable] = set()
        overlaps: list[Hashable] = []
        runs: list[Hashable] = []

        async def reconcile(key: Hashable) -> float | None:
            if key in active:
                overlaps.append(key)
            active.add(key)
            runs.append(key)
            await asyncio.sleep(0.05)
            active.discard(key)
            return None

        async def main() -> None:
            queue = WorkQueue(reconcile, workers=4)
            queue.add("a")
            await asyncio.sleep(0)
            task = asyncio.create_task(queue.run())
            await asyncio.sleep(0.01)
            queue.add("a")  # arrives while "a" runs: one more run afterwards
            queue.add("a")
            await asyncio.sleep(0.2)
            task.cancel()

        asyncio.run(main())
        assert overlaps == [] and runs == ["a", "a"]

    def test_delayed_requeues_keep_only_the_earliest(self) -> None:
        runs: list[Hashable] = []

        async def reconcile(key: Hashable) -> float | None:
            runs.append(key)
            return None

        async def main() -> None:
            queue = WorkQueue(reconcile, workers=2)
            queue.add("probe", after=0.05)
            queue.add("probe", after=0.1)  # a second chain must not start
            queue.add("probe", after=0.02)  # an earlier request wins
            await _run_for(queue, 0.3)

        asyncio.run(main())
        assert runs == ["probe"]

    def test_crash_is_retried(self) -> None:
        attempts: list[int] = []

        async def reconcile(key: Hashable) -> float | None:
            attempts.append(1)
            raise RuntimeError("boom")

        async def main() -> None:
            queue = WorkQueue(reconcile, workers=1)
            queue.add("x")
            await _run_for(queue, 0.1)
            assert queue.pending() == 1  # rescheduled, not dropped

        asyncio.run(main())
        assert len(attempts) == 1
