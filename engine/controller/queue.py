"""A de-duplicating, per-key serialised work queue with delayed requeues.

Used by the controller: kopf handlers `add()` keys when something changes;
`run()` workers call the reconcile function for each key. A key is never
processed by two workers at once; adding a key that is being processed runs
it once more afterwards (changes are never lost, bursts coalesce). The
reconcile function returns seconds until it wants to run again, or None.

Ready keys wait in lanes, one per *owner* (the `owner` function: the
controller gives a summary its profile, see `context.Context.owner`), and
workers take turns between lanes: a profile with a thousand summaries ready
gets one turn in each round like a profile with one, so it cannot starve the
others. Within a lane keys run in the order they became ready.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Hashable

log = logging.getLogger("flotilla.queue")

Reconcile = Callable[[Hashable], Awaitable[float | None]]
Owner = Callable[[Hashable], Hashable]


def _one_lane(_: Hashable) -> Hashable:
    return None


class WorkQueue:
    def __init__(self, reconcile: Reconcile, *, workers: int = 8, name: str = "work",
                 owner: Owner = _one_lane) -> None:
        self._reconcile = reconcile
        self._workers = workers
        self.name = name
        self._owner = owner
        # One lane of ready keys per owner, and the owners with ready keys in turn order.
        self._lanes: dict[Hashable, collections.deque[Hashable]] = {}
        self._turns: collections.deque[Hashable] = collections.deque()
        # One token per ready key: a worker that gets one is sure to find a key.
        self._tokens: asyncio.Queue[None] = asyncio.Queue()
        self._queued: set[Hashable] = set()
        self._active: set[Hashable] = set()
        self._again: set[Hashable] = set()
        self._delayed: list[tuple[float, int, Hashable]] = []
        self._due: dict[Hashable, float] = {}  # the one pending delayed run per key
        self._counter = itertools.count()
        self._wake = asyncio.Event()

    def add(self, key: Hashable, *, after: float = 0.0) -> None:
        if after > 0:
            due = time.monotonic() + after
            # One pending delayed run per key, the earliest: "again within N seconds" twice
            # must not become two periodic chains (cluster probes ran twice as often).
            if key in self._due and self._due[key] <= due:
                return
            self._due[key] = due
            heapq.heappush(self._delayed, (due, next(self._counter), key))
            self._wake.set()
            return
        if key in self._active:
            self._again.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            owner = self._owner(key)
            lane = self._lanes.get(owner)
            if lane is None:
                lane = self._lanes[owner] = collections.deque()
                self._turns.append(owner)
            lane.append(key)
            self._tokens.put_nowait(None)

    def _take(self) -> Hashable:
        """The next ready key: the first of the lane whose turn it is; that lane goes last."""
        owner = self._turns.popleft()
        lane = self._lanes[owner]
        key = lane.popleft()
        if lane:
            self._turns.append(owner)
        else:
            del self._lanes[owner]
        return key

    def pending(self) -> int:
        return len(self._queued) + len(self._active) + len(self._due)

    async def _timers(self) -> None:
        while True:
            now = time.monotonic()
            while self._delayed and self._delayed[0][0] <= now:
                due, _, key = heapq.heappop(self._delayed)
                if self._due.get(key) != due:
                    continue  # superseded by an earlier request for the same key
                del self._due[key]
                self.add(key)
            timeout = self._delayed[0][0] - now if self._delayed else None
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _worker(self) -> None:
        while True:
            await self._tokens.get()
            key = self._take()
            self._queued.discard(key)
            self._active.add(key)
            try:
                after = await self._reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception:  # the reconciler reports its own errors; this is a last resort
                log.exception("%s: reconcile of %s crashed; retrying in 5s", self.name, key)
                after = 5.0
            finally:
                self._active.discard(key)
            if key in self._again:
                self._again.discard(key)
                self.add(key)
            elif after is not None:
                self.add(key, after=after)

    async def run(self) -> None:
        tasks = [asyncio.create_task(self._worker()) for _ in range(self._workers)]
        tasks.append(asyncio.create_task(self._timers()))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
