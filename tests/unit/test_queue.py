"""The controller's work queue: de-duplication, per-key serialisation, delayed requeues."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable

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


class TestFairness:
    """Ready keys take turns between owners: a big owner cannot starve a small one."""

    @staticmethod
    def _order(keys: list[tuple[str, int]], owner: Callable[[Hashable], Hashable] | None,
               ) -> list[Hashable]:
        runs: list[Hashable] = []

        async def reconcile(key: Hashable) -> float | None:
            runs.append(key)
            return None

        async def main() -> None:
            queue = (WorkQueue(reconcile, workers=1) if owner is None
                     else WorkQueue(reconcile, workers=1, owner=owner))
            for key in keys:
                queue.add(key)
            task = asyncio.create_task(queue.run())
            while len(runs) < len(keys):
                await asyncio.sleep(0.001)
            task.cancel()

        asyncio.run(main())
        return runs

    def test_a_small_profile_runs_between_a_big_ones_keys(self) -> None:
        big = [("big", i) for i in range(1000)]
        small = [("small", i) for i in range(3)]
        runs = self._order(big + small, owner=lambda key: key[0])  # type: ignore[index]
        # Each owner gets one turn per round: the small profile is done by the 6th run.
        assert [runs.index(k) for k in small] == [1, 3, 5]
        # Within an owner, keys keep the order they became ready in.
        assert [k for k in runs if k[0] == "big"] == big  # type: ignore[index]

    def test_without_owners_it_is_first_in_first_out(self) -> None:
        keys = [("big", i) for i in range(20)] + [("small", 0)]
        assert self._order(keys, owner=None) == keys  # the small one waits its turn at the end

    def test_three_owners_take_turns(self) -> None:
        keys = [("a", i) for i in range(3)] + [("b", 0)] + [("c", i) for i in range(2)]
        runs = self._order(keys, owner=lambda key: key[0])  # type: ignore[index]
        assert runs == [("a", 0), ("b", 0), ("c", 0), ("a", 1), ("c", 1), ("a", 2)]
