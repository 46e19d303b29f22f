"""Faults on a real fleet, repeated: what converges, how fast, and what was lost.

    .venv/bin/python bench/chaos.py [--quick] [--seed N] [--kills N] [--runs N] [--fleet DIR]

One fleet (management + 4 api-only workload clusters; `--fleet DIR` reuses a
running `flotilla dev-fleet`), the CRDs and catalog installed, the clusters
registered in namespace `fleet`, the stand-in chart repository on loopback
and the controller as a child process. The scenarios are tests/chaosruns.py,
the ones tests/chaos runs once in a shorter form:

  * workload API server down: cluster-4's API server stopped for 30 s (and
    at least until its summary shows ClusterUnreachable), a new revision and
    a hand edit on the other clusters meanwhile, then started again;
  * management API server restarted / etcd restarted: a cluster labelled
    while the controller's watches are down (through a second API server on
    the same etcd prefix / the moment the API answers again);
  * controller SIGKILLed: deploy, drift, staged rollout, withdrawal, each
    with the controller and its helm children SIGKILLed at a random moment
    (seeded; --kills lifecycles, 5 by default = 20 kills, --quick 2);
  * slow cluster: cluster-4's API server frozen 3 s out of every 4 while
    revisions and a hand edit reach the others.

Per scenario: runs, converged, median seconds from the end of the fault to
convergence, objects lost (expected objects plus bystanders — a ConfigMap
and a Helm release in the same namespace that no profile owns; must be 0),
redundant workload writes (by the API servers' own apiserver_request_total,
or Helm revisions beyond the first), controller crashes (exits we did not
cause, reconciles failing unhandled; must be 0), and the scenario's own
figures (medians). Exits 1 when something did not converge, was lost or
crashed. Everything started here is stopped in `finally`.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import benchlib as bl  # noqa: E402
import chaosruns  # noqa: E402
from chaoskit import Outcome  # noqa: E402
from fleetkit import FLEET_NS, ROOT, Engine, Kubectl, eventually  # noqa: E402

from engine.cli import admin  # noqa: E402
from engine.devfleet import fleet as devfleet  # noqa: E402
from engine.devfleet.chartrepo import ChartRepo  # noqa: E402

CLUSTERS = 4


def _table(results: dict[str, list[Outcome]]) -> str:
    rows = []
    for scenario, outcomes in results.items():
        row = chaosruns.summary_row(outcomes)
        figures: dict[str, list[float]] = {}
        for out in outcomes:
            for key, value in out.figures.items():
                figures.setdefault(key, []).append(value)
        extra = ", ".join(f"{k} {statistics.median(v):.2f}" if k != "mid-step"
                          else f"mid-step {int(sum(v))}/{len(v)}"
                          for k, v in figures.items() if k != "kill at s")
        rows.append([scenario, row["runs"], row["converged"], f"{row['median s']:.1f}",
                     row["lost"], row["redundant"], row["crashes"], extra])
    return bl.table(["scenario", "runs", "converged", "median s", "lost", "redundant",
                     "crashes", "figures (medians)"], rows)


def _run(args: argparse.Namespace, engine: Engine, mgmt: Kubectl, fleet: devfleet.Fleet,
         work: Path) -> dict[str, list[Outcome]]:
    results: dict[str, list[Outcome]] = {}

    def keep(outcomes: list[Outcome]) -> None:
        for out in outcomes:
            results.setdefault(out.scenario, []).append(out)
            state = "ok" if out.converged and not out.problems else f"PROBLEM {out.problems}"
            bl.note(f"{out.scenario}: {out.seconds:.1f} s, lost {out.lost}, redundant "
                    f"{out.redundant}, crashes {out.crashes} {state}")

    for i in range(args.runs):
        bl.heading(f"workload API server down {args.down:.0f} s ({i + 1}/{args.runs})")
        keep([chaosruns.workload_outage(engine, mgmt, fleet, work / f"outage-{i}",
                                        down_for=args.down)])
    for i in range(args.runs):
        bl.heading(f"management API server and etcd restarted ({i + 1}/{args.runs})")
        keep(chaosruns.control_plane_restarts(engine, mgmt, fleet, work / f"restart-{i}"))
    rng = random.Random(args.seed)
    for i in range(args.kills):
        seed = rng.randrange(1 << 30)
        bl.heading(f"controller SIGKILLed, lifecycle {i + 1}/{args.kills}, seed {seed}")
        keep(chaosruns.sigkill_lifecycle(engine, mgmt, work / f"kill-{i}", seed=seed))
    for i in range(args.runs):
        bl.heading(f"slow cluster ({i + 1}/{args.runs})")
        keep([chaosruns.slow_cluster(engine, mgmt, fleet, work / f"slow-{i}")])
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 run each, 2 kill lifecycles")
    parser.add_argument("--runs", type=int, default=None, help="runs of each other scenario")
    parser.add_argument("--kills", type=int, default=None,
                        help="SIGKILL lifecycles (4 kills each; default 5)")
    parser.add_argument("--down", type=float, default=30.0, help="workload outage, seconds")
    parser.add_argument("--seed", type=int, default=None, help="replay a run")
    parser.add_argument("--fleet", help="reuse this running dev fleet (4+ clusters)")
    args = parser.parse_args(argv)
    args.runs = args.runs or (1 if args.quick else 2)
    args.kills = args.kills or (2 if args.quick else 5)
    args.seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    bl.exit_on_sigterm()
    print(f"chaos: seed {args.seed} (replay with --seed {args.seed}); {bl.machine()}")
    work = bl.temp_dir("chaos")
    repo: ChartRepo | None = None
    engine: Engine | None = None
    try:
        if args.fleet:
            fleet = devfleet.Fleet.load(args.fleet)
        else:
            bl.heading(f"setup: 1 management + {CLUSTERS} api-only workload clusters")
            fleet = devfleet.up(work / "fleet", devfleet.Options(clusters=CLUSTERS, full=0))
        mgmt = Kubectl(fleet.management.kubeconfig)
        admin.install(fleet.management.kubeconfig, crds=ROOT / "crds",
                      catalog=ROOT / "catalog")
        for cluster in fleet.clusters:
            admin.register(fleet.management.kubeconfig, namespace=FLEET_NS, name=cluster.name,
                           cluster_kubeconfig=cluster.kubeconfig, labels={})
        repo = ChartRepo(work / "charts")
        (work / "controller").mkdir()
        engine = Engine(fleet, repo, mgmt, work / "controller")
        engine.start()
        for cluster in fleet.clusters:
            eventually(lambda c=cluster: (mgmt.get("workloadcluster", c.name, "-n", FLEET_NS)
                                          or {}).get("status", {}).get("ready"),
                       timeout=60, what=f"{cluster.name} connected")
        watch = bl.Stopwatch()
        results = _run(args, engine, mgmt, fleet, work)
        bl.heading(f"chaos: seed {args.seed}, {watch.elapsed() / 60:.1f} min")
        print(_table(results))
        problems = [p for outs in results.values() for o in outs for p in o.problems]
        for problem in problems:
            print(f"  PROBLEM: {problem}")
        return 1 if problems else 0
    finally:
        with bl.shielded():
            if engine is not None:
                engine.stop()
            if repo is not None:
                repo.close()
            if not args.fleet:
                devfleet.down(work / "fleet")
            time.sleep(0.5)
            bl.remove_tree(work)
            bl.check_leftovers("chaos.py")


if __name__ == "__main__":
    sys.exit(main())
