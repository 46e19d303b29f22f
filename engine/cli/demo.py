"""`flotilla demo` (and `make demo`): the main job, end to end, on a local fleet, offline.

Starts a management cluster and three workload clusters (cluster-1 is full:
controller-manager, scheduler, CPU and GPU nodes), installs the CRDs and
the catalog, registers the clusters with labels, runs the controller, then
applies profiles/gpu-inference.yaml. Labelling cluster-1 `gpu=nvidia` brings
the GPU inference stack; removing the label takes it away. Every step prints
the kubectl command it runs, so the output doubles as a tutorial.

Offline: the catalog names real upstream chart repositories; the demo serves
small stand-in charts of ours (tests/charts, same names and versions) from a
loopback repository and points the controller's chart mirror map at it.
With `--charts DIR` (a Helm repository folder holding the real upstream
charts, as `make demo` passes when ../shared/charts exists) it serves those
instead, through the mirror ConfigMap, and applies the profile as
`engine.devfleet.realcharts` prepares it for the dev fleet: the same services
and selector, plus values that turn admission webhooks away (no webhook
server runs on simulated nodes); while waiting for health it plays the GPU
operator's part (`play_operators`), which does not really run there.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from engine import api, errors
from engine.cli import admin
from engine.devfleet import fleet, realcharts, testbin
from engine.devfleet.chartrepo import ChartRepo

ROOT = Path(__file__).resolve().parents[2]
LABELS = {"cluster-1": {"env": "prod", "ring": "canary"}, "cluster-2": {"env": "staging"},
          "cluster-3": {"env": "dev"}}


def _say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


class _Kubectl:
    def __init__(self, kubeconfig: str) -> None:
        self.kubeconfig = kubeconfig
        self.bin = str(testbin.path() / "kubectl")

    def show(self, *args: str, stdin: str | None = None) -> str:
        print(f"$ kubectl {' '.join(args)}", flush=True)
        out = subprocess.run([self.bin, "--kubeconfig", self.kubeconfig, *args],
                             capture_output=True, text=True, input=stdin)
        print(out.stdout.rstrip() or out.stderr.rstrip(), flush=True)
        return out.stdout

    def json(self, *args: str) -> Any:
        out = subprocess.run([self.bin, "--kubeconfig", self.kubeconfig, *args, "-o", "json"],
                             capture_output=True, text=True)
        return json.loads(out.stdout) if out.returncode == 0 else {}


def _wait(what: str, probe: Callable[[], bool], timeout: float = 120) -> None:
    """Poll until `probe()` holds; the timeout names what was waited for."""
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"demo: timed out waiting for {what}")
        time.sleep(0.5)


class _Charts:
    """Where the charts come from: our stand-ins (tests/charts) or a folder of real ones."""

    def __init__(self, workdir: Path, folder: Path | None) -> None:
        self.folder = folder
        self.repo = ChartRepo(workdir / "chart-repo", charts=folder) if folder \
            else ChartRepo(workdir / "chart-repo")

    @property
    def real(self) -> bool:
        return self.folder is not None

    def describe(self) -> str:
        if self.folder is None:
            return "small stand-in charts of ours from tests/charts (same names and versions " \
                   "as upstream, a few objects each instead of the real software)"
        index = yaml.safe_load((self.folder / "index.yaml").read_text())
        found = ", ".join(f"{name} {'/'.join(str(e['version']) for e in entries)}"
                          for name, entries in sorted(index["entries"].items()))
        return f"the REAL upstream charts from {self.folder}: {found}"

    def profile(self, workdir: Path) -> Path:
        """profiles/gpu-inference.yaml, or with real charts its dev-fleet preparation."""
        if self.folder is None:
            return ROOT / "profiles" / "gpu-inference.yaml"
        docs = realcharts.example_profiles("gpu")["gpu-inference"]
        for doc in docs:
            if doc["kind"] == "ClusterProfile":
                # Same story as the stand-in run: the cluster owner's label selects it.
                doc["spec"]["clusterSelector"] = {"matchLabels": {"gpu": "nvidia"}}
        path = workdir / "gpu-inference.dev-fleet.yaml"
        path.write_text(realcharts.dump(docs))
        return path


def demo_command(args: argparse.Namespace) -> int:
    return run(Path(args.dir), keep=args.keep, charts=Path(args.charts) if args.charts else None)


def run(workdir: Path, *, keep: bool = False, charts: Path | None = None) -> int:
    if charts is not None and not (charts / "index.yaml").is_file():
        raise errors.FlotillaError(f"--charts {charts}: not a Helm repository (no index.yaml)")
    workdir = workdir.resolve()
    _say(f"Starting a local fleet in {workdir} (real etcd + kube-apiserver processes)")
    started = fleet.up(workdir, fleet.Options(clusters=3, full=1))
    source: _Charts | None = None
    controller: subprocess.Popen[bytes] | None = None
    try:
        for c in started.all:
            print(f"  {c.name:<11} {c.url}  {'full (nodes, GPUs)' if c.full else 'API only'}")
        mgmt = _Kubectl(started.management.kubeconfig)
        source = _Charts(workdir, charts.resolve() if charts else None)
        _say(f"Offline mode: serving {source.describe()} at {source.repo.url}")

        _say("flotilla install: CRDs and the catalog")
        for line in admin.install(started.management.kubeconfig, crds=ROOT / "crds",
                                catalog=ROOT / "catalog"):
            print(f"  {line}")
        _say("flotilla register: three workload clusters with labels")
        for c in started.clusters:
            print("  " + admin.register(started.management.kubeconfig, namespace="fleet",
                                        name=c.name, cluster_kubeconfig=c.kubeconfig,
                                        labels=LABELS.get(c.name, {})))

        flags: list[str] = []
        if source.real:
            _say(f"Chart mirror map: ConfigMap {api.SYSTEM_NAMESPACE}/{api.MIRROR_CONFIGMAP} "
                 "(the controller reads it live), every catalog repository -> loopback")
            mgmt.show("apply", "-f", "-", stdin=yaml.safe_dump(
                realcharts.mirror_configmap(source.repo.mirrors())))
        else:
            flags = source.repo.mirror_flags()
        for flag in flags[1::2]:
            print(f"  --chart-mirror {flag}")
        _say("flotilla controller (running in the background for the demo)")
        argv = [sys.executable, "-m", "engine.cli", "controller", "--kubeconfig",
                started.management.kubeconfig, "--helm", str(testbin.path() / "helm"), *flags]
        log = open(workdir / "logs" / "controller.log", "wb")  # noqa: SIM115 - lives with proc
        controller = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        _wait("clusters connected", lambda: all(
            (i.get("status") or {}).get("ready")
            for i in mgmt.json("get", "workloadclusters", "-n", "fleet").get("items", [])
        ) and bool(mgmt.json("get", "workloadclusters", "-n", "fleet").get("items")))
        mgmt.show("get", "workloadclusters", "-n", "fleet", "--show-labels")
        mgmt.show("get", "catalogservices")
        _show_stack(started, mgmt, source, workdir)
        _say("Done. Charts used: " + source.describe())
        if keep:
            print(f"The fleet keeps running. Try: kubectl --kubeconfig "
                  f"{started.management.kubeconfig} get clusterprofiles\n"
                  f"Stop it with: flotilla dev-fleet down --dir {workdir}")
        return 0
    finally:
        if controller is not None:
            controller.terminate()
            controller.wait(timeout=15)
        if not keep:
            if source is not None:
                source.repo.close()
            fleet.down(workdir)


def _show_stack(started: fleet.Fleet, mgmt: _Kubectl, source: _Charts, workdir: Path) -> None:
    """Apply the profile, label cluster-1 so the stack arrives, then unlabel so it leaves."""
    profile = source.profile(workdir)
    if source.real:
        _say("Apply profiles/gpu-inference.yaml as prepared for the dev fleet "
             f"({profile.name}): same services and selector; admission webhooks turned away "
             "(no webhook server runs on simulated nodes), no canary ring")
    else:
        _say("Apply profiles/gpu-inference.yaml: selects clusters labelled gpu=nvidia")
    mgmt.show("apply", "-f", str(profile))
    mgmt.show("get", "clusterprofiles")

    cluster = started.clusters[0]
    _say("A cluster owner labels cluster-1 gpu=nvidia — the services arrive")
    mgmt.show("label", "workloadcluster", "-n", "fleet", "cluster-1", "gpu=nvidia")
    if source.real:
        print("  (the dev fleet plays the GPU operator's part: nothing really runs on "
              "simulated nodes, so the ClusterPolicy is marked ready once it exists)")

    def ready() -> bool:
        if source.real:
            realcharts.play_operators(cluster.kubeconfig)
        return (mgmt.json("get", "clusterprofile", "gpu-inference").get("status") or {}).get(
            "ready") == 1

    _wait("gpu-inference ready on cluster-1", ready, timeout=900 if source.real else 180)
    mgmt.show("get", "clusterprofiles")
    mgmt.show("get", "clustersummaries", "-A")
    mgmt.show("wait", "--for=condition=Ready", "clusterprofile/gpu-inference", "--timeout=30s")
    work = _Kubectl(cluster.kubeconfig)
    helm = [str(testbin.path() / "helm"), "--kubeconfig", cluster.kubeconfig, "list", "-A"]
    _say("On cluster-1 (helm list / deployments, read from the workload cluster)")
    print("$ helm list -A")
    subprocess.run(helm)
    selector = "app.kubernetes.io/managed-by=Helm" if source.real \
        else "app.kubernetes.io/part-of=flotilla-standin"
    work.show("get", "deployments,daemonsets", "-A", "-l", selector)

    _say("The label goes away — so do the services")
    mgmt.show("label", "workloadcluster", "-n", "fleet", "cluster-1", "gpu-")
    _wait("withdrawn", lambda: not mgmt.json("get", "clustersummaries", "-n", "fleet").get(
        "items"), timeout=600 if source.real else 120)
    mgmt.show("get", "clusterprofiles")
    print("$ helm list -A   (on cluster-1)")
    subprocess.run(helm)
    if source.real:
        print("  (the CRDs the charts installed from their crds/ folders stay: Helm never "
              "deletes those)")
