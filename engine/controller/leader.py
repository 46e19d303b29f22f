"""Leader election on a coordination.k8s.io/v1 Lease, as Kubernetes controllers do it.

Used by `main` when `--leader-elect` is on: every replica watches the
management cluster and keeps its cache warm, but only the leader's work queue
runs. The rules are client-go's:

* a candidate takes the Lease when nobody holds it, or when the holder has not
  renewed it for `leaseDurationSeconds` *as observed locally* (the time we
  last saw the record change, not the renewTime written in it, so clocks that
  disagree between machines cannot steal a live lease);
* the leader renews every `retry_period`; if it cannot renew for
  `renew_deadline` it stops leading (the process exits, and a restarted pod
  becomes a candidate again: nothing half-led survives);
* on SIGTERM the leader releases the Lease (empty holder, duration 1 s), so a
  standby takes over on its next try instead of waiting out the lease.

Every write carries the resourceVersion it read, so two candidates racing for
an expired lease cannot both win: the loser gets 409 Conflict.

`LeaseView` is the decision on plain data (unit-tested without a cluster);
`Elector` does the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.adapters import kube

log = logging.getLogger("flotilla.leader")
LEASE_API = "coordination.k8s.io/v1"


@dataclass(frozen=True)
class Timings:
    """Seconds. client-go's defaults for controllers: 15 / 10 / 2."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def check(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("leader election needs retry-period < renew-deadline < "
                             f"lease-duration (got {self.retry_period} / "
                             f"{self.renew_deadline} / {self.lease_duration})")


@dataclass
class LeaseView:
    """What one candidate knows about the Lease: the record and when it last changed."""

    identity: str
    record: dict[str, Any] = field(default_factory=dict)  # the Lease's spec as last read
    observed_at: float = 0.0  # monotonic time the record was last seen to change

    def observe(self, spec: dict[str, Any], now: float) -> None:
        if spec != self.record:
            self.record, self.observed_at = dict(spec), now

    @property
    def holder(self) -> str:
        return str(self.record.get("holderIdentity") or "")

    def held_by_other(self, now: float) -> bool:
        """Someone else holds the lease and it has not expired by our own clock."""
        if not self.holder or self.holder == self.identity:
            return False
        duration = float(self.record.get("leaseDurationSeconds") or 0)
        return now < self.observed_at + duration

    def claim(self, duration: float, wall: datetime) -> dict[str, Any]:
        """The spec to write to acquire or renew."""
        stamp = wall.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        spec = dict(self.record)
        if self.holder != self.identity:
            spec["acquireTime"] = stamp
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (
                1 if self.holder else 0)
        spec.update(holderIdentity=self.identity, leaseDurationSeconds=max(1, round(duration)),
                    renewTime=stamp)
        return spec

    def released(self, wall: datetime) -> dict[str, Any]:
        """The spec a leader writes on shutdown: nobody holds it, expiring in 1 s."""
        stamp = wall.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return {**self.record, "holderIdentity": None, "leaseDurationSeconds": 1,
                "renewTime": stamp}


class Elector:
    """Campaign for one Lease; call `on_started` once leading, `on_lost` if leadership ends."""

    def __init__(self, client: kube.Client, *, namespace: str, name: str, identity: str,
                 timings: Timings, on_started: Callable[[], Awaitable[None]],
                 on_lost: Callable[[], None]) -> None:
        timings.check()
        self.client, self.namespace, self.name = client, namespace, name
        self.timings = timings
        self.view = LeaseView(identity)
        self.on_started, self.on_lost = on_started, on_lost
        self.leading = False
        self._resource_version = ""

    async def run(self) -> None:
        last_renew, reported = 0.0, ""
        while True:
            now = time.monotonic()
            try:
                ok = await self._try()
            except (kube.ApiError, kube.Unreachable) as exc:
                log.warning("lease %s/%s: %s", self.namespace, self.name, exc.reason)
                ok = False
            if ok:
                last_renew = now
                if not self.leading:
                    self.leading = True
                    log.info("leading: acquired lease %s/%s as %s", self.namespace, self.name,
                             self.view.identity)
                    await self.on_started()
            elif not self.leading and self.view.holder != reported:
                reported = self.view.holder
                log.info("standing by: lease %s/%s is held by %s", self.namespace, self.name,
                         reported or "nobody")
            elif self.leading and now - last_renew > self.timings.renew_deadline:
                self.leading = False
                log.error("lost lease %s/%s: not renewed for %.0fs", self.namespace, self.name,
                          self.timings.renew_deadline)
                self.on_lost()
                return
            await asyncio.sleep(self.timings.retry_period)

    async def _try(self) -> bool:
        lease = await self.client.get(LEASE_API, "Lease", self.namespace, self.name)
        now = time.monotonic()
        wall = datetime.now(UTC)
        if lease is None:
            self.view.observe({}, now)
            body = {"apiVersion": LEASE_API, "kind": "Lease",
                    "metadata": {"namespace": self.namespace, "name": self.name},
                    "spec": self.view.claim(self.timings.lease_duration, wall)}
            try:
                created = await self.client.create(body)
            except kube.ApiError as exc:
                if exc.status == 409:
                    return False  # another candidate created it first
                raise
            self._remember(created, now)
            return True
        self._remember(lease, now)
        if self.view.held_by_other(now):
            return False
        spec = self.view.claim(self.timings.lease_duration, wall)
        return await self._write(spec, now)

    async def _write(self, spec: dict[str, Any], now: float) -> bool:
        patch = {"metadata": {"resourceVersion": self._resource_version}, "spec": spec}
        try:
            written = await self.client.patch(LEASE_API, "Lease", self.namespace, self.name,
                                              patch)
        except kube.ApiError as exc:
            if exc.status == 409:
                return False  # someone wrote in between; look again next round
            raise
        self._remember(written, now)
        return True

    def _remember(self, lease: dict[str, Any], now: float) -> None:
        self._resource_version = str(lease.get("metadata", {}).get("resourceVersion", ""))
        self.view.observe(lease.get("spec") or {}, now)

    async def release(self) -> None:
        """Give the lease up at once (shutdown), so a standby need not wait it out."""
        if not self.leading:
            return
        self.leading = False
        with contextlib.suppress(kube.ApiError, kube.Unreachable):
            await self._write(self.view.released(datetime.now(UTC)), time.monotonic())
            log.info("released lease %s/%s", self.namespace, self.name)
