"""Make a long helm operation visible while it runs: what it waits for, and what held it.

Used by the Helm deployer. Helm can hold an install or upgrade for many
minutes — it waits for hook Jobs even without `wait` — and until it returns
the summary would say nothing. A `Reporter` runs beside the helm call (never
blocking it): a few seconds in, and then every `interval`, it lists the Jobs
of the release namespace on the workload cluster, picks the Helm hook Jobs
(annotation `helm.sh/hook`) and publishes one line into the release's
service row, e.g. `helm install running 45s, waiting for hook Job
cert-manager-startupapicheck (post-install)`. The line changes only when the
hooks do or the coarse clock ticks (15 s steps, then whole minutes), and an
unchanged line is not written. When helm fails, `failure_detail()` names the
hook Job that held it, since helm's own message often does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from engine import errors

log = logging.getLogger("flotilla.deployers")
HOOK_ANNOTATION = "helm.sh/hook"
FIRST_AFTER = 3.0  # a quick helm call writes nothing at all
INTERVAL = 10.0

ListJobs = Callable[[], Awaitable[list[dict[str, Any]]]]
Publish = Callable[[str], Awaitable[None]]


@dataclasses.dataclass(frozen=True, slots=True)
class HookJob:
    name: str
    hook: str  # the annotation's value: post-install, pre-upgrade, ...
    state: str  # Running, Complete or Failed

    @classmethod
    def from_job(cls, job: Mapping[str, Any]) -> HookJob | None:
        meta = job.get("metadata") or {}
        hook = (meta.get("annotations") or {}).get(HOOK_ANNOTATION)
        if not hook:
            return None
        state = "Running"
        for cond in (job.get("status") or {}).get("conditions") or []:
            if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
                state = str(cond["type"])
        return cls(name=str(meta.get("name", "")), hook=str(hook), state=state)


def hook_jobs(jobs: Sequence[Mapping[str, Any]]) -> list[HookJob]:
    found = (HookJob.from_job(job) for job in jobs)
    return sorted((j for j in found if j is not None), key=lambda j: j.name)


def elapsed_text(seconds: float) -> str:
    """Coarse on purpose, so that the message (and a status write) changes rarely."""
    if seconds < 60:
        return f"{int(seconds // 15) * 15}s"
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60}m" if minutes >= 60 else f"{minutes}m"


def describe(verb: str, seconds: float, jobs: Sequence[HookJob]) -> str:
    """`helm install running 45s, waiting for hook Job x (post-install)`."""
    line = f"helm {verb} running {elapsed_text(seconds)}"
    waiting = [j for j in jobs if j.state == "Running"]
    failed = [j for j in jobs if j.state == "Failed"]
    if waiting:
        line += ", waiting for " + ", ".join(f"hook Job {j.name} ({j.hook})" for j in waiting)
    if failed:
        line += ", " + ", ".join(f"hook Job {j.name} ({j.hook}) failed" for j in failed)
    return line


class Reporter:
    """Publishes what a running helm call waits for, until `stop()`.

    Without `publish` (a drift correction has no row to show it in) nothing runs
    beside helm; `failure_detail()` still names the hook Job that failed.
    """

    def __init__(self, list_jobs: ListJobs, publish: Publish | None, *,
                 first_after: float = FIRST_AFTER, interval: float = INTERVAL) -> None:
        self.list_jobs, self.publish = list_jobs, publish
        self.first_after, self.interval = first_after, interval
        self.verb = "operation"
        self.jobs: list[HookJob] = []
        self._started = time.monotonic()
        self._last = ""
        self._task: asyncio.Task[None] | None = None

    def start(self, verb: str) -> None:
        """Called just before helm starts (`Releases.install_or_upgrade`'s on_start)."""
        self.verb, self._started = verb, time.monotonic()
        if self._task is None and self.publish is not None:
            self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        await asyncio.sleep(self.first_after)
        while True:
            await self._tick()
            await asyncio.sleep(self.interval)

    async def _tick(self) -> None:
        try:
            self.jobs = hook_jobs(await self.list_jobs())
        except errors.FlotillaError as exc:  # the workload read is best effort
            log.debug("listing hook Jobs: %s", exc)
        line = describe(self.verb, time.monotonic() - self._started, self.jobs)
        if line != self._last and self.publish is not None:
            self._last = line
            await self.publish(line)

    async def failure_detail(self) -> str:
        """The hook Jobs that did not complete, read once more now that helm gave up."""
        with contextlib.suppress(errors.FlotillaError):
            self.jobs = hook_jobs(await self.list_jobs())
        stuck = [j for j in self.jobs if j.state != "Complete"]
        return "; ".join(f"hook Job {j.name} ({j.hook}) {j.state.lower()}" for j in stuck)
