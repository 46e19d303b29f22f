"""The catalog's REAL upstream charts on a full dev-fleet cluster: install, upgrade, idle.

    .venv/bin/python bench/real_charts.py [--quick] [--idle S] [--baseline S] [--reps N]
                                          [--settle S] [--timeout S]

One fleet (management + 1 full workload cluster), CRDs and catalog installed,
the cluster registered, the real charts (`chartrepo.real_charts()`) served on
loopback and reached through the controller's mirror ConfigMap, the three
example profiles prepared by `engine.devfleet.realcharts` (dev-fleet values,
selector `bench=on`; gpu-operator 25.10.1 and cert-manager 1.20.3 so the chart
change below is a real upgrade). Then:

  1. install: label the cluster; per release, from the label to helm's
     release Secret (first revision) showing status=deployed, and to the
     ClusterSummary's service row turning Provisioned;
  2. values change, --reps times (3; --quick 1): kube-prometheus-stack
     retention 15d->10d (then back and forth); chart change once:
     gpu-operator 25.10.1->26.3.3 and cert-manager 1.20.3->~1.21.0;
  3. idle (600 s; --quick 60 s) with everything Ready: drift reports, helm
     revisions, and writes to the workload cluster; then the controller is
     stopped and the writes are counted again (--baseline 120 s; --quick 60 s).

Times come from watch events (helm's Secrets on the workload cluster, the
summaries on management), stamped when they arrive. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import benchfleet as bf
import benchkube as bk
import benchlib as bl
import chartwatch as cw
import drift_idle
import realchartsreport as report

from engine import api
from engine.cli import admin
from engine.devfleet import chartrepo, fleet, procs, realcharts, testbin

Obj = dict[str, Any]
SCRIPT = "real_charts"
OLD = {"gpu-operator": "25.10.1", "cert-manager": "1.20.3"}
NEW = {"gpu-operator": "26.3.3", "cert-manager": "~1.21.0"}
KPS = "kube-prometheus-stack"


@contextlib.contextmanager
def running(charts: Path) -> Iterator[tuple[bf.Stack, chartrepo.ChartRepo, int]]:
    """bf.running's setup with one FULL workload cluster (it starts api-only ones) + charts."""
    work = bl.temp_dir("realcharts")
    fleet_dir = work / "fleet"
    controller: bk.Controller | None = None
    repo: chartrepo.ChartRepo | None = None
    try:
        bl.heading("setup: 1 management + 1 full workload cluster, real charts on loopback")
        watch = bl.Stopwatch()
        started = fleet.up(fleet_dir, fleet.Options(clusters=1, full=1))
        mgmt_kc = started.management.kubeconfig
        admin.install(mgmt_kc, crds=bl.ROOT / "crds", catalog=bl.ROOT / "catalog")
        for cluster in started.clusters:
            admin.register(mgmt_kc, namespace=bf.FLEET_NS, name=cluster.name,
                         cluster_kubeconfig=cluster.kubeconfig, labels={})
        repo = chartrepo.ChartRepo(work / "chart-repo", charts=charts)
        bl.note(f"ready in {bl.seconds(watch.elapsed())}; charts {charts} at {repo.url}")
        controller = bk.Controller(mgmt_kc, work, {})  # mirrors come from the ConfigMap
        port = procs.free_port()
        controller.argv += ["--metrics-port", str(port)]
        yield bf.Stack(script=SCRIPT, work=work, fleet=started, controller=controller), repo, port
    except Exception:
        if controller is not None and controller.log.exists():
            kept = bl.TMP / f"flotilla-bench-controller-{time.strftime('%Y%m%d-%H%M%S')}.log"
            with contextlib.suppress(OSError):
                kept.write_bytes(controller.log.read_bytes())
                print(f"{SCRIPT}: the controller's log is kept in {kept}", file=sys.stderr)
        raise
    finally:
        with bl.shielded():
            if controller is not None:
                controller.stop()
            if repo is not None:
                repo.close()
            fleet.down(fleet_dir)
            bl.remove_tree(work)


class Run:
    """One deploy of the example profiles and its watched timelines."""

    def __init__(self, session: bf.Session, args: argparse.Namespace,
                 mirrors: dict[str, str]) -> None:
        self.session, self.args, self.mirrors = session, args, mirrors
        self.cluster = session.cluster_names[0]
        self.kubeconfig = session.stack.fleet.clusters[0].kubeconfig
        self.docs = realcharts.example_profiles(bf.LABEL)
        self.releases = cw.Timeline(cw.release_states)
        self.rows = cw.Timeline(cw.summary_states)
        self.res = report.Results()
        self.helm = cw.HelmRuns(session.controller.pid)

    def spec(self, stem: str) -> Obj:
        doc = next(d for d in self.docs[stem] if d["kind"] == "ClusterProfile")
        spec: Obj = doc["spec"]
        return spec

    def service(self, stem: str, name: str) -> Obj:
        found: Obj = next(s for s in self.spec(stem)["services"] if s["name"] == name)
        return found

    def trackers(self) -> list[bk.Tracker]:
        work = self.session.workload[self.cluster]
        return [cw.MetadataTracker(work, "v1", "Secret", self.releases.observe,
                                   label_selector="owner=helm", what="helm release Secrets"),
                self.rows.tracker(self.session.mgmt, api.API_VERSION, api.CLUSTER_SUMMARY,
                                  what="ClusterSummaries")]

    def revisions(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for key in self.releases.last:
            _, release, rev = key
            out[release] = max(out.get(release, 0), rev)
        return out

    def profile_of(self, release: str) -> str:
        return next((k[1] for k in self.rows.last if k[0] == "row" and k[2] == release), "")

    def timing(self, release: str, t0: float, w0: float, base_rev: int,
               base_hash: str | None) -> report.Timing | None:
        """From t0 to helm's next revision deployed and to the row Provisioned with a new hash."""
        ns = realcharts.RELEASES[release]
        keys = sorted(k for k in self.releases.last
                      if k[:2] == (ns, release) and k[2] > base_rev)
        deployed = [c for k in keys if (c := self.releases.first(
            k, lambda s: s[0] == "deployed", t0)) is not None]
        row_key = ("row", self.profile_of(release), release)
        row = self.rows.first(row_key, lambda s: s[0] == "Provisioned" and s[1] != base_hash, t0)
        if not deployed or row is None:
            return None
        done = deployed[0]
        began = self.releases.first(done.key, lambda s: True, t0)
        failed = sum(1 for k in keys if self.releases.last[k][0] == "failed")
        applied = cw.epoch(row.state[2])
        executed = self.helm.last_start(release, t0, done.at)
        return report.Timing(
            release=release, version=str(row.state[3]), deployed=done.at - t0,
            executed=None if executed is None else executed - t0,
            helm=done.at - began.at if began else None, row=row.at - t0,
            applied=None if applied is None else applied - w0, failed=failed)

    async def wait_ready(self, what: str, done: Any = None) -> None:
        """Every profile Ready on the cluster (playing the operators' part), and `done()`."""
        names = list(self.docs)

        async def probe() -> bool:
            await asyncio.to_thread(realcharts.play_operators, self.kubeconfig)
            for name in names:
                st = (await self.session.profile(name)).get("status") or {}
                if st.get("phase") != "Ready" or st.get("ready") != 1:
                    return False
            return bool(done()) if done else True

        async def diagnose() -> str:
            return "".join([await self.session.diagnose(n) for n in names])

        await self.session.wait_for(probe, what, self.args.timeout, interval=1.0,
                                    diagnose=diagnose)

    async def change(self, what: str, stem: str, releases: list[str]) -> list[report.Timing]:
        """Apply the edited profile `stem`; time each release's upgrade."""
        base = self.revisions()
        hashes = {r: (self.rows.last.get(("row", stem, r)) or (None, None))[1] for r in releases}
        doc = next(d for d in self.docs[stem] if d["kind"] == "ClusterProfile")
        t0, w0 = time.monotonic(), time.time()
        await self.session.apply(doc)
        found: dict[str, report.Timing] = {}

        def done() -> bool:
            for r in releases:
                if r not in found and (t := self.timing(r, t0, w0, base[r], hashes[r])):
                    found[r] = t
            return len(found) == len(releases)

        await self.wait_ready(f"{what}: {', '.join(releases)} upgraded, profiles Ready", done)
        moved = {r: v for r, v in self.revisions().items()
                 if r not in releases and v != base.get(r)}
        if moved:
            bl.note(f"WARNING: {what} also moved {moved}")
        return [found[r] for r in releases]

    async def install(self) -> None:
        bl.heading("install: the three example profiles, then the label")
        for name, value in OLD.items():
            self.service("gpu-inference", name)["version"] = value
        for docs in self.docs.values():
            for doc in docs:
                await self.session.apply(doc)
        await self.session.apply(realcharts.mirror_configmap(self.mirrors))
        t0, w0 = time.monotonic(), time.time()
        await self.session.label_all(on=True)
        found: dict[str, report.Timing] = {}

        def done() -> bool:
            for r in realcharts.RELEASES:
                if r not in found and (t := self.timing(r, t0, w0, 0, None)):
                    found[r] = t
            return len(found) == len(realcharts.RELEASES)

        await self.wait_ready("every release deployed and every profile Ready", done)
        self.res.install = sorted(found.values(), key=lambda t: t.deployed)
        bl.note(f"everything Ready after {bl.seconds(time.monotonic() - t0)}")

    async def upgrades(self) -> None:
        bl.heading(f"values change: {KPS} retention, {self.args.reps} time(s)")
        for i in range(self.args.reps):
            value = ("10d", "15d")[i % 2]
            before = self.service("monitoring-baseline", KPS)["parameters"]["retention"]
            self.service("monitoring-baseline", KPS)["parameters"]["retention"] = value
            timing = (await self.change("retention", "monitoring-baseline", [KPS]))[0]
            self.res.values.append(timing)
            prom = await self.session.workload[self.cluster].list(
                "monitoring.coreos.com/v1", "Prometheus", namespace="monitoring")
            seen = prom[0]["spec"].get("retention") if prom else None
            bl.note(f"{before} -> {value}: deployed after {bl.seconds(timing.deployed)}; "
                    f"Prometheus spec.retention={seen}")
            await asyncio.sleep(2)
        bl.heading("chart change: gpu-operator 25.10.1 -> 26.3.3, cert-manager 1.20.3 -> ~1.21.0")
        for name, value in NEW.items():
            self.service("gpu-inference", name)["version"] = value
        self.res.charts = await self.change("chart change", "gpu-inference", list(NEW))
        for t in self.res.charts:
            bl.note(f"{t.release} {t.version}: deployed after {bl.seconds(t.deployed)}")

    async def idle(self, port: int) -> None:
        await self.wait_ready("everything Ready before the idle window")

        def drifted() -> list[str]:  # "profile: object paths" of every drift entry now
            return [f"{k[1]}: {obj} {', '.join(paths)}" for k, s in self.rows.last.items()
                    if k[0] == "drift" for obj, paths, _ in s]

        async def no_drift() -> bool:
            return not drifted()

        try:
            await self.session.wait_for(no_drift, "no drift reported", 120, interval=1)
        except bl.BenchError:
            # Measured anyway: what stays drifted is part of the result.
            bl.note(f"WARNING: still drifted when the idle window starts: {drifted()}")
        await asyncio.sleep(self.args.settle)
        bl.heading(f"idle: {self.args.idle:g} s with nothing changing")
        stack = self.session.stack
        win = report.Idle(revisions_before=self.revisions())
        metrics = {"flotilla_drift_detected_total": "", "flotilla_drift_corrected_total": "",
                   "flotilla_drift_dry_runs_total": "result"}
        first = {m: cw.controller_metric(port, m, by) for m, by in metrics.items()}
        scrape0 = await asyncio.to_thread(drift_idle.scrape_all, stack.fleet)
        cpu0 = bl.cpu_times(stack.controller.pid)
        t0, w0 = time.monotonic(), time.time()
        win.drift_entries = set(drifted())
        while (left := t0 + self.args.idle - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 60.0))
            stack.controller.check_alive()
            drifts = [c for c in self.rows.between(t0, time.monotonic())
                      if c.key[0] == "drift" and c.state]
            moved = sum(v - win.revisions_before.get(r, 0) for r, v in self.revisions().items())
            bl.note(f"{time.monotonic() - t0:4.0f} s: status.drift changed to a non-empty list "
                    f"{len(drifts)} time(s); new helm revisions {moved}")
        t1, w1 = time.monotonic(), time.time()
        win.seconds = t1 - t0
        win.controller_cpu = (bl.cpu_times(stack.controller.pid) - cpu0).total
        scrape1 = await asyncio.to_thread(drift_idle.scrape_all, stack.fleet)
        win.metrics = {m: cw.controller_metric(port, m, by) - first[m]
                       for m, by in metrics.items()}
        for name in self.docs:
            for summary in (await self.session.summaries(name)).values():
                for cond in (summary.get("status") or {}).get("conditions") or []:
                    if cond.get("type") in ("Drifted", "DriftFight") and \
                            cond.get("status") == "True":
                        win.conditions.append(f"{name}: {cond['type']}: {cond.get('message')}")
        work = stack.fleet.clusters[0].name
        win.workload = cw.write_counts(scrape0[work], scrape1[work])
        mgmt = stack.fleet.management.name
        win.management = cw.write_counts(scrape0[mgmt], scrape1[mgmt])
        win.written = await cw.written_objects(self.session.workload[self.cluster], w0, w1)
        win.changes = self.rows.between(t0, t1) + self.releases.between(t0, t1)
        for change in win.changes:
            if change.key[0] == "drift":
                win.drift_entries |= {f"{change.key[1]}: {obj} {', '.join(paths)}"
                                      for obj, paths, _ in change.state}
        win.revisions_after = self.revisions()
        self.res.idle = win

    async def background(self, seconds: float) -> None:
        """The same write counts with the controller stopped: the fleet's own writers."""
        stack = self.session.stack
        bl.heading(f"background: {seconds:g} s with the controller stopped")
        stack.controller.stop()
        await asyncio.sleep(3)
        before = await asyncio.to_thread(drift_idle.scrape_all, stack.fleet)
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        after = await asyncio.to_thread(drift_idle.scrape_all, stack.fleet)
        work = stack.fleet.clusters[0].name
        self.res.background = cw.write_counts(before[work], after[work])
        self.res.background_seconds = time.monotonic() - t0


async def run(stack: bf.Stack, repo: chartrepo.ChartRepo, port: int,
              args: argparse.Namespace) -> report.Results:
    async with bf.Session.open(stack) as session:
        stack.start_controller()
        await session.clusters_ready()
        bench = Run(session, args, repo.mirrors())
        async with bf.tracking(*bench.trackers()):
            async with cw.polling(bench.helm):  # not while idle: it costs CPU
                await bench.install()
                await bench.upgrades()
            await bench.idle(port)
        await bench.background(args.baseline)
        return bench.res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="60 s idle, 60 s background, 1 values change")
    parser.add_argument("--idle", type=float, help="idle window, seconds (600; --quick 60)")
    parser.add_argument("--baseline", type=float,
                        help="window with the controller stopped, seconds (120; --quick 60)")
    parser.add_argument("--reps", type=int, help="values changes (3; --quick 1)")
    parser.add_argument("--settle", type=float, help="seconds before the idle window (30; 10)")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds to wait for one install or upgrade to be Ready")
    args = parser.parse_args(argv)
    args.idle = args.idle or (60.0 if args.quick else 600.0)
    # At least a minute: the node simulator refreshes node status once a minute.
    args.baseline = args.baseline or (60.0 if args.quick else 120.0)
    args.reps = args.reps or (1 if args.quick else 3)
    args.settle = args.settle if args.settle is not None else (10.0 if args.quick else 30.0)
    charts = chartrepo.real_charts()
    if charts is None:
        print(f"{SCRIPT}: the real upstream charts are missing: set "
              f"${chartrepo.REAL_CHARTS_ENV} or put them in {bl.ROOT.parent / 'shared/charts'}",
              file=sys.stderr)
        return 2
    bl.exit_on_sigterm()
    print(f"{SCRIPT}: {bl.machine()}")
    testbin.path()
    with running(charts) as (stack, repo, port):
        results = asyncio.run(run(stack, repo, port, args))
    report.report(results, args)
    return 0


if __name__ == "__main__":
    try:
        code = main()
    except bl.BenchError as exc:
        print(f"{SCRIPT}: {exc}", file=sys.stderr)
        code = 1
    finally:
        bl.check_leftovers(SCRIPT)
    sys.exit(code)
