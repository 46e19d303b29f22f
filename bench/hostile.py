"""Hostile input: generated objects against a real fleet, counted (issue 12, item 2).

    .venv/bin/python bench/hostile.py [--quick] [--count N] [--seed N] [--fleet DIR]

Starts 1 management + 2 workload clusters (the first full) unless `--fleet`
names a running one, installs the CRDs and catalog, runs the controller, and
runs `tests/hostilerun.py`: a good ClusterProfile is deployed, then `--count`
objects drawn by `tests/hostilekit.py` (from the CRDs' schemas, half of them
made into a wrong variant) are created. Prints the table: generated, rejected
by schema, rejected by CEL, accepted, conditions raised (accepted wrong
variants whose condition names the field), missing conditions, crashes
(unhandled tracebacks in the controller log; must be 0), good objects touched
(must be 0). Exit 1 when a must-be-0 figure is not, or a condition is missing.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import benchlib as bl  # noqa: E402
import hostilerun  # noqa: E402
from fleetkit import FLEET_NS, ROOT, Engine, Kubectl, eventually  # noqa: E402

from engine.cli import admin  # noqa: E402
from engine.devfleet import fleet as devfleet  # noqa: E402
from engine.devfleet.chartrepo import ChartRepo  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 objects instead of 400")
    parser.add_argument("--count", type=int, default=None, help="objects to generate")
    parser.add_argument("--seed", type=int, default=None, help="replay a run")
    parser.add_argument("--fleet", help="reuse this running dev fleet (2+ clusters, 1 full)")
    args = parser.parse_args(argv)
    count = args.count or (200 if args.quick else 400)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    bl.exit_on_sigterm()
    print(f"hostile: seed {seed} (replay with --seed {seed}), {count} objects; {bl.machine()}")
    work = bl.temp_dir("hostile")
    repo: ChartRepo | None = None
    engine: Engine | None = None
    mgmt: Kubectl | None = None
    try:
        if args.fleet:
            fleet = devfleet.Fleet.load(args.fleet)
        else:
            bl.heading("setup: 1 management + 2 workload clusters (1 full)")
            fleet = devfleet.up(work / "fleet", devfleet.Options(clusters=2, full=1))
        mgmt = Kubectl(fleet.management.kubeconfig)
        admin.install(fleet.management.kubeconfig, crds=ROOT / "crds", catalog=ROOT / "catalog")
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
        bl.heading("hostile input")
        t = hostilerun.run(engine, mgmt, count=count, seed_=seed)
        print(bl.table(["generated", "rejected by schema", "rejected by CEL", "accepted",
                        "conditions raised", "missing", "crashes", "good objects touched",
                        "seconds"],
                       [[t.generated, t.schema, t.cel, t.accepted, t.conditions,
                         len(t.missing), t.crashes, t.good_touched, f"{t.seconds:.0f}"]]))
        for missing in t.missing:
            print(f"  MISSING condition: {missing}")
        return 1 if t.crashes or t.good_touched or t.missing else 0
    finally:
        with bl.shielded():
            if mgmt is not None and args.fleet:
                hostilerun.cleanup(mgmt)
            if engine is not None:
                engine.stop()
            if repo is not None:
                repo.close()
            if not args.fleet:
                devfleet.down(work / "fleet")
            time.sleep(0.5)
            bl.remove_tree(work)
            bl.check_leftovers("hostile.py")


if __name__ == "__main__":
    sys.exit(main())
