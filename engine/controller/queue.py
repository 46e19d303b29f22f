"""A de-duplicating, per-key serialised work queue with delayed requeues.

Used by the controller: kopf handlers `add()` keys when something changes;
`run()` workers call the reconcile function for each key. A key is never
processed by two workers at once; adding a key that is being processed runs
it once more afterwards (changes are never lost, bursts coalesce). The
reconcile function returns seconds until it wants to run again, or None.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Hashable

log = logging.getLogger("flotilla.queue")

Reconcile = Callable[[Hashable], Awaitable[float | None]]


class WorkQueue:
    def __init__(self, reconcile: Reconcile, *, workers: int = 8, name: str = "work") -> None:
        self._reconcile = reconcile
        self._workers = workers
        self.name = name
        self._ready: asyncio.Queue[Hashable] = asyncio.Queue()
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
            self._ready.put_nowait(key)

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
            key = await self._ready.get()
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
