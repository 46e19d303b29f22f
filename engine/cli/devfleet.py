"""`flotilla testbin path`, `flotilla dev-fleet up|down|status|register-virtual`.

Used by the command line only. Development tooling for tests, benchmarks
and the demo: the test binaries (etcd, kube-apiserver, …, helm, built once
from pinned Go modules) and a fleet of real API servers started from them
(`engine.devfleet`), optionally lean and each holding many namespace-scoped
"virtual" clusters (`engine.devfleet.virtual`). Product commands never load
this module.
"""

from __future__ import annotations

import argparse
import json

from engine.devfleet import fleet, testbin


def testbin_command(args: argparse.Namespace) -> int:
    print(testbin.path())
    return 0


def up_command(args: argparse.Namespace) -> int:
    options = fleet.Options(clusters=args.clusters, full=args.full, cpu_nodes=args.cpu_nodes,
                            gpu_nodes=args.gpu_nodes, gpu_product=args.gpu_product,
                            full_management=args.full_management, lean=args.lean,
                            start_window=args.start_window)
    started = fleet.up(args.dir, options)
    for cluster in started.all:
        kind = "full" if cluster.full else "lean" if cluster.lean else "api-only"
        print(f"{cluster.name:<12} {cluster.url:<26} {kind:<9} {cluster.kubeconfig}")
    return 0


def down_command(args: argparse.Namespace) -> int:
    stopped = fleet.down(args.dir)
    print(f"stopped {len(stopped)} processes")
    return 0


def status_command(args: argparse.Namespace) -> int:
    print(json.dumps(fleet.status(args.dir), indent=2))
    return 0


def register_virtual_command(args: argparse.Namespace) -> int:
    from engine.devfleet import virtual

    labels = dict(item.split("=", 1) for item in args.label)
    made = virtual.register_virtual(
        fleet.Fleet.load(args.dir), per_server=args.per_server, total=args.total,
        management_namespace=args.namespace, labels=labels, prefix=args.prefix)
    for cluster in made:
        print(f"{cluster.name:<10} {cluster.server:<12} {cluster.kubeconfig}")
    print(virtual.describe(made))
    return 0
