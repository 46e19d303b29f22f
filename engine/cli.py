"""The `flotilla` command line (DESIGN.md §2).

Each sub-command is a thin wrapper that parses arguments and calls one
module: testbin, devfleet, the management-cluster operations in
`engine.ops`, or the controller (imported lazily: only `controller` needs
kopf). Errors print one clear line and exit non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from engine import errors


def _testbin(args: argparse.Namespace) -> int:
    from engine.devfleet import testbin

    print(testbin.path())
    return 0


def _fleet_up(args: argparse.Namespace) -> int:
    from engine.devfleet import fleet

    options = fleet.Options(clusters=args.clusters, full=args.full, cpu_nodes=args.cpu_nodes,
                            gpu_nodes=args.gpu_nodes, gpu_product=args.gpu_product,
                            full_management=args.full_management)
    started = fleet.up(args.dir, options)
    for cluster in started.all:
        kind = "full" if cluster.full else "api-only"
        print(f"{cluster.name:<12} {cluster.url:<26} {kind:<9} {cluster.kubeconfig}")
    return 0


def _fleet_down(args: argparse.Namespace) -> int:
    from engine.devfleet import fleet

    stopped = fleet.down(args.dir)
    print(f"stopped {len(stopped)} processes")
    return 0


def _fleet_status(args: argparse.Namespace) -> int:
    from engine.devfleet import fleet

    print(json.dumps(fleet.status(args.dir), indent=2))
    return 0


def _install(args: argparse.Namespace) -> int:
    from engine import ops

    for line in ops.install(args.kubeconfig, crds=Path(args.crds), catalog=Path(args.catalog)):
        print(line)
    return 0


def _register(args: argparse.Namespace) -> int:
    from engine import ops

    labels = dict(item.split("=", 1) for item in args.label)
    print(ops.register(args.kubeconfig, namespace=args.namespace, name=args.name,
                       cluster_kubeconfig=args.cluster_kubeconfig, labels=labels))
    return 0


def _controller(args: argparse.Namespace) -> int:
    from engine.controller import context
    from engine.controller import main as controller_main

    mirrors = dict(item.split("=", 1) for item in args.chart_mirror)
    settings = context.Settings(withdraw_timeout=args.withdraw_timeout)
    controller_main.run(args.kubeconfig, mirrors=mirrors, mirror_configmap=args.mirror_configmap,
                        verbose=args.verbose, metrics_port=args.metrics_port, settings=settings)
    return 0


def _plan(args: argparse.Namespace) -> int:
    from engine import ops

    return ops.plan_command(args.kubeconfig, args.profile)


def _rollout(args: argparse.Namespace) -> int:
    from engine import rollouts_cli

    print(rollouts_cli.run(args.kubeconfig, args.action, args.profile,
                           to_revision=args.to_revision, stage=args.stage))
    return 0


def _retry(args: argparse.Namespace) -> int:
    from engine import ops

    for line in ops.retry(args.kubeconfig, args.profile, cluster=args.cluster):
        print(line)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from engine import demo

    return demo.run(Path(args.dir), keep=args.keep,
                    charts=Path(args.charts) if args.charts else None)


def _catalog_lint(args: argparse.Namespace) -> int:
    from engine import catalog_lint_run

    mirrors = dict(item.split("=", 1) for item in args.chart_mirror)
    return catalog_lint_run.run(Path(args.dir), mirrors=mirrors, helm=_helm(args.helm),
                                kube_version=args.kube_version,
                                charts_folder=Path(args.charts) if args.charts else None)


def _helm(explicit: str | None) -> Path:
    """--helm, else FLOTILLA_HELM, else helm on PATH, else the dev test binaries."""
    found = explicit or os.environ.get("FLOTILLA_HELM") or shutil.which("helm")
    if found:
        return Path(found)
    from engine.devfleet import testbin

    return testbin.path() / "helm"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flotilla", description="Add-on distribution for "
                                     "Kubernetes fleets.")
    sub = parser.add_subparsers(dest="command", required=True)

    tb = sub.add_parser("testbin", help="test binaries (etcd, kube-apiserver, …, helm)")
    tb_sub = tb.add_subparsers(dest="action", required=True)
    tb_sub.add_parser("path", help="print the folder holding them, building first if needed")
    tb.set_defaults(func=_testbin)

    df = sub.add_parser("dev-fleet", help="local control planes for tests and the demo")
    df_sub = df.add_subparsers(dest="action", required=True)
    up = df_sub.add_parser("up", help="start a management cluster and N workload clusters")
    up.add_argument("--dir", required=True)
    up.add_argument("--clusters", type=int, default=3)
    up.add_argument("--full", type=int, default=1, help="the first K clusters get nodes")
    up.add_argument("--cpu-nodes", type=int, default=2)
    up.add_argument("--gpu-nodes", type=int, default=2)
    up.add_argument("--gpu-product", default="NVIDIA-H100-80GB-HBM3")
    up.add_argument("--full-management", action="store_true")
    up.set_defaults(func=_fleet_up)
    for name, func in (("down", _fleet_down), ("status", _fleet_status)):
        p = df_sub.add_parser(name)
        p.add_argument("--dir", required=True)
        p.set_defaults(func=func)

    inst = sub.add_parser("install", help="apply crds/ and catalog/ to the management cluster")
    inst.add_argument("--kubeconfig", required=True)
    inst.add_argument("--crds", default=str(_project_file("crds")))
    inst.add_argument("--catalog", default=str(_project_file("catalog")))
    inst.set_defaults(func=_install)

    reg = sub.add_parser("register", help="register a workload cluster (idempotent)")
    reg.add_argument("--kubeconfig", required=True)
    reg.add_argument("--namespace", required=True)
    reg.add_argument("--name", required=True)
    reg.add_argument("--cluster-kubeconfig", required=True)
    reg.add_argument("--label", action="append", default=[], help="k=v (repeatable)")
    reg.set_defaults(func=_register)

    ctl = sub.add_parser("controller", help="run the controller in the foreground")
    ctl.add_argument("--kubeconfig", required=True)
    ctl.add_argument("--chart-mirror", action="append", default=[],
                     help="UPSTREAM=LOCAL chart repository URL map (repeatable)")
    ctl.add_argument("--mirror-configmap", default="flotilla-system/flotilla-chart-mirrors",
                     help="NAMESPACE/NAME of a ConfigMap whose values hold more "
                          "UPSTREAM=LOCAL lines")
    ctl.add_argument("--metrics-port", type=int, default=0,
                     help="serve Prometheus metrics on 127.0.0.1:PORT (0: off)")
    ctl.add_argument("--withdraw-timeout", type=float, default=600.0, metavar="SECONDS",
                     help="how long a summary keeps trying to withdraw from an unreachable "
                          "cluster before it lets go with a warning Event (default 600)")
    ctl.add_argument("--verbose", action="store_true")
    ctl.set_defaults(func=_controller)

    demo = sub.add_parser("demo", help="the main job on a local fleet, offline")
    demo.add_argument("--dir", default=".fleet-demo")
    demo.add_argument("--keep", action="store_true", help="leave the fleet running afterwards")
    demo.add_argument("--charts", default=None, help="a Helm repository folder of the real "
                      "upstream charts to serve instead of the stand-ins (e.g. ../shared/charts)")
    demo.set_defaults(func=_demo)

    plan = sub.add_parser("plan", help="per-cluster diff a profile would make now")
    plan.add_argument("--kubeconfig", required=True)
    plan.add_argument("profile", help="NAME (ClusterProfile) or NAMESPACE/NAME (Profile)")
    plan.set_defaults(func=_plan)

    ro = sub.add_parser("rollout", help="staged rollout control")
    ro.add_argument("action", choices=("status", "history", "pause", "resume", "approve", "undo"))
    ro.add_argument("profile", help="NAME (ClusterProfile) or NAMESPACE/NAME (Profile)")
    ro.add_argument("--kubeconfig", required=True)
    ro.add_argument("--to-revision", type=int, default=None)
    ro.add_argument("--stage", default=None, help="approve: the stage (default: the waiting one)")
    ro.set_defaults(func=_rollout)

    again = sub.add_parser("retry", help="try a profile's failed deployments again "
                                          "(FailedNonRetriable included)")
    again.add_argument("profile", help="NAME (ClusterProfile) or NAMESPACE/NAME (Profile)")
    again.add_argument("--cluster", default=None, help="only this workload cluster")
    again.add_argument("--kubeconfig", required=True)
    again.set_defaults(func=_retry)

    cat = sub.add_parser("catalog", help="catalog authoring tools")
    cat_sub = cat.add_subparsers(dest="action", required=True)
    lint = cat_sub.add_parser("lint", help="check catalog entries against their real charts")
    lint.add_argument("dir", nargs="?", default=str(_project_file("catalog")),
                      help="catalog folder (default: the project's catalog/)")
    lint.add_argument("--chart-mirror", action="append", default=[],
                      help="UPSTREAM=LOCAL chart repository URL map (repeatable)")
    lint.add_argument("--charts", default=None, help="a Helm repository folder to serve on "
                      "loopback as the mirror of every repository the catalog names")
    lint.add_argument("--kube-version", default="v1.37.2", help="for helm template")
    lint.add_argument("--helm", default=None, help="helm binary (default: $FLOTILLA_HELM, "
                      "PATH, then the dev test binaries)")
    lint.set_defaults(func=_catalog_lint)
    return parser


def _project_file(name: str) -> Path:
    return Path(__file__).resolve().parent.parent / name


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except errors.FlotillaError as exc:
        print(f"flotilla: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the one place a CLI user sees an unexpected failure
        print(f"flotilla: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
