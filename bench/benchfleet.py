"""A fleet of 10 api-only workload clusters with the controller, for profile benchmarks.

Used by bench/drift_idle.py and bench/rollout_waves.py: the setup that
bench/label_to_ready.py does (fleet.up, admin.install, every cluster
registered in namespace `fleet` without labels, the controller as a child
process), plus the async clients and waits those scripts share. `running`
is a context manager whose exit stops the controller and the fleet and
removes the temp folder, also on Ctrl-C and SIGTERM (`bl.exit_on_sigterm`);
on an error the controller's log is kept in /tmp.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import benchkube as bk
import benchlib as bl

from engine import api, errors
from engine.adapters import kube, kubeconfig
from engine.cli import admin
from engine.devfleet import fleet

Obj = dict[str, Any]
FLEET_NS = "fleet"
LABEL = "bench"
WORKLOAD_CLUSTERS = 10
FIELD_MANAGER = "flotilla-bench"


@dataclass
class Stack:
    """A started fleet (CRDs, catalog, registered clusters) and the controller, not yet started."""

    script: str
    work: Path
    fleet: fleet.Fleet
    controller: bk.Controller

    def start_controller(self) -> None:
        self.controller.start()
        bl.note(f"controller pid {self.controller.pid}, log {self.controller.log}")


@contextlib.contextmanager
def running(script: str, prefix: str, clusters: int = WORKLOAD_CLUSTERS) -> Iterator[Stack]:
    """fleet.up + install + register; everything is stopped on the way out."""
    work = bl.temp_dir(prefix)
    fleet_dir = work / "fleet"
    controller: bk.Controller | None = None
    try:
        bl.heading(f"setup: 1 management + {clusters} api-only workload clusters")
        watch = bl.Stopwatch()
        started = fleet.up(fleet_dir, fleet.Options(clusters=clusters, full=0))
        bl.note(f"fleet up in {bl.seconds(watch.elapsed())} ({fleet_dir})")
        mgmt_kc = started.management.kubeconfig
        admin.install(mgmt_kc, crds=bl.ROOT / "crds", catalog=bl.ROOT / "catalog")
        for cluster in started.clusters:
            admin.register(mgmt_kc, namespace=FLEET_NS, name=cluster.name,
                           cluster_kubeconfig=cluster.kubeconfig, labels={})
        bl.note(f"CRDs + catalog installed, {len(started.clusters)} clusters registered")
        controller = bk.Controller(mgmt_kc, work, {})
        yield Stack(script=script, work=work, fleet=started, controller=controller)
    except Exception:
        if controller is not None and controller.log.exists():
            kept = bl.TMP / f"flotilla-bench-controller-{time.strftime('%Y%m%d-%H%M%S')}.log"
            with contextlib.suppress(OSError):
                kept.write_bytes(controller.log.read_bytes())
                print(f"{script}: the controller's log is kept in {kept}", file=sys.stderr)
        raise
    finally:
        with bl.shielded():
            if controller is not None:
                controller.stop()
            fleet.down(fleet_dir)
            bl.remove_tree(work)


class Session:
    """Async clients to the management and workload clusters, and the waits the scripts share."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.controller = stack.controller
        self.mgmt = kube.Client(kubeconfig.load(stack.fleet.management.kubeconfig),
                                name="management")
        self.workload = {c.name: kube.Client(kubeconfig.load(c.kubeconfig), name=c.name)
                         for c in stack.fleet.clusters}

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, stack: Stack) -> AsyncIterator[Session]:
        session = cls(stack)
        try:
            yield session
        finally:
            for client in [session.mgmt, *session.workload.values()]:
                await client.close()

    @property
    def cluster_names(self) -> list[str]:
        return sorted(self.workload, key=lambda c: int(c.rsplit("-", 1)[1]))

    async def wait_for(self, probe: Callable[[], Awaitable[Any]], what: str, timeout: float,
                       interval: float = 0.2,
                       diagnose: Callable[[], Awaitable[str]] | None = None) -> Any:
        """Poll an async probe until truthy; on timeout raise naming `what` and what was seen."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            self.controller.check_alive()
            try:
                last = await probe()
            except errors.FlotillaError as exc:
                last = exc
            if last and not isinstance(last, Exception):
                return last
            if time.monotonic() > deadline:
                extra = await diagnose() if diagnose else ""
                raise bl.BenchError(f"timed out after {timeout:g} s waiting for {what}; "
                                    f"last seen: {last!r}{extra}")
            await asyncio.sleep(interval)

    async def wait_tracker(self, tracker: bk.Tracker, timeout: float,
                           diagnose: Callable[[], Awaitable[str]] | None = None) -> float:
        """Wait until a running Tracker's predicate holds; returns the monotonic time it did."""
        deadline = time.monotonic() + timeout
        while not tracker.done.is_set():
            self.controller.check_alive()
            if time.monotonic() > deadline:
                extra = await diagnose() if diagnose else ""
                error = f" (watch error: {tracker.last_error})" if tracker.last_error else ""
                raise bl.BenchError(f"timed out after {timeout:g} s waiting for "
                                    f"{tracker.what}{error}{extra}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tracker.done.wait(), timeout=0.5)
        assert tracker.done_at is not None
        return tracker.done_at

    async def clusters_ready(self) -> None:
        async def probe() -> bool:
            items = await self.mgmt.list(api.API_VERSION, "WorkloadCluster", namespace=FLEET_NS)
            ready = [c for c in items if (c.get("status") or {}).get("ready") is True]
            return len(items) == len(self.workload) and len(ready) == len(items)

        async def diagnose() -> str:
            items = await self.mgmt.list(api.API_VERSION, "WorkloadCluster", namespace=FLEET_NS)
            states = [f"{c['metadata']['name']}={(c.get('status') or {}).get('ready')}"
                      for c in items]
            return f"\nWorkloadCluster ready: {' '.join(states)}\n{self.controller.tail()}"

        await self.wait_for(probe, "every WorkloadCluster to report status.ready", 120,
                            interval=0.5, diagnose=diagnose)

    async def label_all(self, on: bool = True) -> None:
        patch = {"metadata": {"labels": {LABEL: "on" if on else None}}}
        await asyncio.gather(*(self.mgmt.patch(api.API_VERSION, "WorkloadCluster", FLEET_NS, n,
                                               patch)
                               for n in self.workload))

    async def apply(self, obj: Obj) -> Obj:
        return await self.mgmt.apply(obj, field_manager=FIELD_MANAGER)

    async def profile(self, name: str) -> Obj:
        return await self.mgmt.get(api.API_VERSION, "ClusterProfile", None, name) or {}

    async def summaries(self, name: str) -> dict[str, Obj]:
        """The profile's ClusterSummaries by cluster name."""
        items = await self.mgmt.list(api.API_VERSION, "ClusterSummary", namespace=FLEET_NS,
                                     label_selector=f"{api.PROFILE_NAME_LABEL}={name}")
        return {s["spec"]["clusterRef"]["name"]: s for s in items}

    async def diagnose(self, name: str) -> str:
        """Profile status, each ClusterSummary's phase and the controller's last lines."""
        try:
            st = (await self.profile(name)).get("status") or {}
            lines = [f"\nprofile {name}: phase={st.get('phase')} matched={st.get('matched')} "
                     f"ready={st.get('ready')} failed={st.get('failed')} "
                     f"drifted={st.get('drifted')} rollout={st.get('rollout')}"]
            for cond in st.get("conditions") or []:
                if cond.get("type") in ("Ready", "Degraded") and cond.get("message"):
                    lines.append(f"  {cond['type']}: {cond['message']}")
            for cluster, s in sorted((await self.summaries(name)).items()):
                sst = s.get("status") or {}
                lines.append(f"  summary {cluster}: revision {s['spec'].get('revision')}/"
                             f"{sst.get('revision')} phase={sst.get('phase')} "
                             f"healthy={sst.get('healthy')} drift={len(sst.get('drift') or [])}"
                             f" {sst.get('message', '')}")
        except errors.FlotillaError as exc:
            lines = [f"\n(could not read status: {exc})"]
        lines.append(f"controller log (last lines of {self.controller.log}):\n"
                     f"{self.controller.tail()}")
        return "\n".join(lines)

    async def wait_profile_ready(self, name: str, n: int, timeout: float) -> None:
        async def probe() -> bool:
            st = (await self.profile(name)).get("status") or {}
            return st.get("matched") == n and st.get("ready") == n

        await self.wait_for(probe, f"profile {name}: status.ready == matched == {n}", timeout,
                            diagnose=lambda: self.diagnose(name))

    async def delete_profile(self, name: str, timeout: float = 120) -> None:
        await self.mgmt.delete(api.API_VERSION, "ClusterProfile", None, name)

        async def gone() -> bool:
            return await self.mgmt.get(api.API_VERSION, "ClusterProfile", None, name) is None

        await self.wait_for(gone, f"profile {name} to be deleted (finalizer)", timeout,
                            diagnose=lambda: self.diagnose(name))


@contextlib.asynccontextmanager
async def tracking(*trackers: bk.Tracker, timeout: float = 30) -> AsyncIterator[None]:
    """Run trackers as tasks; returns once each has listed; cancels them on the way out."""
    tasks = [asyncio.create_task(t.run()) for t in trackers]
    try:
        deadline = time.monotonic() + timeout
        while not all(t.listed.is_set() for t in trackers):
            if time.monotonic() > deadline:
                waiting = ", ".join(t.what for t in trackers if not t.listed.is_set())
                raise bl.BenchError(f"watch streams not started after {timeout:g} s: {waiting}")
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # let the watch requests reach the servers
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
