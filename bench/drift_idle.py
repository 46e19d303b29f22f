"""What drift watching costs while nothing changes, and how fast drift is reported and corrected.

    .venv/bin/python bench/drift_idle.py [--quick] [--window S] [--trials N] [--seed N]

One fleet (management + 10 api-only workload clusters), the CRDs and catalog
installed, every cluster registered in namespace `fleet` and labelled
`bench=on`, the real controller as a subprocess. Then:

  1. ClusterProfile `bench-drift` (syncMode ContinuousWithDriftDetection,
     selector bench=on) deploys 50 objects — 40 ConfigMaps and 10 Deployments
     (replicas 1; no pods run on api-only clusters) in namespace `bench-drift`,
     plus that Namespace — to all 10 clusters; the script waits for
     status.ready == 10, then lets things settle;
  2. idle: over a window (60 s, --quick 20 s) in which nothing changes, the
     controller's CPU (utime+stime+cutime+cstime from /proc/<pid>/stat over
     wall time) and the requests counted by each API server's
     `apiserver_request_total` (scraped from /metrics before and after, with
     the fleet's admin client certificate), split into reads (GET, LIST,
     WATCH) and writes, resource="leases" (the API servers' own lease
     renewals) and non-resource paths (openapi, discovery) shown apart;
  3. a second ClusterProfile `bench-drift-report` (syncMode Continuous: reports
     drift, does not correct it) deploys the same 50 objects into namespace
     `bench-drift-report`;
  4. N trials (10, also with --quick), each on a random cluster and ConfigMap,
     one (cluster, object) pair used once per profile (corrections of one
     object back off after 3 a minute, see README "Drift"):
     * report: merge-patch `{"data":{"x":"drift-N"}}` onto a ConfigMap of
       `bench-drift-report`; latency = until that cluster's ClusterSummary
       lists the object in status.drift (seen through a watch on the
       summaries); then the edit is undone and the script waits for the entry
       to go ("cleared", for reference);
     * correction: the same kind of patch onto a ConfigMap of `bench-drift`;
       latency = until the workload cluster's watch shows the object back at
       x=v0 (a newer resourceVersion than the edit's). Whether the correcting
       profile's summary showed the drift in between is noted too;
  5. the controller is stopped and the same request counts are taken over a
     shorter window without it (the fleet's own background), and subtracted.

Targets (medians): drift reported ≤ 2 s, corrected ≤ 5 s; no controller write
while idle. Everything started here is stopped in `finally`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import ssl
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import benchfleet as bf
import benchkube as bk
import benchlib as bl
import yaml

from engine import api
from engine.devfleet import fleet, testbin

Obj = dict[str, Any]
FIXING = "bench-drift"  # ContinuousWithDriftDetection: the profile whose idle cost is measured
REPORTING = "bench-drift-report"  # Continuous: reports, never corrects
CONFIGMAPS, DEPLOYMENTS = 40, 10
CLEAN = "v0"
REPORT_TARGET_S = 2.0
CORRECT_TARGET_S = 5.0
READ_VERBS = frozenset({"GET", "LIST", "WATCH", "WATCHLIST"})


# -- profiles ---------------------------------------------------------------------------------


def _objects(namespace: str) -> list[Obj]:
    docs: list[Obj] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}]
    for i in range(CONFIGMAPS):
        docs.append({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": f"cm-{i:02d}", "namespace": namespace},
                     "data": {"x": CLEAN, "owner": "platform", "index": str(i)}})
    for i in range(DEPLOYMENTS):
        app = f"web-{i}"
        docs.append({"apiVersion": "apps/v1", "kind": "Deployment",
                     "metadata": {"name": app, "namespace": namespace},
                     "spec": {"replicas": 1, "selector": {"matchLabels": {"app": app}},
                              "template": {"metadata": {"labels": {"app": app}},
                                           "spec": {"containers": [
                                               {"name": "app",
                                                "image": "registry.invalid/app:1"}]}}}})
    return docs


def _policy_configmap(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": api.SYSTEM_NAMESPACE},
            "data": {"objects.yaml": yaml.safe_dump_all(_objects(name), sort_keys=False)}}


def _profile(name: str, mode: str) -> Obj:
    return {"apiVersion": api.API_VERSION, "kind": "ClusterProfile", "metadata": {"name": name},
            "spec": {"syncMode": mode,
                     "clusterSelector": {"matchLabels": {bf.LABEL: "on"}},
                     "policyRefs": [{"kind": "ConfigMap", "namespace": api.SYSTEM_NAMESPACE,
                                     "name": name}]}}


# -- request counts from the API servers ------------------------------------------------------


_LABEL = re.compile(r'(\w+)="([^"]*)"')
Counts = dict[tuple[tuple[str, str], ...], float]


@dataclass
class Scrape:
    requests: Counts  # apiserver_request_total, by label set
    watches: Counter[str]  # open WATCH requests (apiserver_longrunning_requests), by resource


def _scrape(url: str, ctx: ssl.SSLContext) -> Scrape:
    with urllib.request.urlopen(f"{url}/metrics", context=ctx, timeout=10) as resp:
        text = resp.read().decode()
    out = Scrape({}, Counter())
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{"):
            labels, value = line.rsplit(" ", 1)
            out.requests[tuple(sorted(_LABEL.findall(labels)))] = float(value)
        elif line.startswith("apiserver_longrunning_requests{"):
            labels, value = line.rsplit(" ", 1)
            found = dict(_LABEL.findall(labels))
            if found.get("verb") == "WATCH":
                out.watches[found.get("resource", "")] += int(float(value))
    return out


def scrape_all(started: fleet.Fleet) -> dict[str, Scrape]:
    pki = Path(started.dir) / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(pki / "admin.crt", pki / "admin.key")
    with ThreadPoolExecutor(max_workers=len(started.all)) as pool:
        scrapes = pool.map(lambda c: _scrape(c.url, ctx), started.all)
        return dict(zip([c.name for c in started.all], scrapes, strict=True))


@dataclass
class Requests:
    """Requests counted by a group of API servers over a window, by category."""

    reads: float = 0
    writes: float = 0
    leases: float = 0
    nonresource: float = 0
    scrapes: float = 0  # our own GET /metrics, if the server counts it
    by_kind: Counter[str] = field(default_factory=Counter)
    watches: Counter[str] = field(default_factory=Counter)  # open at the end, by resource

    def add(self, before: Scrape, after: Scrape) -> None:
        self.watches.update(after.watches)
        for key, value in after.requests.items():
            n = value - before.requests.get(key, 0.0)
            if n <= 0:
                continue
            labels = dict(key)
            verb, resource = labels.get("verb", ""), labels.get("resource", "")
            sub = labels.get("subresource", "")
            if not resource:
                if "metrics" in sub:
                    self.scrapes += n
                else:
                    self.nonresource += n
                    self.by_kind[f"{verb} {sub or '(path)'} [non-resource]"] += int(n)
                continue
            what = f"{verb} {resource}{'/' + sub if sub else ''} {labels.get('code', '')}"
            self.by_kind[what] += int(n)
            if resource == "leases":
                self.leases += n
            elif verb in READ_VERBS:
                self.reads += n
            else:
                self.writes += n


@dataclass
class Window:
    seconds: float
    management: Requests
    workload: Requests
    controller_cpu: bl.CpuTimes | None = None
    apiserver_cpu: float = 0.0


async def measure_window(stack: bf.Stack, seconds: float, *, controller: bool) -> Window:
    """Request counts (and CPU) over `seconds` in which the script does nothing else."""
    servers = {c.name: c.pids["apiserver"] for c in stack.fleet.all}
    before = await asyncio.to_thread(scrape_all, stack.fleet)
    cpu0 = bl.cpu_times(stack.controller.pid) if controller else None
    api0 = sum(bl.cpu_times(pid).own for pid in servers.values())
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    if controller:
        stack.controller.check_alive()
    cpu1 = bl.cpu_times(stack.controller.pid) if controller else None
    api1 = sum(bl.cpu_times(pid).own for pid in servers.values())
    wall = time.monotonic() - t0
    after = await asyncio.to_thread(scrape_all, stack.fleet)
    mgmt, work = Requests(), Requests()
    for name in servers:
        target = mgmt if name == stack.fleet.management.name else work
        target.add(before[name], after[name])
    window = Window(seconds=wall, management=mgmt, workload=work,
                    apiserver_cpu=(api1 - api0) / wall * 100)
    if cpu0 is not None and cpu1 is not None:
        window.controller_cpu = cpu1 - cpu0
    return window


async def versions(session: bf.Session) -> dict[str, dict[str, str]]:
    """resourceVersion of what the controller could write, to see what changed while idle."""
    out: dict[str, dict[str, str]] = {}
    for kind, ns in (("ClusterProfile", None), ("WorkloadCluster", bf.FLEET_NS),
                     ("ClusterSummary", bf.FLEET_NS)):
        items = await session.mgmt.list(api.API_VERSION, kind, namespace=ns)
        out[f"management {kind}"] = {bk.key(o): o["metadata"]["resourceVersion"] for o in items}
    for name in session.cluster_names:
        for api_version, kind in (("v1", "Namespace"), ("v1", "ConfigMap"),
                                  ("apps/v1", "Deployment")):
            items = await session.workload[name].list(
                api_version, kind, namespace=None if kind == "Namespace" else FIXING,
                label_selector=f"{api.PROFILE_NAME_LABEL}={FIXING}")
            out.setdefault(f"workload {kind}", {}).update(
                {f"{name}:{bk.key(o)}": o["metadata"]["resourceVersion"] for o in items})
    return out


def changed(before: dict[str, dict[str, str]],
            after: dict[str, dict[str, str]]) -> list[tuple[str, int, int]]:
    """(group, objects, objects added, removed or with a new resourceVersion)."""
    rows = []
    for group in before:
        old, new = before[group], after.get(group, {})
        diff = sum(1 for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        rows.append((group, len(new), diff))
    return rows


# -- drift trials -----------------------------------------------------------------------------


@dataclass
class Trial:
    cluster: str
    obj: str
    latency: float
    extra: float | None = None  # report: cleared after undo; correction: seen in status after
    note: str = ""


def _drift_rows(summaries: dict[str, Obj], cluster: str) -> list[Obj]:
    for s in summaries.values():
        if s["spec"]["clusterRef"]["name"] == cluster:
            return list((s.get("status") or {}).get("drift") or [])
    return []


def _drifted(namespace: str, cluster: str, obj: str) -> bk.Predicate:
    return lambda summaries: any(r.get("name") == obj and r.get("namespace") == namespace
                                 for r in _drift_rows(summaries, cluster))


class DriftBench:
    def __init__(self, session: bf.Session, timeout: float) -> None:
        self.session, self.timeout = session, timeout
        self.edits = 0

    def _summaries(self, profile: str, pred: bk.Predicate, what: str) -> bk.Tracker:
        return bk.Tracker(self.session.mgmt, api.API_VERSION, "ClusterSummary", pred,
                          namespace=bf.FLEET_NS,
                          label_selector=f"{api.PROFILE_NAME_LABEL}={profile}", what=what)

    async def _edit(self, cluster: str, namespace: str, obj: str, value: str) -> Obj:
        # The same request as `kubectl patch configmap OBJ --type=merge -p '{"data":{"x":…}}'`.
        return await self.session.workload[cluster].patch(
            "v1", "ConfigMap", namespace, obj, {"data": {"x": value}})

    async def report(self, cluster: str, obj: str) -> Trial:
        """Edit an object of the Continuous profile; time until its summary reports it."""
        self.edits += 1
        value = f"drift-{self.edits}"
        seen = self._summaries(REPORTING, _drifted(REPORTING, cluster, obj),
                               f"{REPORTING} summary of {cluster} to report {obj} drifted")
        async with bf.tracking(seen):
            if seen.done.is_set():
                raise bl.BenchError(f"{seen.what}: already reported before the edit")
            t0 = time.monotonic()
            await self._edit(cluster, REPORTING, obj, value)
            done = await self.session.wait_tracker(
                seen, self.timeout, diagnose=lambda: self.session.diagnose(REPORTING))
        live = await self.session.workload[cluster].get("v1", "ConfigMap", REPORTING, obj) or {}
        note = "" if (live.get("data") or {}).get("x") == value else "CORRECTED (must not be)"
        # Undo the edit and wait for the report to go, so every trial starts clean.
        drifted = _drifted(REPORTING, cluster, obj)
        cleared = self._summaries(REPORTING, lambda objs: not drifted(objs),
                                  f"{REPORTING} summary of {cluster} to clear {obj}")
        async with bf.tracking(cleared):
            t1 = time.monotonic()
            await self._edit(cluster, REPORTING, obj, CLEAN)
            undone = await self.session.wait_tracker(
                cleared, self.timeout, diagnose=lambda: self.session.diagnose(REPORTING))
        return Trial(cluster, obj, done - t0, undone - t1, note)

    async def correct(self, cluster: str, obj: str) -> Trial:
        """Edit an object of the drift-correcting profile; time until it is back."""
        self.edits += 1
        base: dict[str, int] = {}
        key = f"{FIXING}/{obj}"

        def reverted(objs: dict[str, Obj]) -> bool:
            live = objs.get(key)
            if live is None or "rv" not in base:
                return False
            return (int(live["metadata"]["resourceVersion"]) > base["rv"]
                    and (live.get("data") or {}).get("x") == CLEAN)

        back = bk.Tracker(self.session.workload[cluster], "v1", "ConfigMap", reverted,
                          namespace=FIXING, label_selector=f"{api.PROFILE_NAME_LABEL}={FIXING}",
                          what=f"{FIXING}/{obj} on {cluster} reverted")
        seen = self._summaries(FIXING, _drifted(FIXING, cluster, obj),
                               f"{FIXING} summary of {cluster} to report {obj}")
        async with bf.tracking(back, seen):
            if key not in back.objects:
                raise bl.BenchError(f"{key} is not deployed on {cluster}")
            base["rv"] = int(back.objects[key]["metadata"]["resourceVersion"])
            t0 = time.monotonic()
            await self._edit(cluster, FIXING, obj, f"drift-{self.edits}")
            done = await self.session.wait_tracker(
                back, self.timeout, diagnose=lambda: self.session.diagnose(FIXING))

            async def clean() -> bool:
                return not _drift_rows(await self.session.summaries(FIXING), cluster)

            await self.session.wait_for(clean, f"{FIXING} summary of {cluster} without drift",
                                        self.timeout, diagnose=lambda: self.session.diagnose(
                                            FIXING))
        reported = None if seen.done_at is None else seen.done_at - t0
        return Trial(cluster, obj, done - t0, reported)


def pick(rng: random.Random, clusters: Sequence[str], n: int) -> list[tuple[str, str]]:
    """n distinct (cluster, ConfigMap) pairs, each cluster once per round of len(clusters)."""
    out: list[tuple[str, str]] = []
    used: set[tuple[str, str]] = set()
    while len(out) < n:
        for cluster in rng.sample(list(clusters), len(clusters)):
            while True:
                pair = (cluster, f"cm-{rng.randrange(CONFIGMAPS):02d}")
                if pair not in used:
                    break
            used.add(pair)
            out.append(pair)
            if len(out) == n:
                break
    return out


# -- the whole run ----------------------------------------------------------------------------


@dataclass
class Results:
    idle: Window | None = None
    background: Window | None = None
    reports: list[Trial] = field(default_factory=list)
    corrections: list[Trial] = field(default_factory=list)
    deploy_s: float = 0.0
    rss_kib: int = 0
    changed: list[tuple[str, int, int]] = field(default_factory=list)


async def run(stack: bf.Stack, args: argparse.Namespace, results: Results) -> None:
    async with bf.Session.open(stack) as session:
        watch = bl.Stopwatch()
        await session.clusters_ready()
        bl.note(f"{len(session.workload)} WorkloadClusters ready after "
                f"{bl.seconds(watch.elapsed())}")
        await session.label_all(on=True)

        bl.heading(f"profile {FIXING}: ContinuousWithDriftDetection, "
                   f"{CONFIGMAPS + DEPLOYMENTS} objects + Namespace on {len(session.workload)} "
                   "clusters")
        watch = bl.Stopwatch()
        await session.apply(_policy_configmap(FIXING))
        await session.apply(_profile(FIXING, "ContinuousWithDriftDetection"))
        await session.wait_profile_ready(FIXING, len(session.workload), args.timeout * 3)
        results.deploy_s = watch.elapsed()
        bl.note(f"status.ready == {len(session.workload)} after {bl.seconds(results.deploy_s)}; "
                f"settling {args.settle:g} s")
        await asyncio.sleep(args.settle)

        bl.heading(f"idle: {args.window:g} s with nothing changing")
        before = await versions(session)
        results.idle = await measure_window(stack, args.window, controller=True)
        results.changed = changed(before, await versions(session))
        results.rss_kib = bl.proc_status_kib(stack.controller.pid, "VmRSS")
        st = (await session.profile(FIXING)).get("status") or {}
        bl.note(f"measured over {bl.seconds(results.idle.seconds)}; afterwards: ready="
                f"{st.get('ready')} drifted={st.get('drifted')} phase={st.get('phase')}")

        bl.heading(f"profile {REPORTING}: Continuous, same objects in namespace {REPORTING}")
        await session.apply(_policy_configmap(REPORTING))
        await session.apply(_profile(REPORTING, "Continuous"))
        await session.wait_profile_ready(REPORTING, len(session.workload), args.timeout * 3)
        await asyncio.sleep(2)

        bl.heading(f"drift: {args.trials} trials per profile (seed {args.seed})")
        rng = random.Random(args.seed)
        bench = DriftBench(session, args.timeout)
        report_pairs = pick(rng, session.cluster_names, args.trials)
        correct_pairs = pick(rng, session.cluster_names, args.trials)
        for i, (rp, cp) in enumerate(zip(report_pairs, correct_pairs, strict=True)):
            r = await bench.report(*rp)
            results.reports.append(r)
            await asyncio.sleep(0.5)
            c = await bench.correct(*cp)
            results.corrections.append(c)
            seen = "not seen" if c.extra is None else f"seen at {bl.seconds(c.extra)}"
            bl.note(f"trial {i + 1:2}/{args.trials}: reported {bl.seconds(r.latency)} "
                    f"({r.cluster} {r.obj}; cleared {bl.seconds(r.extra or 0)} after undo) "
                    f"{r.note}| corrected {bl.seconds(c.latency)} ({c.cluster} {c.obj}; "
                    f"report {seen})")
            await asyncio.sleep(0.5)

    bl.heading(f"background: {args.baseline:g} s with the controller stopped")
    stack.controller.stop()
    await asyncio.sleep(3)  # the ended watches are counted when they end: before the window
    results.background = await measure_window(stack, args.baseline, controller=False)
    bl.note(f"measured over {bl.seconds(results.background.seconds)}")


def report(results: Results) -> None:
    idle, bg = results.idle, results.background
    assert idle is not None and bg is not None and idle.controller_cpu is not None
    groups = (("management", "management"), ("10 workload", "workload"))

    def per_min(n: float, w: Window) -> float:
        return n / w.seconds * 60

    def reqs(w: Window, which: str) -> Requests:
        return w.management if which == "management" else w.workload

    bl.heading("idle requests (per minute, summed over the servers in the row)")
    rows: list[list[object]] = []
    for label, w in (("controller running", idle), ("controller stopped", bg)):
        for server, which in groups:
            req = reqs(w, which)
            rows.append([f"{server}, {label}", f"{per_min(req.reads, w):.1f}",
                         f"{per_min(req.writes, w):.1f}", f"{per_min(req.nonresource, w):.1f}",
                         f"{per_min(req.leases, w):.1f}", f"{req.scrapes:.0f}"])
    print(bl.table(["API server", "reads/min", "writes/min", "non-resource/min",
                    "leases/min (excl.)", "own scrapes"], rows))
    bl.note("reads = GET, LIST, WATCH (a watch is counted when it ends); writes = every other "
            "verb; leases and non-resource paths (openapi, discovery) are in neither")

    rows = []
    ctl: dict[str, tuple[float, float]] = {}
    for server, which in groups:
        run_req, bg_req = reqs(idle, which), reqs(bg, which)
        reads = per_min(run_req.reads, idle) - per_min(bg_req.reads, bg)
        writes = per_min(run_req.writes, idle) - per_min(bg_req.writes, bg)
        watches = sum(run_req.watches.values()) - sum(bg_req.watches.values())
        ctl[which] = (reads, writes)
        rows.append([server, f"{reads:.1f}", f"{writes:.1f}", watches])
    print()
    print(bl.table(["the controller's (running minus stopped)", "reads/min", "writes/min",
                    "open watches"], rows))
    for server, which in groups:
        extra = reqs(idle, which).watches - reqs(bg, which).watches
        if extra:
            bl.note(f"open watches on {server}: " + ", ".join(
                f"{res or '(none)'} {n}" for res, n in sorted(extra.items())))

    bl.heading(f"requests counted while idle ({bl.seconds(idle.seconds)}), by verb and resource")
    rows = []
    for server, which in groups:
        req = reqs(idle, which)
        for what, n in sorted(req.by_kind.items(), key=lambda kv: (-kv[1], kv[0])):
            rows.append([server, what, n, f"{per_min(n, idle):.1f}"])
    print(bl.table(["server", "verb resource code", "count", "per min"], rows))

    bl.heading("objects written while idle (resourceVersion before and after the window)")
    print(bl.table(["objects", "count", "changed"], results.changed))

    cpu = idle.controller_cpu
    pct = cpu.total / idle.seconds * 100
    bl.heading("idle CPU (% of one core)")
    print(bl.table(["process", "CPU s", "CPU %"], [
        ["controller (utime+stime)", f"{cpu.own:.2f}", f"{cpu.own / idle.seconds * 100:.2f}"],
        ["its children (cutime+cstime)", f"{cpu.children:.2f}",
         f"{cpu.children / idle.seconds * 100:.2f}"],
        ["controller total", f"{cpu.total:.2f}", f"{pct:.2f}"],
        ["11 API servers, controller running", "", f"{idle.apiserver_cpu:.2f}"],
        ["11 API servers, controller stopped", "", f"{bg.apiserver_cpu:.2f}"],
    ]))
    bl.note(f"controller RSS {bl.mib(results.rss_kib)} after the window; profile ready "
            f"{bl.seconds(results.deploy_s)} after it was applied")

    def spread(values: Sequence[float]) -> str:
        s = bl.Spread.of(values)
        return f"{s.median:.2f} [{s.low:.2f}-{s.high:.2f}]"

    bl.heading("drift latency (seconds: median [min-max])")
    reports = [t.latency for t in results.reports]
    corrections = [t.latency for t in results.corrections]
    cleared = [t.extra for t in results.reports if t.extra is not None]
    seen = [t.extra for t in results.corrections if t.extra is not None]
    fleeting = "edit → reported (ContinuousWithDriftDetection, fleeting)"
    rows = [[f"edit → reported (Continuous, {REPORTING})", len(reports), spread(reports)],
            [f"edit → corrected (ContinuousWithDriftDetection, {FIXING})", len(corrections),
             spread(corrections)],
            ["undo → report cleared (Continuous)", len(cleared), spread(cleared)],
            [fleeting, f"{len(seen)}/{len(corrections)}",
             spread(seen) if seen else "never seen in status"]]
    print(bl.table(["what", "trials", "latency"], rows))
    wrong = [t for t in results.reports if t.note]
    if wrong:
        bl.note(f"WARNING: {len(wrong)} Continuous edit(s) were corrected (must not be)")

    bl.heading("targets")
    rep, cor = bl.Spread.of(reports).median, bl.Spread.of(corrections).median
    print(bl.table(["target", "measured", "limit", "verdict"], [
        ["drift reported (median)", bl.seconds(rep), f"{REPORT_TARGET_S:.0f} s",
         bl.verdict(rep, REPORT_TARGET_S)],
        ["drift corrected (median)", bl.seconds(cor), f"{CORRECT_TARGET_S:.0f} s",
         bl.verdict(cor, CORRECT_TARGET_S)],
        ["controller writes to workload clusters, idle", f"{ctl['workload'][1]:.1f}/min",
         "0/min", bl.verdict(ctl["workload"][1], 0.0)],
        ["controller writes to management, idle", f"{ctl['management'][1]:.1f}/min",
         "0/min", bl.verdict(ctl["management"][1], 0.0)],
    ]))
    bl.note(f"idle controller CPU {pct:.2f} % of one core (no target; for comparison)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="20 s idle window and 10 s background instead of 60 s and 30 s")
    parser.add_argument("--window", type=float, help="idle window, seconds (60; --quick 20)")
    parser.add_argument("--baseline", type=float,
                        help="window with the controller stopped, seconds (30; --quick 10)")
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds between status.ready == 10 and the idle window")
    parser.add_argument("--trials", type=int, default=10, help="drift edits per profile")
    parser.add_argument("--seed", type=int, help="random seed for the (cluster, object) picks")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for one report, correction or clean-up")
    args = parser.parse_args(argv)
    args.window = args.window or (20.0 if args.quick else 60.0)
    args.baseline = args.baseline or (10.0 if args.quick else 30.0)
    args.seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    bl.exit_on_sigterm()
    print(f"drift_idle: {bl.machine()}")
    testbin.path()
    results = Results()
    with bf.running("drift_idle", "drift") as stack:
        stack.start_controller()
        asyncio.run(run(stack, args, results))
    report(results)
    return 0


if __name__ == "__main__":
    try:
        code = main()
    except bl.BenchError as exc:
        print(f"drift_idle: {exc}", file=sys.stderr)
        code = 1
    finally:
        bl.check_leftovers("drift_idle")
    sys.exit(code)
