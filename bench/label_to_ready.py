"""Time from labelling workload clusters to their services being ready, on 1, 3 and 10 clusters.

    .venv/bin/python bench/label_to_ready.py [--quick] [--reps N] [--sizes 1,3,10]
                                             [--kinds manifests,chart] [--timeout S]

One fleet (management + 10 api-only workload clusters) is started, the CRDs
and catalog installed, every cluster registered in namespace `fleet` without
labels, and the real controller started as a subprocess (`python -m
engine.cli controller`). Then, for each kind of profile and each N:

  1. the ClusterProfile (selector `bench=on`) exists and no cluster matches it;
     list+watch streams are opened on the management cluster (the profile)
     and on the N target clusters (the objects the profile deploys);
  2. t0; the label `bench=on` is patched onto N WorkloadClusters at once;
  3. "applied" = the moment the last target cluster holds every object
     (manifests: the Namespace and both ConfigMaps; chart: the Helm release
     Secret with status=deployed), seen through the watch streams;
     "ready" = the moment the profile reports status.ready == matched == N;
  4. the label is removed and the run waits until status.matched == 0, the
     ClusterSummaries are gone and the targets no longer hold the objects
     ("withdrawn", measured by polling every 0.2 s).

Kinds: `manifests` is a ClusterProfile with `policyRefs` to a ConfigMap in
flotilla-system holding a Namespace and two ConfigMaps (a fresh ConfigMap
and Namespace name per run: the api-only clusters have no namespace
controller, so a withdrawn Namespace stays Terminating forever); `chart` is a
ClusterProfile with one `helmCharts` entry (multi-a 0.1.0 from the loopback
chart repository, `engine.devfleet.chartrepo.ChartRepo`).

The controller's CPU seconds come from /proc/<pid>/stat (utime+stime, plus
cutime+cstime: the helm subprocesses it has waited for) and its peak RSS
from VmHWM in /proc/<pid>/status. Targets: manifests applied ≤ 2 s; one chart
on 10 clusters ready ≤ 15 s. Everything started here is stopped in `finally`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import benchfleet
import benchkube as bk
import benchlib as bl
import yaml

from engine import api, errors
from engine.adapters import kube, kubeconfig
from engine.devfleet import fleet, testbin
from engine.devfleet.chartrepo import ChartRepo

Obj = dict[str, Any]
FLEET_NS = "fleet"
LABEL = "bench"
PROFILES = {"manifests": "bench-manifests", "chart": "bench-chart"}
RELEASE, RELEASE_NS = "bench-a", "bench"
MANIFEST_TARGET_S = 2.0
CHART_TARGET_S = 15.0
CHART_TARGET_N = 10
WORKLOAD_CLUSTERS = 10


# -- profiles ---------------------------------------------------------------------------------


def _profile(kind: str, repo_url: str, policy_cm: str) -> Obj:
    spec: Obj = {"clusterSelector": {"matchLabels": {LABEL: "on"}}}
    if kind == "manifests":
        spec["policyRefs"] = [{"kind": "ConfigMap", "namespace": api.SYSTEM_NAMESPACE,
                               "name": policy_cm}]
    else:
        spec["helmCharts"] = [{"repositoryURL": repo_url, "chartName": "multi-a",
                               "chartVersion": "0.1.0", "releaseName": RELEASE,
                               "releaseNamespace": RELEASE_NS}]
    return {"apiVersion": api.API_VERSION, "kind": "ClusterProfile",
            "metadata": {"name": PROFILES[kind]}, "spec": spec}


def _policy_configmap(name: str, namespace: str) -> Obj:
    """The manifests: a Namespace and two ConfigMaps in it."""
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "settings", "namespace": namespace},
         "data": {"owner": "platform", "tier": "bench"}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "flags", "namespace": namespace},
         "data": {"featureA": "true", "featureB": "false"}},
    ]
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": api.SYSTEM_NAMESPACE},
            "data": {"objects.yaml": yaml.safe_dump_all(docs, sort_keys=False)}}


# -- one measurement --------------------------------------------------------------------------


@dataclass
class Sample:
    kind: str
    n: int
    applied: float
    ready: float
    withdrawn: float


@dataclass
class Bench:
    mgmt: kube.Client
    workload: dict[str, kube.Client]
    controller: bk.Controller
    repo_url: str
    timeout: float
    samples: list[Sample] = field(default_factory=list)
    runs: int = 0

    async def wait_for(self, probe: Callable[[], Any], what: str, timeout: float,
                       interval: float = 0.2, diagnose: Callable[[], Any] | None = None) -> Any:
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

    async def profile(self, kind: str) -> Obj:
        return await self.mgmt.get(api.API_VERSION, "ClusterProfile", None, PROFILES[kind]) or {}

    async def summaries(self, kind: str) -> list[Obj]:
        return await self.mgmt.list(api.API_VERSION, "ClusterSummary", namespace=FLEET_NS,
                                    label_selector=f"{api.PROFILE_NAME_LABEL}={PROFILES[kind]}")

    async def diagnose(self, kind: str) -> str:
        """Profile status, each ClusterSummary's phase and the controller's last lines."""
        try:
            st = (await self.profile(kind)).get("status") or {}
            lines = [f"\nprofile {PROFILES[kind]}: phase={st.get('phase')} matched="
                     f"{st.get('matched')} ready={st.get('ready')} failed={st.get('failed')}"]
            for cond in st.get("conditions") or []:
                if cond.get("type") in ("Ready", "Degraded") and cond.get("message"):
                    lines.append(f"  {cond['type']}: {cond['message']}")
            for s in await self.summaries(kind):
                sst = s.get("status") or {}
                lines.append(f"  summary {s['metadata']['name']}: phase={sst.get('phase')} "
                             f"healthy={sst.get('healthy')} {sst.get('message', '')}")
        except errors.FlotillaError as exc:
            lines = [f"\n(could not read status: {exc})"]
        lines.append(f"controller log (last lines of {self.controller.log}):\n"
                     f"{self.controller.tail()}")
        return "\n".join(lines)

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

    async def set_profile(self, kind: str, policy_cm: str = "") -> None:
        """Apply the profile and wait until the controller has reconciled this generation."""
        body = await self.mgmt.apply(_profile(kind, self.repo_url, policy_cm),
                                     field_manager="flotilla-bench")
        generation = body["metadata"]["generation"]

        async def probe() -> bool:
            st = (await self.profile(kind)).get("status") or {}
            return st.get("observedGeneration") == generation and st.get("matched") == 0

        await self.wait_for(probe, f"the controller to reconcile profile {PROFILES[kind]} "
                            f"(generation {generation}, matching nothing)", 60,
                            diagnose=lambda: self.diagnose(kind))

    async def delete_profile(self, kind: str) -> None:
        await self.mgmt.delete(api.API_VERSION, "ClusterProfile", None, PROFILES[kind])

        async def gone() -> bool:
            found = await self.mgmt.get(api.API_VERSION, "ClusterProfile", None, PROFILES[kind])
            return found is None

        await self.wait_for(gone, f"profile {PROFILES[kind]} to be deleted (finalizer)", 60,
                            diagnose=lambda: self.diagnose(kind))

    async def label(self, names: Sequence[str], on: bool) -> None:
        patch = {"metadata": {"labels": {LABEL: "on" if on else None}}}
        await asyncio.gather(*(self.mgmt.patch(api.API_VERSION, "WorkloadCluster", FLEET_NS, n,
                                               patch)
                               for n in names))

    def trackers(self, kind: str, targets: Sequence[str], namespace: str) -> list[bk.Tracker]:
        """What 'applied' means on each target cluster, as watch predicates."""
        out = []
        for name in targets:
            client = self.workload[name]
            if kind == "manifests":
                selector = f"{api.PROFILE_NAME_LABEL}={PROFILES[kind]}"
                out.append(bk.Tracker(client, "v1", "Namespace", bk.has_name(namespace),
                                      label_selector=selector, what=f"Namespace on {name}"))
                out.append(bk.Tracker(client, "v1", "ConfigMap",
                                      lambda objs: {"settings", "flags"} <= bk.names(objs),
                                      namespace=namespace, label_selector=selector,
                                      what=f"ConfigMaps on {name}"))
            else:
                out.append(bk.Tracker(client, "v1", "Secret", lambda objs: any(
                    (o["metadata"].get("labels") or {}).get("status") == "deployed"
                    for o in objs.values()), namespace=RELEASE_NS,
                    label_selector=f"owner=helm,name={RELEASE}",
                    what=f"release {RELEASE_NS}/{RELEASE} deployed on {name}"))
        return out

    async def confirm(self, kind: str, targets: Sequence[str], namespace: str) -> None:
        """Read the deployed objects back from every target cluster once more."""
        for name in targets:
            client = self.workload[name]
            wanted = [("Namespace", None, namespace), ("ConfigMap", namespace, "settings"),
                      ("ConfigMap", namespace, "flags")] if kind == "manifests" else [
                      ("ConfigMap", RELEASE_NS, RELEASE)]
            for what, ns, obj in wanted:
                if await client.get("v1", what, ns, obj) is None:
                    raise bl.BenchError(f"profile reports ready but {what} {ns or ''}/{obj} "
                                        f"is missing on {name}")

    async def deployed_somewhere(self, kind: str, targets: Sequence[str],
                                 namespace: str) -> list[str]:
        """The targets that still hold what the profile deployed."""
        out = []
        for name in targets:
            client = self.workload[name]
            if kind == "manifests":
                found = await client.list("v1", "ConfigMap", namespace=namespace,
                                          label_selector=f"{api.PROFILE_NAME_LABEL}="
                                                         f"{PROFILES[kind]}")
            else:
                found = await client.list("v1", "Secret", namespace=RELEASE_NS,
                                          label_selector=f"owner=helm,name={RELEASE}")
            if found:
                out.append(name)
        return out

    async def measure(self, kind: str, n: int) -> Sample:
        self.runs += 1
        targets = sorted(self.workload, key=lambda c: int(c.rsplit("-", 1)[1]))[:n]
        namespace = f"bench-m-r{self.runs}"
        policy_cm = f"bench-manifests-r{self.runs}"
        if kind == "manifests":
            # A fresh name per run: the profile is changed while it matches nothing.
            await self.mgmt.apply(_policy_configmap(policy_cm, namespace),
                                  field_manager="flotilla-bench")
            await self.set_profile(kind, policy_cm)
        profile_done = bk.Tracker(self.mgmt, api.API_VERSION, "ClusterProfile", lambda objs: any(
            o["metadata"]["name"] == PROFILES[kind]
            and (o.get("status") or {}).get("ready") == n
            and (o.get("status") or {}).get("matched") == n for o in objs.values()),
            what=f"profile {PROFILES[kind]} ready on {n}")
        workload_done = self.trackers(kind, targets, namespace)
        tasks = [asyncio.create_task(t.run()) for t in [profile_done, *workload_done]]
        try:
            await self.wait_for(self._all_listed([profile_done, *workload_done]),
                                "the watch streams to start", 30)
            await asyncio.sleep(0.3)  # let the watch requests reach the servers
            early = [t.what for t in [profile_done, *workload_done] if t.done.is_set()]
            if early:
                raise bl.BenchError(f"{kind} on {n} clusters: already true before labelling "
                                    f"(left over from an earlier run?): {', '.join(early)}")
            t0 = time.monotonic()
            await self.label(targets, on=True)
            waiting = [profile_done, *workload_done]
            try:
                await asyncio.wait_for(asyncio.gather(*(t.done.wait() for t in waiting)),
                                       timeout=self.timeout)
            except TimeoutError:
                missing = ", ".join(t.what for t in waiting if not t.done.is_set())
                raise bl.BenchError(
                    f"{kind} on {n} clusters: not done {self.timeout:g} s after labelling; "
                    f"still waiting for: {missing}{await self.diagnose(kind)}") from None
            assert profile_done.done_at is not None
            ready = profile_done.done_at - t0
            applied = max(t.done_at or 0.0 for t in workload_done) - t0
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.confirm(kind, targets, namespace)
        withdrawn = await self.unlabel(kind, targets, namespace)
        if kind == "manifests":
            await self.mgmt.delete("v1", "ConfigMap", api.SYSTEM_NAMESPACE, policy_cm)
        sample = Sample(kind, n, applied, ready, withdrawn)
        self.samples.append(sample)
        return sample

    def _all_listed(self, trackers: Sequence[bk.Tracker]) -> Callable[[], Any]:
        async def probe() -> bool:
            return all(t.listed.is_set() for t in trackers)
        return probe

    async def unlabel(self, kind: str, targets: Sequence[str], namespace: str) -> float:
        t0 = time.monotonic()
        await self.label(targets, on=False)

        async def withdrawn() -> bool:
            st = (await self.profile(kind)).get("status") or {}
            if st.get("matched") != 0 or await self.summaries(kind):
                return False
            return not await self.deployed_somewhere(kind, targets, namespace)

        await self.wait_for(withdrawn, f"{kind} to be withdrawn from {len(targets)} clusters "
                            "(matched == 0, summaries and objects gone)", self.timeout,
                            diagnose=lambda: self.diagnose(kind))
        return time.monotonic() - t0


# -- the whole run ----------------------------------------------------------------------------


@dataclass
class Usage:
    phases: list[tuple[str, bl.CpuTimes, int]] = field(default_factory=list)
    total: bl.CpuTimes | None = None
    rss_kib: int = 0
    hwm_kib: int = 0


async def run_all(started: fleet.Fleet, controller: bk.Controller, repo_url: str,
                  kinds: Sequence[str], sizes: Sequence[int], reps: int, timeout: float,
                  usage: Usage) -> list[Sample]:
    mgmt = kube.Client(kubeconfig.load(started.management.kubeconfig), name="management")
    workload = {c.name: kube.Client(kubeconfig.load(c.kubeconfig), name=c.name)
                for c in started.clusters}
    bench = Bench(mgmt=mgmt, workload=workload, controller=controller, repo_url=repo_url,
                  timeout=timeout)
    try:
        watch = bl.Stopwatch()
        await bench.clusters_ready()
        bl.note(f"controller up, {len(workload)} WorkloadClusters ready after "
                f"{bl.seconds(watch.elapsed())}")
        for kind in kinds:
            bl.heading(f"{kind}: label → ready, {reps} run(s) per size")
            before = bl.cpu_times(controller.pid)
            if kind == "chart":
                await bench.set_profile(kind)
            for n in sizes:
                for rep in range(reps):
                    s = await bench.measure(kind, n)
                    bl.note(f"{kind:9} N={n:<3} run {rep + 1}/{reps}: applied "
                            f"{bl.seconds(s.applied)}, ready {bl.seconds(s.ready)}, "
                            f"withdrawn {bl.seconds(s.withdrawn)}")
            await bench.delete_profile(kind)
            usage.phases.append((kind, bl.cpu_times(controller.pid) - before,
                                 sum(sizes) * reps))
        usage.total = bl.cpu_times(controller.pid)
        usage.rss_kib = bl.proc_status_kib(controller.pid, "VmRSS")
        usage.hwm_kib = bl.proc_status_kib(controller.pid, "VmHWM")
    finally:
        for client in [mgmt, *workload.values()]:
            await client.close()
    return bench.samples


def report(samples: Sequence[Sample], kinds: Sequence[str], sizes: Sequence[int],
           usage: Usage) -> None:
    def spread(values: Sequence[float]) -> str:
        s = bl.Spread.of(values)
        return f"{s.median:.2f} [{s.low:.2f}-{s.high:.2f}]"

    bl.heading("label → ready (seconds: median [min-max])")
    rows = []
    for kind in kinds:
        for n in sizes:
            mine = [s for s in samples if s.kind == kind and s.n == n]
            rows.append([kind, n, len(mine), spread([s.applied for s in mine]),
                         spread([s.ready for s in mine]), spread([s.withdrawn for s in mine])])
    print(bl.table(["profile", "clusters", "runs", "label → applied", "label → ready",
                    "unlabel → withdrawn"], rows))
    bl.note("applied: every object on every target cluster (watched there); ready: the "
            "profile's status.ready == N")

    bl.heading("targets")
    rows = []
    if "manifests" in kinds:
        for n in sizes:
            med = bl.Spread.of([s.applied for s in samples
                                if s.kind == "manifests" and s.n == n]).median
            rows.append([f"label → manifests applied, {n} cluster(s)", bl.seconds(med),
                         f"{MANIFEST_TARGET_S:.0f} s", bl.verdict(med, MANIFEST_TARGET_S)])
    if "chart" in kinds:
        chart10 = [s.ready for s in samples if s.kind == "chart" and s.n == CHART_TARGET_N]
        if chart10:
            med = bl.Spread.of(chart10).median
            rows.append([f"one chart on {CHART_TARGET_N} clusters ready", bl.seconds(med),
                         f"{CHART_TARGET_S:.0f} s", bl.verdict(med, CHART_TARGET_S)])
        else:
            rows.append([f"one chart on {CHART_TARGET_N} clusters ready", "not run",
                         f"{CHART_TARGET_S:.0f} s", "n/a"])
    print(bl.table(["target (median)", "measured", "limit", "verdict"], rows))

    bl.heading("controller process")
    rows = []
    for kind, cpu, deployments in usage.phases:
        rows.append([f"{kind} phase", f"{cpu.own:.1f} s", f"{cpu.children:.1f} s",
                     f"{cpu.total:.1f} s", f"{cpu.total / deployments:.2f} s"])
    if usage.total is not None:
        t = usage.total
        rows.append(["whole run (incl. start-up)", f"{t.own:.1f} s", f"{t.children:.1f} s",
                     f"{t.total:.1f} s", ""])
    print(bl.table(["CPU", "controller", "helm children", "total", "per cluster cycle"],
                   rows))
    bl.note("per cluster cycle: phase CPU / (clusters labelled and unlabelled in the phase)")
    bl.note(f"peak RSS (VmHWM) {bl.mib(usage.hwm_kib)}, RSS at the end {bl.mib(usage.rss_kib)} "
            "(helm children not included)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 run per size instead of 3")
    parser.add_argument("--reps", type=int, help="runs per (kind, size); default 3, --quick 1")
    parser.add_argument("--sizes", default="1,3,10",
                        help=f"cluster counts, comma-separated, each ≤ {WORKLOAD_CLUSTERS}")
    parser.add_argument("--kinds", default="manifests,chart", help="manifests and/or chart")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to wait for one label → ready or withdrawal")
    args = parser.parse_args(argv)
    reps = args.reps or (1 if args.quick else 3)
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if any(k not in PROFILES for k in kinds) or not kinds:
        parser.error(f"--kinds takes {', '.join(PROFILES)}")
    if not sizes or any(not 1 <= n <= WORKLOAD_CLUSTERS for n in sizes):
        parser.error(f"--sizes must be between 1 and {WORKLOAD_CLUSTERS}")
    bl.exit_on_sigterm()
    print(f"label_to_ready: {bl.machine()}")
    testbin.path()

    usage = Usage()
    # benchfleet.running: fleet up, install, register; stops everything on the way out.
    with benchfleet.running("label_to_ready", "l2r") as stack:
        repo = ChartRepo(stack.work / "charts")
        try:
            bl.note(f"chart repository at {repo.url}")
            stack.start_controller()
            samples = asyncio.run(run_all(stack.fleet, stack.controller, repo.url, kinds, sizes,
                                          reps, args.timeout, usage))
        finally:
            with bl.shielded():
                repo.close()
    report(samples, kinds, sizes, usage)
    return 0


if __name__ == "__main__":
    try:
        code = main()
    except bl.BenchError as exc:
        print(f"label_to_ready: {exc}", file=sys.stderr)
        code = 1
    finally:
        bl.check_leftovers("label_to_ready")
    sys.exit(code)
