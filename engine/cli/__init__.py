"""The `flotilla` command line: its parser and `main` (DESIGN.md §2).

Every sub-command lives in the module of its group, which `main` imports
only when that command runs:

    admin       install, register, retry — writes to the management cluster
    controller  controller — runs the controller in the foreground (kopf)
    plan        plan — what a profile would change now, per cluster
    rollout     rollout status|history|pause|resume|approve|undo (rolloutwatch: --watch)
    status      status [PROFILE] (profile → stage → cluster → service), why CLUSTER
    completion  completion bash|zsh — a shell completion script from this parser
    catalog     catalog lint — catalog entries against their real charts
    convert     convert — Sveltos YAML to Flotilla YAML (engine.convert)
    demo        demo — the main job on a local fleet, offline
    devfleet    testbin path, dev-fleet up|down|status — local control planes

Importing lazily keeps `flotilla --help` quick and keeps the dev fleet out
of every command but the dev ones (demo, dev-fleet, testbin); an
import-linter contract holds the product commands to it. A command returns
its exit code; errors print one clear line and exit non-zero.

The read commands (status, why, plan, rollout) find the management cluster as
kubectl does (`--kubeconfig`, `--context`, `KUBECONFIG`, `~/.kube/config`), and
the same parser serves `kubectl flotilla …` (`kubectl_main`, the
`kubectl-flotilla` console script kubectl finds on PATH).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine import api, errors

Command = Callable[[argparse.Namespace], int]
# The project folder: crds/ and catalog/ sit next to engine/.
ROOT = Path(__file__).resolve().parents[2]
PROFILE_ARG = "NAME (ClusterProfile) or NAMESPACE/NAME (Profile)"


@dataclasses.dataclass(frozen=True)
class Lazy:
    """Command `name` of `engine.cli.<module>`, imported when it runs."""

    module: str
    name: str

    def resolve(self) -> Command:
        command: Command = getattr(importlib.import_module(f"engine.cli.{self.module}"),
                                   self.name)
        return command

    def __call__(self, args: argparse.Namespace) -> int:
        return self.resolve()(args)


def _kube_flags(p: argparse.ArgumentParser) -> None:
    """kubectl's way to name the management cluster; SUPPRESS lets either level set them."""
    p.add_argument("--kubeconfig", default=argparse.SUPPRESS, help="management cluster "
                   "kubeconfig (default: $KUBECONFIG, else ~/.kube/config)")
    p.add_argument("--context", default=argparse.SUPPRESS, help="kubeconfig context "
                   "(default: its current-context)")


def _read_flags(p: argparse.ArgumentParser) -> None:
    _kube_flags(p)
    p.add_argument("-o", "--output", choices=("json", "yaml"), default=None,
                   help="machine-readable output (default: for people)")


def parser(prog: str = "flotilla") -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog=prog, description="Add-on distribution for "
                                  "Kubernetes fleets.", epilog=_named(EXAMPLES[""], prog),
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    _kube_flags(top)
    sub = top.add_subparsers(dest="command", required=True)

    tb = sub.add_parser("testbin", help="test binaries (etcd, kube-apiserver, …, helm)")
    tb_sub = tb.add_subparsers(dest="action", required=True)
    tb_sub.add_parser("path", help="print the folder holding them, building first if needed")
    tb.set_defaults(func=Lazy("devfleet", "testbin_command"))

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
    up.add_argument("--lean", action="store_true", help="lean, API-only workload servers "
                    "(fewer API groups, no watch cache…) so 50-100 fit; --full is ignored")
    up.add_argument("--start-window", type=int, default=10, help="API servers starting at "
                    "once; the next starts when one of these is ready (default 10)")
    up.set_defaults(func=Lazy("devfleet", "up_command"))
    for name in ("down", "status"):
        p = df_sub.add_parser(name)
        p.add_argument("--dir", required=True)
        p.set_defaults(func=Lazy("devfleet", f"{name}_command"))
    rv = df_sub.add_parser(
        "register-virtual", help="register N WorkloadClusters, K per workload API server: a "
        "namespace, ServiceAccount, namespace-only RBAC and token kubeconfig each")
    rv.add_argument("--dir", required=True)
    rv.add_argument("--per-server", type=int, required=True)
    rv.add_argument("--total", type=int, required=True)
    rv.add_argument("--label", action="append", default=[], help="k=v (repeatable)")
    rv.add_argument("--namespace", default="fleet", help="management namespace (default fleet)")
    rv.add_argument("--prefix", default="vc", help="names are PREFIX-0000, PREFIX-0001, …")
    rv.set_defaults(func=Lazy("devfleet", "register_virtual_command"))

    inst = sub.add_parser("install", help="apply crds/ and catalog/ to the management cluster")
    inst.add_argument("--kubeconfig", required=True)
    inst.add_argument("--crds", default=str(ROOT / "crds"))
    inst.add_argument("--catalog", default=str(ROOT / "catalog"))
    inst.set_defaults(func=Lazy("admin", "install_command"))

    reg = sub.add_parser("register", help="register a workload cluster (idempotent)")
    reg.add_argument("--kubeconfig", required=True)
    reg.add_argument("--namespace", required=True)
    reg.add_argument("--name", required=True)
    reg.add_argument("--cluster-kubeconfig", required=True)
    reg.add_argument("--label", action="append", default=[], help="k=v (repeatable)")
    reg.set_defaults(func=Lazy("admin", "register_command"))

    ctl = sub.add_parser("controller", help="run the controller in the foreground",
                         description="Run the controller against a management cluster.",
                         epilog="examples:\n  flotilla controller --kubeconfig mgmt.kubeconfig\n"
                         "  flotilla controller --leader-elect --health-port 8081 "
                         "--metrics-port 8080 --bind-address 0.0.0.0   # in a pod\n"
                         "  flotilla controller --kubeconfig mgmt.kubeconfig --shard-key eu",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    ctl.add_argument("--kubeconfig", default=None,
                     help="management cluster (default: the pod's ServiceAccount)")
    ctl.add_argument("--helm", default=None, help="helm binary (default: $FLOTILLA_HELM, "
                     "else helm on PATH; Helm >= 3.14, < 4)")
    ctl.add_argument("--kubectl", default=None, help="kubectl binary for kustomizationRefs "
                     "(default: $FLOTILLA_KUBECTL, else kubectl on PATH; looked up when a "
                     "profile first needs it)")
    ctl.add_argument("--workdir", default=None, help="charts, helm cache and private "
                     "kubeconfigs (default: $FLOTILLA_WORKDIR, else ~/.cache/flotilla/controller)")
    ctl.add_argument("--chart-mirror", action="append", default=[],
                     help="UPSTREAM=LOCAL chart repository URL map (repeatable)")
    ctl.add_argument("--mirror-configmap", default=f"{api.SYSTEM_NAMESPACE}/"
                     f"{api.MIRROR_CONFIGMAP}", help="NAMESPACE/NAME of a ConfigMap whose "
                     "values hold more UPSTREAM=LOCAL lines")
    ctl.add_argument("--bind-address", default="127.0.0.1",
                     help="address of the metrics and health endpoints (in a pod: 0.0.0.0)")
    ctl.add_argument("--metrics-port", type=int, default=0,
                     help="serve Prometheus /metrics on PORT (0: off)")
    ctl.add_argument("--health-port", type=int, default=0,
                     help="serve /healthz and /readyz on PORT (0: off)")
    ctl.add_argument("--withdraw-timeout", type=float, default=600.0, metavar="SECONDS",
                     help="how long a summary keeps trying to withdraw from an unreachable "
                          "cluster before it lets go with a warning Event (default 600)")
    ctl.add_argument("--max-helm", type=int, default=4, metavar="N",
                     help="helm processes running at once, over all clusters (default 4: "
                          "each takes a core while it renders)")
    ctl.add_argument("--max-workload-requests", type=int, default=64, metavar="N",
                     help="requests to workload clusters in flight at once, over all "
                          "clusters; open watches do not count (default 64)")
    ctl.add_argument("--leader-elect", action="store_true",
                     help="campaign for a Lease; only the leader reconciles")
    ctl.add_argument("--lease-namespace", default="",
                     help="default: $POD_NAMESPACE, else flotilla-system")
    ctl.add_argument("--lease-name", default="", help="default: flotilla-controller, "
                     "or flotilla-controller-KEY with --shard-key")
    ctl.add_argument("--lease-duration", type=float, default=15.0, metavar="SECONDS")
    ctl.add_argument("--renew-deadline", type=float, default=10.0, metavar="SECONDS")
    ctl.add_argument("--retry-period", type=float, default=2.0, metavar="SECONDS")
    ctl.add_argument("--shard-key", default=None, help="manage only the WorkloadClusters "
                     "annotated sharding.flotilla.dev/key=KEY (or sharding.projectsveltos.io/"
                     "key); without it: those with no key, and every profile")
    ctl.add_argument("--log-format", choices=("text", "json"), default="text")
    ctl.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                     default="info")
    ctl.add_argument("--verbose", action="store_true", help="same as --log-level debug")
    ctl.set_defaults(func=Lazy("controller", "controller_command"))

    demo = sub.add_parser("demo", help="the main job on a local fleet, offline")
    demo.add_argument("--dir", default=".fleet-demo")
    demo.add_argument("--keep", action="store_true", help="leave the fleet running afterwards")
    demo.add_argument("--charts", default=None, help="a Helm repository folder of the real "
                      "upstream charts to serve instead of the stand-ins (e.g. ../shared/charts)")
    demo.set_defaults(func=Lazy("demo", "demo_command"))

    dash = sub.add_parser("dashboard", help="a read-only web page of the fleet, updated live")
    _kube_flags(dash)
    dash.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    dash.add_argument("--address", default="127.0.0.1",
                      help="address to bind (default 127.0.0.1; loopback only without "
                           "--allow-remote)")
    dash.add_argument("--allow-remote", action="store_true",
                      help="allow a non-loopback --address (the page has no login)")
    dash.set_defaults(func=Lazy("dashboard", "dashboard_command"))

    plan = sub.add_parser("plan", help="per-cluster diff a profile would make now")
    _read_flags(plan)
    plan.add_argument("profile", help=PROFILE_ARG)
    plan.add_argument("--helm", default=None, help="helm binary (default: $FLOTILLA_HELM, "
                      "else helm on PATH)")
    plan.add_argument("--workdir", default=None, help="chart and helm cache (default: "
                      "$FLOTILLA_WORKDIR, else ~/.cache/flotilla/controller)")
    plan.set_defaults(func=Lazy("plan", "plan_command"))

    ro = sub.add_parser("rollout", help="staged rollout control")
    ro.add_argument("action", choices=("status", "history", "pause", "resume", "approve", "undo"))
    ro.add_argument("profile", help=PROFILE_ARG)
    _read_flags(ro)
    ro.add_argument("-w", "--watch", action="store_true", help="status: follow the rollout "
                    "stage by stage; exit 0 when it completes, 1 failed or rolling back, "
                    "2 paused or waiting for approval, 3 timed out")
    ro.add_argument("--timeout", type=float, default=0, metavar="SECONDS",
                    help="with --watch: give up after this long (default: wait forever)")
    ro.add_argument("--to-revision", type=int, default=None)
    ro.add_argument("--stage", default=None, help="approve: the stage (default: the waiting one)")
    ro.set_defaults(func=Lazy("rollout", "rollout_command"))

    st = sub.add_parser("status", help="profiles as a tree: stage → cluster → service "
                        "(phase, health, drift, revision)")
    st.add_argument("profile", nargs="?", default=None, help=f"{PROFILE_ARG}; default: all")
    _read_flags(st)
    st.set_defaults(func=Lazy("status", "status_command"))

    why = sub.add_parser("why", help="which profiles select a cluster, and why (or why not)")
    why.add_argument("cluster", help="NAME or NAMESPACE/NAME of a WorkloadCluster")
    why.add_argument("-n", "--namespace", default=None, help="the cluster's namespace "
                     "(default: wherever the name is unique)")
    _read_flags(why)
    why.set_defaults(func=Lazy("status", "why_command"))

    comp = sub.add_parser("completion", help="print a shell completion script")
    comp.add_argument("shell", choices=("bash", "zsh"))
    comp.set_defaults(func=Lazy("completion", "completion_command"))

    again = sub.add_parser("retry", help="try a profile's failed deployments again "
                                          "(FailedNonRetriable included)")
    again.add_argument("profile", help=PROFILE_ARG)
    again.add_argument("--cluster", default=None, help="only this workload cluster")
    again.add_argument("--kubeconfig", required=True)
    again.set_defaults(func=Lazy("admin", "retry_command"))

    conv = sub.add_parser("convert", help="Sveltos YAML in, Flotilla YAML out (findings on "
                                          "stderr)")
    conv.add_argument("-f", "--file", action="append", required=True, metavar="FILE",
                      help="Sveltos YAML file, - for stdin (repeatable)")
    conv.set_defaults(func=Lazy("convert", "convert_command"))

    cat = sub.add_parser("catalog", help="catalog authoring tools")
    cat_sub = cat.add_subparsers(dest="action", required=True)
    lint = cat_sub.add_parser("lint", help="check catalog entries against their real charts")
    lint.add_argument("dir", nargs="?", default=str(ROOT / "catalog"),
                      help="catalog folder (default: the project's catalog/)")
    lint.add_argument("--chart-mirror", action="append", default=[],
                      help="UPSTREAM=LOCAL chart repository URL map (repeatable)")
    lint.add_argument("--charts", default=None, help="a Helm repository folder to serve on "
                      "loopback as the mirror of every repository the catalog names")
    lint.add_argument("--kube-version", default="v1.37.2", help="for helm template")
    lint.add_argument("--helm", default=None, help="helm binary (default: $FLOTILLA_HELM, "
                      "PATH, then the dev test binaries)")
    lint.set_defaults(func=Lazy("catalog", "lint_command"))
    _examples(sub, prog)
    return top


# `--help` examples, by command path; `flotilla` is replaced by the program's name.
EXAMPLES = {
    "": "examples:\n  flotilla status\n  flotilla why cluster-1\n"
        "  flotilla rollout status gpu-stack --watch --timeout 600\n"
        "  kubectl flotilla status --context mgmt\n"
        "  source <(flotilla completion bash)",
    "testbin": "examples:\n  flotilla testbin path",
    "dev-fleet": "examples:\n  flotilla dev-fleet up --dir /tmp/fleet --clusters 3 --full 1\n"
                 "  flotilla dev-fleet up --dir /tmp/scale --clusters 50 --lean\n"
                 "  flotilla install --kubeconfig /tmp/scale/management.kubeconfig\n"
                 "  flotilla dev-fleet register-virtual --dir /tmp/scale --per-server 20 "
                 "--total 1000 --label tier=scale\n"
                 "  flotilla dev-fleet status --dir /tmp/fleet\n"
                 "  flotilla dev-fleet down --dir /tmp/fleet",
    "install": "examples:\n  flotilla install --kubeconfig mgmt.kubeconfig",
    "register": "examples:\n  flotilla register --kubeconfig mgmt.kubeconfig --namespace fleet "
                "--name gpu-eu-1 \\\n      --cluster-kubeconfig gpu-eu-1.kubeconfig "
                "--label gpu=nvidia",
    "demo": "examples:\n  flotilla demo\n  flotilla demo --charts ../shared/charts --keep",
    "dashboard": "examples:\n  flotilla dashboard --kubeconfig mgmt.kubeconfig   # http://127.0.0.1:8080/\n"
                 "  kubectl flotilla dashboard --context mgmt --port 9000",
    "plan": "examples:\n  flotilla plan gpu-stack\n  flotilla plan team-a/monitoring "
            "--context mgmt\n  kubectl flotilla plan gpu-stack -o yaml",
    "rollout": "examples:\n  flotilla rollout status gpu-stack\n"
               "  flotilla rollout status gpu-stack --watch --timeout 900   # for CI\n"
               "  flotilla rollout history gpu-stack -o json\n"
               "  flotilla rollout pause gpu-stack\n"
               "  flotilla rollout approve gpu-stack --stage main\n"
               "  flotilla rollout undo gpu-stack --to-revision 3",
    "status": "examples:\n  flotilla status\n  flotilla status gpu-stack -o yaml\n"
              "  kubectl flotilla status team-a/monitoring --kubeconfig mgmt.kubeconfig",
    "why": "examples:\n  flotilla why gpu-eu-1\n  flotilla why fleet/gpu-eu-1 -o json\n"
           "  kubectl flotilla why gpu-eu-1 --context mgmt",
    "completion": "examples:\n  source <(flotilla completion bash)      # in ~/.bashrc\n"
                  "  flotilla completion zsh > \"${fpath[1]}/_flotilla\"",
    "retry": "examples:\n  flotilla retry gpu-stack --kubeconfig mgmt.kubeconfig\n"
             "  flotilla retry gpu-stack --cluster gpu-eu-1 --kubeconfig mgmt.kubeconfig",
    "convert": "examples:\n  flotilla convert -f sveltos-clusterprofile.yaml > flotilla.yaml\n"
               "  kubectl get clusterprofiles.config.projectsveltos.io -o yaml | "
               "flotilla convert -f -",
    "catalog": "examples:\n  flotilla catalog lint\n"
               "  flotilla catalog lint --charts ../shared/charts",
}


def _named(text: str, prog: str) -> str:
    """Examples as the program is called: `kubectl flotilla status` for the kubectl plugin."""
    for before in ("\n  ", "<(", "| "):
        text = text.replace(f"{before}flotilla ", f"{before}{prog} ")
    return text


def _examples(sub: Any, prog: str) -> None:
    """An examples epilog on every command that has none of its own."""
    for name, command in sub.choices.items():
        if command.epilog is None and name in EXAMPLES:
            command.epilog = _named(EXAMPLES[name], prog)
            command.formatter_class = argparse.RawDescriptionHelpFormatter


def kubectl_main() -> int:
    """`kubectl flotilla …`: kubectl runs `kubectl-flotilla` from PATH with the rest of the line."""
    return main(prog="kubectl flotilla")


def main(argv: Sequence[str] | None = None, *, prog: str = "flotilla") -> int:
    args = parser(prog).parse_args(argv)
    func: Command = args.func
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
