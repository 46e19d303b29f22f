"""Two controller replicas on one Lease: how fast the standby takes over, and what it rewrites.

    .venv/bin/python bench/failover.py [--quick] [--kills N] [--handovers N] [--window S]

One fleet (management + 5 api-only workload clusters), the CRDs and catalog
installed, every cluster registered in namespace `fleet` and labelled
`bench=on`, and two `flotilla controller --leader-elect` processes on Lease
`flotilla-system/bench-failover` with the production timings (lease 15 s,
renew deadline 10 s, retry 2 s), each with its own /readyz (`leading` or
`standby`) and /metrics. ClusterProfile `bench-failover` deploys 20 objects
(a Namespace, 16 ConfigMaps, a ServiceAccount and a ConfigMap-reading
Role and RoleBinding, from one ConfigMap policyRef) to all 5 clusters. Then:

  1. N rounds (5, --quick 2) of SIGKILL: after a random pause (so the kill
     lands anywhere in the 2 s renew cycle) the leader's process group is
     killed; timed from the kill, by polling the standby:
     * leading: its /readyz says `leading`;
     * reconciling: its `flotilla_reconcile_total{reconciler="summary"}`
       covers every ClusterSummary (each has been reconciled once: the
       first pass);
     and the writes the 5 workload API servers count from the kill until
     20 s (--window) after that first pass: `apiserver_request_total`, every
     verb but GET/LIST/WATCH (so APPLY, server-side apply, counts), for the
     resources the profile deploys, dry runs excluded. Nothing changed, so
     the target is 0. The killed replica is then started again as the new
     standby;
  2. N rounds of SIGTERM hand-over: the leader is sent SIGTERM (it releases
     the Lease on the way out); leading and reconciling timed from the
     signal as above, the writes counted the same way, the replica started
     again.

Targets: SIGKILL → leading ≤ lease + retry (17 s: a standby can only see the
lease expire on its next try), SIGKILL → reconciling ≤ 19 s, SIGTERM →
leading ≤ 2 s (medians); 0 workload writes in every round; 0 reconciles by
a standby. Everything started here is stopped in `finally`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import benchfleet as bf
import benchkube as bk
import benchlib as bl
import drift_idle
import yaml

from engine import api
from engine.devfleet import procs, testbin

Obj = dict[str, Any]
PROFILE = "bench-failover"  # also the deployed Namespace, the policy ConfigMap and the Lease
CLUSTERS = 5
CONFIGMAPS = 16
LEASE_S, RENEW_S, RETRY_S = 15.0, 10.0, 2.0  # the controller's defaults, given explicitly
DEPLOYED = frozenset({"namespaces", "configmaps", "serviceaccounts", "roles", "rolebindings"})
TAKEOVER_TARGET_S = LEASE_S + RETRY_S
RECONCILING_TARGET_S = TAKEOVER_TARGET_S + 2.0
HANDOVER_TARGET_S = 2.0


# -- the profile ------------------------------------------------------------------------------


def _objects() -> list[Obj]:
    ns = PROFILE
    docs: list[Obj] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}]
    for i in range(CONFIGMAPS):
        docs.append({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": f"cm-{i:02d}", "namespace": ns},
                     "data": {"index": str(i), "owner": "platform"}})
    docs.append({"apiVersion": "v1", "kind": "ServiceAccount",
                 "metadata": {"name": "reader", "namespace": ns}})
    docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                 "metadata": {"name": "reader", "namespace": ns},
                 "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                            "verbs": ["get", "list", "watch"]}]})
    docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                 "metadata": {"name": "reader", "namespace": ns},
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                             "name": "reader"},
                 "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}]})
    return docs


def _policy() -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": PROFILE, "namespace": api.SYSTEM_NAMESPACE},
            "data": {"objects.yaml": yaml.safe_dump_all(_objects(), sort_keys=False)}}


def _profile(sync_mode: str) -> Obj:
    return {"apiVersion": api.API_VERSION, "kind": "ClusterProfile", "metadata": {"name": PROFILE},
            "spec": {"syncMode": sync_mode,
                     "clusterSelector": {"matchLabels": {bf.LABEL: "on"}},
                     "policyRefs": [{"kind": "ConfigMap", "namespace": api.SYSTEM_NAMESPACE,
                                     "name": PROFILE}]}}


# -- replicas ---------------------------------------------------------------------------------


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:  # /readyz answers 503 while filling the cache
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, OSError):
        return 0, ""


class Replica:
    """One `flotilla controller --leader-elect` process, with its /readyz and /metrics ports."""

    def __init__(self, kubeconfig_path: str, workdir: Path, name: str) -> None:
        self.name = name
        self.health = procs.free_port()
        self.metrics = procs.free_port()
        while self.metrics == self.health:
            self.metrics = procs.free_port()
        workdir.mkdir(parents=True)
        self.ctl = bk.Controller(kubeconfig_path, workdir, {}, extra=(
            "--leader-elect", "--lease-name", PROFILE, "--lease-namespace", api.SYSTEM_NAMESPACE,
            "--lease-duration", f"{LEASE_S:g}", "--renew-deadline", f"{RENEW_S:g}",
            "--retry-period", f"{RETRY_S:g}", "--health-port", str(self.health),
            "--metrics-port", str(self.metrics)))

    def role(self) -> str:
        """`leading`, `standby`, `filling the cache` or `down`, from /readyz."""
        code, body = _get(f"http://127.0.0.1:{self.health}/readyz")
        return body.strip() if code else "down"

    def scrape(self) -> dict[str, float]:
        """flotilla_reconcile_total by reconciler, and flotilla_leader as "leader"."""
        code, body = _get(f"http://127.0.0.1:{self.metrics}/metrics")
        if code != 200:
            return {}
        out: dict[str, float] = {}
        for line in body.splitlines():
            if line.startswith("flotilla_reconcile_total{"):
                which = line.split('reconciler="', 1)[1].split('"', 1)[0]
                out[which] = float(line.rsplit(" ", 1)[1])
            elif line.startswith("flotilla_leader "):
                out["leader"] = float(line.rsplit(" ", 1)[1])
        return out

    def reconciles(self) -> float:
        return sum(v for k, v in self.scrape().items() if k != "leader")

    def signal(self, sig: int) -> None:
        """To its process group: a SIGKILLed pod loses every process in it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.ctl.pid, sig)


class Replicas:
    """Every replica started (numbered; a restart is a new one), stopped together at the end."""

    def __init__(self, stack: bf.Stack) -> None:
        self.stack = stack
        self.started: list[Replica] = []

    async def start(self, want: str, timeout: float) -> tuple[Replica, float]:
        """Start one and wait until /readyz says `want`; returns it and the time that took."""
        n = len(self.started)
        replica = Replica(self.stack.fleet.management.kubeconfig,
                          self.stack.work / f"replica-{n}", f"replica-{n}")
        self.started.append(replica)
        t0 = time.monotonic()
        replica.ctl.start()
        done = await until(lambda: replica.role() == want, f"{replica.name} /readyz {want}",
                           timeout, 0.1, [replica])
        return replica, done - t0

    def stop_all(self) -> None:
        for replica in self.started:
            replica.ctl.stop()

    def keep_logs(self, script: str) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for replica in self.started:
            kept = bl.TMP / f"flotilla-bench-failover-{stamp}-{replica.name}.log"
            with contextlib.suppress(OSError):
                kept.write_bytes(replica.ctl.log.read_bytes())
                print(f"{script}: {replica.name}'s log is kept in {kept}", file=sys.stderr)


async def until(probe: Callable[[], bool], what: str, timeout: float, interval: float,
                alive: Sequence[Replica]) -> float:
    """Poll a blocking probe (in a thread) until true; the monotonic time its answer came."""
    deadline = time.monotonic() + timeout
    while True:
        for replica in alive:
            replica.ctl.check_alive()
        if await asyncio.to_thread(probe):
            return time.monotonic()
        if time.monotonic() > deadline:
            tails = "\n".join(f"{r.name} (last lines of {r.ctl.log}):\n{r.ctl.tail(15)}"
                              for r in alive)
            raise bl.BenchError(f"timed out after {timeout:g} s waiting for {what}\n{tails}")
        await asyncio.sleep(interval)


# -- workload writes --------------------------------------------------------------------------


def writes(before: dict[str, drift_idle.Scrape], after: dict[str, drift_idle.Scrape],
           clusters: Sequence[str]) -> Counter[str]:
    """Mutating requests for the deployed resources between two scrapes, by verb and resource."""
    out: Counter[str] = Counter()
    for name in clusters:
        old = before[name].requests
        for key, value in after[name].requests.items():
            n = value - old.get(key, 0.0)
            labels = dict(key)
            if (n <= 0 or labels.get("verb") in drift_idle.READ_VERBS
                    or labels.get("resource") not in DEPLOYED or labels.get("dry_run")):
                continue
            sub = f"/{labels['subresource']}" if labels.get("subresource") else ""
            out[f"{labels.get('verb')} {labels.get('resource')}{sub} "
                f"{labels.get('code', '')}"] += int(n)
    return out


def _named(counts: Counter[str]) -> str:
    return ", ".join(f"{what} x{n}" for what, n in sorted(counts.items())) or "none"


# -- the rounds -------------------------------------------------------------------------------


@dataclass
class Round:
    how: str  # SIGKILL or SIGTERM
    leading: float  # signal → the standby's /readyz says leading
    reconciling: float  # signal → its summary reconciles cover every ClusterSummary
    writes: Counter[str]
    standby_reconciles: float  # what the standby had reconciled before it led
    exited: float | None = None  # SIGTERM: signal → the old leader's process gone
    restart: float = 0.0  # the replacement replica: start → /readyz standby


@dataclass
class Results:
    rounds: list[Round] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)  # every replica: start → role
    deploy_writes: Counter[str] = field(default_factory=Counter)
    deploy_s: float = 0.0


class Bench:
    def __init__(self, session: bf.Session, replicas: Replicas, args: argparse.Namespace,
                 results: Results) -> None:
        self.session, self.replicas, self.args, self.results = session, replicas, args, results
        self.rng = random.Random(args.seed)
        self.leader: Replica | None = None
        self.standby: Replica | None = None

    async def scrape(self) -> dict[str, drift_idle.Scrape]:
        return await asyncio.to_thread(drift_idle.scrape_all, self.session.stack.fleet)

    async def setup(self) -> None:
        first, took = await self.replicas.start("leading", 90)
        self.results.starts.append(took)
        self.session.controller = first.ctl  # what Session's waits check is alive
        bl.note(f"{first.name} leading after {bl.seconds(took)} (pid {first.ctl.pid}, "
                f"log {first.ctl.log})")
        second, took = await self.replicas.start("standby", 90)
        self.results.starts.append(took)
        bl.note(f"{second.name} standing by after {bl.seconds(took)} (pid {second.ctl.pid})")
        self.leader, self.standby = first, second
        await self.session.clusters_ready()
        await self.session.label_all(on=True)

        n = len(self.session.workload)
        bl.heading(f"profile {PROFILE}: {self.args.sync_mode}, {len(_objects())} objects on "
                   f"{n} clusters")
        before = await self.scrape()
        watch = bl.Stopwatch()
        await self.session.apply(_policy())
        await self.session.apply(_profile(self.args.sync_mode))
        await self.session.wait_profile_ready(PROFILE, n, self.args.timeout)
        self.results.deploy_s = watch.elapsed()
        await asyncio.sleep(3)  # the last applies are counted before the rounds start
        self.results.deploy_writes = writes(before, await self.scrape(), self.session.cluster_names)
        bl.note(f"ready on {n} after {bl.seconds(self.results.deploy_s)}; the deploy counted "
                f"{sum(self.results.deploy_writes.values())} workload writes "
                f"({_named(self.results.deploy_writes)}): the counter sees the controller")

    async def round(self, sig: int) -> Round:
        leader, standby = self.leader, self.standby
        assert leader is not None and standby is not None
        how = signal.Signals(sig).name
        # The standby has tried the Lease at least once; the signal lands anywhere in the
        # leader's renew cycle.
        await asyncio.sleep(RETRY_S + 1 + self.rng.uniform(0, RETRY_S))
        if standby.role() != "standby" or leader.role() != "leading":
            raise bl.BenchError(f"before {how}: {leader.name} is {leader.role()!r}, "
                                f"{standby.name} is {standby.role()!r}")
        idle = standby.scrape()
        summaries = len(await self.session.summaries(PROFILE))
        before = await self.scrape()
        t0 = time.monotonic()
        leader.signal(sig)
        self.session.controller = standby.ctl
        proc = leader.ctl.proc
        assert proc is not None
        gone = asyncio.create_task(_exit_time(proc))
        leading = await until(lambda: standby.role() == "leading", f"{standby.name} to lead",
                              LEASE_S + 4 * RETRY_S + 10, 0.1 if sig == signal.SIGKILL else 0.05,
                              [standby])
        reconciling = await until(lambda: standby.scrape().get("summary", 0) >= summaries,
                                  f"{standby.name} to reconcile all {summaries} summaries",
                                  self.args.timeout, 0.1, [standby])
        exited = await gone - t0
        leader.ctl.stop()  # reaped already; kills whatever its process group left behind
        await asyncio.sleep(self.args.window)
        counted = writes(before, await self.scrape(), self.session.cluster_names)
        gauge = standby.scrape().get("leader")
        if gauge != 1:
            bl.note(f"WARNING: {standby.name} leads but flotilla_leader is {gauge}")
        await self.session.wait_profile_ready(PROFILE, len(self.session.workload), 30)
        replacement, restart = await self.replicas.start("standby", 90)
        self.results.starts.append(restart)
        self.leader, self.standby = standby, replacement
        return Round(how, leading - t0, reconciling - t0, counted,
                     sum(v for k, v in idle.items() if k != "leader"),
                     exited if sig == signal.SIGTERM else None, restart)

    async def run(self) -> None:
        await self.setup()
        for sig, count in ((signal.SIGKILL, self.args.kills),
                           (signal.SIGTERM, self.args.handovers)):
            bl.heading(f"{count} rounds of {signal.Signals(sig).name} to the leader")
            for i in range(count):
                r = await self.round(sig)
                self.results.rounds.append(r)
                extra = "" if r.exited is None else f", old leader exited {bl.seconds(r.exited)}"
                bl.note(f"round {i + 1}/{count}: leading {bl.seconds(r.leading)}, reconciling "
                        f"{bl.seconds(r.reconciling)}{extra}; workload writes "
                        f"{sum(r.writes.values())} ({_named(r.writes)}); new standby after "
                        f"{bl.seconds(r.restart)}")


async def _exit_time(proc: subprocess.Popen[bytes]) -> float:
    """When the process is gone (waited for in a thread, so the polls go on meanwhile)."""
    await asyncio.to_thread(proc.wait, 30)
    return time.monotonic()


async def run(stack: bf.Stack, replicas: Replicas, args: argparse.Namespace,
              results: Results) -> None:
    async with bf.Session.open(stack) as session:
        await Bench(session, replicas, args, results).run()


@contextlib.contextmanager
def replicas_of(stack: bf.Stack, script: str) -> Iterator[Replicas]:
    group = Replicas(stack)
    try:
        yield group
    except Exception:
        group.keep_logs(script)
        raise
    finally:
        with bl.shielded():
            group.stop_all()


# -- report -----------------------------------------------------------------------------------


def report(results: Results, args: argparse.Namespace) -> None:
    kills = [r for r in results.rounds if r.how == "SIGKILL"]
    terms = [r for r in results.rounds if r.how == "SIGTERM"]

    def row(what: str, values: Sequence[float], unit: str, target: str,
            verdict: str) -> list[object]:
        s = bl.Spread.of(values)
        fmt = bl.seconds if unit == "s" else (lambda v: f"{v:.0f}")
        return [what, fmt(s.median), fmt(s.low), fmt(s.high), s.count, target, verdict]

    def writes_row(what: str, rounds: Sequence[Round]) -> list[object]:
        counts = [float(sum(r.writes.values())) for r in rounds]
        return row(what, counts, "", "0 every round", bl.verdict(max(counts), 0))

    rows: list[list[object]] = []
    if kills:
        leading = bl.Spread.of([r.leading for r in kills]).median
        rec = bl.Spread.of([r.reconciling for r in kills]).median
        rows += [
            row("SIGKILL → standby leading (/readyz)", [r.leading for r in kills], "s",
                f"≤ {TAKEOVER_TARGET_S:g} s", bl.verdict(leading, TAKEOVER_TARGET_S)),
            row("SIGKILL → standby reconciling (every summary)",
                [r.reconciling for r in kills], "s", f"≤ {RECONCILING_TARGET_S:g} s",
                bl.verdict(rec, RECONCILING_TARGET_S)),
            writes_row(f"SIGKILL: workload writes until first pass + {args.window:g} s", kills),
        ]
    if terms:
        handover = bl.Spread.of([r.leading for r in terms]).median
        rows += [
            row("SIGTERM → standby leading (hand-over)", [r.leading for r in terms], "s",
                f"≤ {HANDOVER_TARGET_S:g} s", bl.verdict(handover, HANDOVER_TARGET_S)),
            row("SIGTERM → standby reconciling (every summary)",
                [r.reconciling for r in terms], "s", "—", ""),
            row("SIGTERM → old leader exited", [r.exited or 0.0 for r in terms], "s", "—", ""),
            writes_row(f"SIGTERM: workload writes until first pass + {args.window:g} s", terms),
        ]
    standby = [r.standby_reconciles for r in results.rounds]
    rows += [row("reconciles by the standby before it led", standby, "", "0 every round",
                 bl.verdict(max(standby), 0)),
             row("replica start → /readyz leading or standby", results.starts, "s", "—", "")]
    bl.heading(f"failover: {CLUSTERS} clusters, {len(_objects())} objects each, lease "
               f"{LEASE_S:g} s / renew {RENEW_S:g} s / retry {RETRY_S:g} s")
    print(bl.table(["figure", "median", "min", "max", "rounds", "target", "verdict"], rows))
    bl.note("writes = every verb but GET/LIST/WATCH (APPLY included) on the 5 workload API "
            f"servers, for {', '.join(sorted(DEPLOYED))}, dry runs excluded; summed over the "
            f"clusters, from the signal until {args.window:g} s after the new leader's "
            "first pass")
    bl.note(f"deploy (for comparison): {sum(results.deploy_writes.values())} writes "
            f"({_named(results.deploy_writes)}), ready after {bl.seconds(results.deploy_s)}")
    bl.note(f"{bl.machine()} (at the end; seed {args.seed})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of each instead of 5")
    parser.add_argument("--kills", type=int, help="SIGKILL rounds (5; --quick 2)")
    parser.add_argument("--handovers", type=int, help="SIGTERM rounds (5; --quick 2)")
    parser.add_argument("--window", type=float, default=20.0,
                        help="seconds after the new leader's first pass still counted")
    parser.add_argument("--sync-mode", default="Continuous",
                        choices=("Continuous", "ContinuousWithDriftDetection"),
                        help="the profile's syncMode")
    parser.add_argument("--seed", type=int, help="random seed for the pauses before a signal")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to wait for the profile or a first pass")
    args = parser.parse_args(argv)
    rounds = 2 if args.quick else 5
    args.kills = rounds if args.kills is None else args.kills
    args.handovers = rounds if args.handovers is None else args.handovers
    args.seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    if args.kills < 0 or args.handovers < 0 or args.kills + args.handovers == 0:
        parser.error("--kills and --handovers must not be negative, nor both 0")
    bl.exit_on_sigterm()
    print(f"failover: {bl.machine()}")
    testbin.path()
    results = Results()
    with bf.running("failover", "failover", clusters=CLUSTERS) as stack, \
            replicas_of(stack, "failover") as replicas:
        asyncio.run(run(stack, replicas, args, results))
    report(results, args)
    return 0


if __name__ == "__main__":
    try:
        code = main()
    except bl.BenchError as exc:
        print(f"failover: {exc}", file=sys.stderr)
        code = 1
    finally:
        bl.check_leftovers("failover")
    sys.exit(code)
