"""One size of bench/scale.py: N virtual clusters on a lean fleet, every phase measured once.

Used by bench/scale.py (one `measure` per N). The phases, in order, each
timed from the watch of the profile's ClusterSummaries (`scalekit.Timeline`):

1. lean fleet up, CRDs + catalog, N WorkloadClusters registered K per lean
   API server (`engine.devfleet.virtual.register_virtual`), the controller
   started; **connect** = until every WorkloadCluster reports ready;
2. the benchmark profile (20 templated objects) created while nothing
   matches; **label-all → deployed**: the label is put on all N clusters
   (50 patches in flight), per cluster from its patch to its summary
   Provisioned, and in total; then every cluster's objects are checked;
3. **idle**: requests to management and to the workload servers per cluster
   per minute, writes, controller CPU % over `--idle` seconds;
4. **profile change → converged**: the policyRef points at a new ConfigMap
   (a new value in all 20 objects) until every summary is Provisioned at it;
5. **restart → idle**: the controller is restarted; the API servers'
   counters are read every few seconds until two intervals in a row show
   no write and at most the idle limit of requests;
6. **unlabel → withdrawn**: until every summary is gone;
7. optional: K shard controllers against one fresh controller, label-all →
   deployed again for each;
8. optional: the lean servers registered once more each with their admin
   kubeconfig ("real" clusters) and one chart deployed to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import benchkube as bk
import benchlib as bl
import scalefleet as sf
import scalekit as sk

from engine import api
from engine.adapters import kube, kubeconfig
from engine.devfleet.chartrepo import ChartRepo

PATCHES_IN_FLIGHT = 50


@dataclass
class Options:
    clusters: int
    per_server: int
    idle: float = 60.0
    settle: float = 10.0
    timeout: float = 900.0
    chart: bool = True
    shards: int = 1
    keep: Path | None = None  # copy controller logs (and cProfile output) here
    cprofile: bool = False  # run the controller under cProfile (bench/scale.py --cprofile)
    brief: bool = False  # connect, label-all and idle only (bench/scale.py --brief)


@dataclass
class Result:
    """Every figure of one size; None where the phase did not run."""

    clusters: int
    servers: int
    per_server: int
    fleet_up: float = 0.0
    register: float = 0.0
    connect: float = 0.0
    label_p50: float = 0.0
    label_p99: float = 0.0
    label_total: float = 0.0
    label_mgmt_writes: float = 0.0
    label_workload_per_cluster: float = 0.0
    label_top: str = ""
    verified: int = 0
    idle_mgmt_rpm: float = 0.0  # requests per cluster per minute
    idle_workload_rpm: float = 0.0
    idle_writes: float = 0.0
    idle_cpu_pct: float = 0.0
    idle_top: str = ""
    change_total: float = 0.0
    change_p50: float = 0.0
    change_mgmt_writes: float = 0.0
    change_workload_per_cluster: float = 0.0
    restart_idle: float | None = None
    restart_writes_mgmt: float = 0.0
    restart_writes_workload: float = 0.0
    restart_requests_per_cluster: float = 0.0
    withdraw_total: float = 0.0
    cpu_seconds: float = 0.0
    helm_cpu_seconds: float = 0.0
    rss_peak_kib: int = 0
    chart_servers: int = 0
    chart_total: float | None = None
    chart_p50: float | None = None
    shard_baseline_total: float | None = None  # one fresh controller, label-all again
    shard_label_total: float | None = None
    shard_label_p50: float | None = None
    shard_cpu_seconds: float | None = None
    shard_rss_peak_kib: int | None = None
    brief: bool = False  # only connect, label-all and idle ran
    load_start: str = ""
    load_end: str = ""
    notes: list[str] = field(default_factory=list)


class Run:
    """The fleet, clients and controller of one size, and its phases."""

    def __init__(self, opts: Options, work: Path, setup: sf.Setup) -> None:
        self.opts, self.work, self.setup = opts, work, setup
        self.n = opts.clusters
        self.mgmt = kube.Client(kubeconfig.load(setup.fleet.management.kubeconfig),
                                name="management")
        self.ctx = sk.ssl_context(setup.fleet.dir)
        self.controller = self._controller(work / "controller", ())
        self.timeline = sk.Timeline(self.mgmt, sk.PROFILE)
        self.first_cpu, self.first_rss = bl.CpuTimes(0, 0, 0, 0), 0  # before the restart
        self.result = Result(clusters=self.n, servers=len(setup.fleet.clusters),
                             per_server=opts.per_server, fleet_up=setup.fleet_up,
                             register=setup.register, load_start=bl.machine())

    def _controller(self, workdir: Path, extra: tuple[str, ...]) -> bk.Controller:
        workdir.mkdir(parents=True, exist_ok=True)
        ctl = bk.Controller(self.setup.fleet.management.kubeconfig, workdir, {}, extra=extra)
        if self.opts.cprofile:
            # python -m cProfile -o FILE -m engine.cli controller …: the file is written when
            # the controller exits on SIGTERM (`_next_profile` names one per start).
            ctl.argv[1:1] = ["-m", "cProfile", "-o", str(workdir / "controller-1.prof")]
        return ctl

    def _next_profile(self) -> None:
        """A restarted controller writes its own profile rather than over the first one."""
        if self.opts.cprofile:
            old = Path(self.controller.argv[4])
            number = int(old.stem.rsplit("-", 1)[1]) + 1
            self.controller.argv[4] = str(old.with_name(f"controller-{number}.prof"))

    # -- helpers ---------------------------------------------------------------------------

    def scrape(self) -> tuple[list[sk.Scrape], list[sk.Scrape]]:
        """(management, workload servers) counters, now."""
        urls = [c.url for c in self.setup.fleet.all]
        scrapes = sk.scrape_many(urls, self.ctx)
        return scrapes[:1], scrapes[1:]

    async def ascrape(self) -> tuple[list[sk.Scrape], list[sk.Scrape]]:
        return await asyncio.to_thread(self.scrape)

    async def label(self, names: list[tuple[str, str]], key: str, on: bool) -> dict[str, float]:
        """Label (or unlabel) WorkloadClusters, 50 in flight; returns when each patch returned."""
        gate = asyncio.Semaphore(PATCHES_IN_FLIGHT)
        done: dict[str, float] = {}
        patch = {"metadata": {"labels": {key: "on" if on else None}}}

        async def one(namespace: str, name: str) -> None:
            async with gate:
                for attempt in range(3):  # a loaded machine may time a request out
                    try:
                        await self.mgmt.patch(api.API_VERSION, api.WORKLOAD_CLUSTER, namespace,
                                              name, patch)
                        break
                    except kube.Unreachable:
                        if attempt == 2:
                            raise
                        await asyncio.sleep(1.0)
                done[name] = time.monotonic()

        await asyncio.gather(*(one(ns, name) for ns, name in names))
        return done

    async def wait_ready(self, names: set[str], timeout: float) -> None:
        async def probe() -> bool:
            items = await self.mgmt.list(api.API_VERSION, api.WORKLOAD_CLUSTER)
            ready = {c["metadata"]["name"] for c in items
                     if (c.get("status") or {}).get("ready") is True}
            return names <= ready

        await self.poll(probe, f"{len(names)} WorkloadClusters ready", timeout, interval=1.0)

    async def poll(self, probe: Callable[[], Awaitable[bool]], what: str, timeout: float,
                   interval: float = 0.5) -> None:
        deadline = time.monotonic() + timeout
        while not await probe():
            self.controller.check_alive()
            if time.monotonic() > deadline:
                raise bl.BenchError(f"timed out after {timeout:g} s waiting for {what}\n"
                                    f"{self.controller.tail()}")
            await asyncio.sleep(interval)

    async def profile_revision(self, name: str = sk.PROFILE) -> int:
        body = await self.mgmt.get(api.API_VERSION, api.CLUSTER_PROFILE, None, name) or {}
        return int((body.get("status") or {}).get("revision") or 0)

    async def wait_all(self, timeline: sk.Timeline, count: int, what: str) -> None:
        try:
            await timeline.wait(lambda: len(timeline.done_at) >= count, self.opts.timeout,
                                f"{what} ({len(timeline.done_at)}/{count} so far)",
                                self.controller.check_alive)
        except TimeoutError as exc:
            raise bl.BenchError(f"{exc}\n{self.controller.tail()}") from exc

    # -- phases ----------------------------------------------------------------------------

    async def connect(self) -> None:
        watch = bl.Stopwatch()
        self.controller.start()
        bl.note(f"controller pid {self.controller.pid}, log {self.controller.log}")
        await self.wait_ready({v.name for v in self.setup.virtual}, self.opts.timeout)
        self.result.connect = watch.elapsed()
        bl.note(f"all {self.n} WorkloadClusters ready {bl.seconds(self.result.connect)} "
                "after the controller started")

    async def create_profile(self) -> None:
        await self.mgmt.apply(sk.manifests_configmap("bench-scale-v1", "v1"),
                              field_manager="flotilla-bench")
        await self.mgmt.apply(sk.manifest_profile("bench-scale-v1"),
                              field_manager="flotilla-bench")
        await self.poll(lambda: self._revision_at_least(1), "the profile's first revision", 60)
        await asyncio.sleep(self.opts.settle)

    async def _revision_at_least(self, n: int) -> bool:
        return await self.profile_revision() >= n

    async def label_all(self) -> None:
        r = self.result
        self.timeline.reset(sk.deployed)
        before_cpu = bl.cpu_times(self.controller.pid)
        before = await self.ascrape()
        start = time.monotonic()
        labelled = await self.label(self.setup.names(), sk.LABEL, True)
        await self.wait_all(self.timeline, self.n, "every summary Provisioned")
        r.label_total = max(self.timeline.done_at.values()) - start
        latencies = [self.timeline.done_at[c] - t for c, t in labelled.items()]
        r.label_p50, r.label_p99 = sk.percentile(latencies, 50), sk.percentile(latencies, 99)
        after = await self.ascrape()
        mgmt = sk.Requests.between(before[0], after[0])
        work = sk.Requests.between(before[1], after[1])
        r.label_mgmt_writes = mgmt.writes - self.n  # our own label patches are not the controller's
        r.label_workload_per_cluster = work.total / self.n
        r.label_top = f"management: {mgmt.top()}; workload: {work.top()}"
        cpu = bl.cpu_times(self.controller.pid) - before_cpu
        bl.note(f"label-all -> deployed: total {bl.seconds(r.label_total)}, per cluster p50 "
                f"{bl.seconds(r.label_p50)} p99 {bl.seconds(r.label_p99)}; controller CPU "
                f"{cpu.own:.1f} s")
        r.verified = await self.setup.verify("v1")
        bl.note(f"objects checked on {r.verified}/{self.n} clusters (20 each, own namespace)")
        if r.verified != self.n:
            raise bl.BenchError(f"only {r.verified}/{self.n} clusters hold the 20 objects")

    async def idle(self) -> None:
        r = self.result
        await asyncio.sleep(self.opts.settle)
        before_cpu = bl.cpu_times(self.controller.pid)
        before = await self.ascrape()
        start = time.monotonic()
        await asyncio.sleep(self.opts.idle)
        after = await self.ascrape()
        took = time.monotonic() - start
        cpu = bl.cpu_times(self.controller.pid) - before_cpu
        mgmt = sk.Requests.between(before[0], after[0])
        work = sk.Requests.between(before[1], after[1])
        per_min = 60.0 / took / self.n
        r.idle_mgmt_rpm, r.idle_workload_rpm = mgmt.total * per_min, work.total * per_min
        r.idle_writes = mgmt.writes + work.writes
        r.idle_cpu_pct = 100.0 * cpu.total / took
        r.idle_top = f"management: {mgmt.top()}; workload: {work.top()}"
        bl.note(f"idle {took:.0f} s: {r.idle_mgmt_rpm + r.idle_workload_rpm:.2f} requests per "
                f"cluster per minute, {r.idle_writes:.0f} writes, controller "
                f"{r.idle_cpu_pct:.1f} % of a core ({r.idle_top})")

    async def change(self) -> None:
        r = self.result
        old = await self.profile_revision()
        await self.mgmt.apply(sk.manifests_configmap("bench-scale-v2", "v2"),
                              field_manager="flotilla-bench")
        self.timeline.reset(lambda s: sk.deployed(s, after_revision=old))
        before = await self.ascrape()
        start = time.monotonic()
        await self.mgmt.apply(sk.manifest_profile("bench-scale-v2"),
                              field_manager="flotilla-bench")
        await self.wait_all(self.timeline, self.n, f"every summary Provisioned past {old}")
        done = self.timeline.done_at.values()
        r.change_total = max(done) - start
        r.change_p50 = sk.percentile([t - start for t in done], 50)
        after = await self.ascrape()
        mgmt = sk.Requests.between(before[0], after[0])
        r.change_mgmt_writes = mgmt.writes - 1
        r.change_workload_per_cluster = sk.Requests.between(before[1], after[1]).total / self.n
        bl.note(f"profile change -> converged: {bl.seconds(r.change_total)} "
                f"(p50 {bl.seconds(r.change_p50)})")
        if await self.setup.verify("v2") != self.n:
            raise bl.BenchError("not every cluster holds the changed objects")

    async def restart(self) -> None:
        """Restart, then read counters every few seconds until two quiet intervals in a row."""
        r = self.result
        limit = max(1.0, 1.5 * (r.idle_mgmt_rpm + r.idle_workload_rpm))  # per cluster per minute
        interval = 5.0 if len(self.setup.fleet.clusters) <= 12 else 10.0
        # The restarted process counts from zero: keep what the first one used.
        self.first_cpu = bl.cpu_times(self.controller.pid)
        self.first_rss = bl.proc_status_kib(self.controller.pid, "VmHWM")
        self.controller.stop()
        start = time.monotonic()
        prev = first = await self.ascrape()
        prev_at = time.monotonic()
        self._next_profile()
        self.controller.log = self.controller.workdir / "controller-restarted.log"
        self.controller.start()
        quiet_since: float | None = None
        quiet_runs = 0
        while time.monotonic() - start < self.opts.timeout:
            await asyncio.sleep(interval)
            self.controller.check_alive()
            now = await self.ascrape()
            now_at = time.monotonic()
            mgmt = sk.Requests.between(prev[0], now[0])
            work = sk.Requests.between(prev[1], now[1])
            rate = (mgmt.total + work.total) / self.n / ((now_at - prev_at) / 60.0)
            if mgmt.writes == 0 and work.writes == 0 and rate <= limit:
                quiet_since = prev_at if quiet_since is None else quiet_since
                quiet_runs += 1
                if quiet_runs >= 2:
                    break
            else:
                quiet_since, quiet_runs = None, 0
            prev, prev_at = now, now_at
        if quiet_since is not None and quiet_runs >= 2:
            r.restart_idle = quiet_since - start
        mgmt = sk.Requests.between(first[0], prev[0])
        work = sk.Requests.between(first[1], prev[1])
        r.restart_writes_mgmt, r.restart_writes_workload = mgmt.writes, work.writes
        r.restart_requests_per_cluster = (mgmt.total + work.total) / self.n
        shown = "not idle" if r.restart_idle is None else bl.seconds(r.restart_idle)
        bl.note(f"restart -> idle: {shown} (±{interval:g} s; limit {limit:.2f} req/cluster/min); "
                f"{mgmt.writes:.0f} management and {work.writes:.0f} workload writes meanwhile; "
                f"management: {mgmt.top()}; workload: {work.top()}")

    async def withdraw(self) -> float:
        """Unlabel all, until every summary is gone and no cluster holds an object."""
        self.timeline.reset(lambda s: False)
        start = time.monotonic()
        await self.label(self.setup.names(), sk.LABEL, False)
        try:
            await self.timeline.wait(lambda: not self.timeline.objects, self.opts.timeout,
                                     "every summary gone", self.controller.check_alive)
        except TimeoutError as exc:
            raise bl.BenchError(f"{exc}\n{self.controller.tail()}") from exc
        took = time.monotonic() - start
        left = await self.setup.holding()
        bl.note(f"unlabel -> withdrawn: {bl.seconds(took)}; clusters still holding objects: {left}")
        if left:
            raise bl.BenchError(f"{left} clusters still hold the benchmark objects")
        return took

    def totals(self) -> None:
        cpu = bl.cpu_times(self.controller.pid)
        self.result.cpu_seconds = cpu.own + self.first_cpu.own
        self.result.helm_cpu_seconds = cpu.children + self.first_cpu.children
        self.result.rss_peak_kib = max(self.first_rss,
                                       bl.proc_status_kib(self.controller.pid, "VmHWM"))

    async def chart(self, repo: ChartRepo) -> None:
        """Each lean server registered with its admin kubeconfig, one chart to all of them."""
        r = self.result
        real = await asyncio.to_thread(self.setup.register_real)
        r.chart_servers = len(real)
        await self.wait_ready({name for _, name in real}, self.opts.timeout)
        await self.mgmt.apply(sk.chart_profile(repo.url), field_manager="flotilla-bench")
        timeline = sk.Timeline(self.mgmt, sk.CHART_PROFILE)
        task = asyncio.create_task(timeline.run())
        try:
            await timeline.listed.wait()
            await asyncio.sleep(self.opts.settle)
            timeline.reset(sk.deployed)
            start = time.monotonic()
            labelled = await self.label(real, sk.CHART_LABEL, True)
            await self.wait_all(timeline, len(real), "every chart summary Provisioned")
            r.chart_total = max(timeline.done_at.values()) - start
            r.chart_p50 = sk.percentile([timeline.done_at[c] - t for c, t in labelled.items()],
                                        50)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        bl.note(f"{len(real)} real API servers x 1 chart: all deployed in "
                f"{bl.seconds(r.chart_total)} (p50 {bl.seconds(r.chart_p50)})")

    async def relabel(self, what: str) -> tuple[float, float]:
        """Label-all -> every summary Provisioned again: (total, p50)."""
        self.timeline.reset(sk.deployed)
        start = time.monotonic()
        labelled = await self.label(self.setup.names(), sk.LABEL, True)
        await self.wait_all(self.timeline, self.n, f"every summary Provisioned ({what})")
        total = max(self.timeline.done_at.values()) - start
        p50 = sk.percentile([self.timeline.done_at[c] - t for c, t in labelled.items()], 50)
        return total, p50

    async def sharded(self, shards: int) -> None:
        """K controllers (the default one and K-1 shard keys) against one, both fresh.

        The first label-all of the run is no fair baseline (its process had just
        connected to every cluster), so one fresh controller deploys once more, the
        fleet is withdrawn again, and then K fresh controllers deploy.
        """
        r = self.result
        self.controller.stop()
        self.controller = self._controller(self.work / "single", ())
        self.controller.start()
        await asyncio.sleep(self.opts.settle * 2)
        r.shard_baseline_total, _ = await self.relabel("1 controller, again")
        bl.note(f"1 fresh controller: label-all -> deployed {bl.seconds(r.shard_baseline_total)}")
        await self.withdraw()
        self.controller.stop()
        names = self.setup.names()
        for i, (ns, name) in enumerate(names):
            key = f"s{i % shards}" if i % shards else None
            await self.mgmt.patch(api.API_VERSION, api.WORKLOAD_CLUSTER, ns, name,
                                  {"metadata": {"annotations": {api.SHARD_ANNOTATION: key}}})
        group = [self._controller(self.work / f"shard-{k}",
                                  ("--shard-key", f"s{k}") if k else ())
                 for k in range(shards)]
        try:
            for ctl in group:
                ctl.start()
            self.controller = group[0]
            await asyncio.sleep(self.opts.settle * 2)
            r.shard_label_total, r.shard_label_p50 = await self.relabel(f"{shards} shards")
            r.shard_cpu_seconds = sum(bl.cpu_times(c.pid).own for c in group)
            r.shard_rss_peak_kib = max(bl.proc_status_kib(c.pid, "VmHWM") for c in group)
            bl.note(f"{shards} shards: label-all -> deployed {bl.seconds(r.shard_label_total)} "
                    f"(1 fresh controller: {bl.seconds(r.shard_baseline_total)})")
        finally:
            for ctl in group[1:]:
                ctl.stop()

    async def close(self) -> None:
        await self.mgmt.close()


async def measure(opts: Options, work: Path, repo: ChartRepo | None) -> Result:
    """Every phase for one size; the caller owns `work` and removes it."""
    servers = math.ceil(opts.clusters / opts.per_server)
    bl.heading(f"N = {opts.clusters}: {opts.clusters} WorkloadClusters on {servers} lean API "
               f"servers, {opts.per_server} per server (the controller is not told)")
    setup = await asyncio.to_thread(sf.Setup.start, work / "fleet", opts.clusters,
                                    opts.per_server)
    run: Run | None = None
    try:
        run = Run(opts, work, setup)
        task = asyncio.create_task(run.timeline.run())
        try:
            await run.connect()
            await run.timeline.listed.wait()
            await run.create_profile()
            await run.label_all()
            await run.idle()
            if opts.brief:
                run.result.brief = True
                run.totals()
                run.result.load_end = bl.machine()
                return run.result
            await run.change()
            await run.restart()
            run.result.withdraw_total = await run.withdraw()
            run.totals()
            if opts.shards > 1:  # before the chart phase: its clusters would join the count
                await run.sharded(opts.shards)
            if opts.chart and repo is not None:
                await run.chart(repo)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        run.result.load_end = bl.machine()
        return run.result
    except BaseException:
        if run is not None:
            kept = bl.TMP / f"flotilla-bench-controller-{time.strftime('%Y%m%d-%H%M%S')}.log"
            with contextlib.suppress(OSError):
                kept.write_bytes(run.controller.log.read_bytes())
                print(f"scale.py: the controller's log is kept in {kept}")
        raise
    finally:
        with bl.shielded():
            if run is not None:
                run.controller.stop()
                await run.close()
            setup.stop()
            if opts.keep is not None:
                keep(work, opts.keep / f"n{opts.clusters}")


def keep(work: Path, dest: Path) -> None:
    """Copy every controller log and profile of the run out of its temp folder."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in [*work.glob("*/controller.log"), *work.glob("*/*.prof")]:
        shutil.copy(path, dest / f"{path.parent.name}-{path.name}")
    bl.note(f"controller logs kept in {dest}")
