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
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine import ops
from engine.devfleet import fleet, testbin
from engine.devfleet.chartrepo import ChartRepo

ROOT = Path(__file__).resolve().parent.parent
LABELS = {"cluster-1": {"env": "prod", "ring": "canary"}, "cluster-2": {"env": "staging"},
          "cluster-3": {"env": "dev"}}


def _say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


class _Kubectl:
    def __init__(self, kubeconfig: str) -> None:
        self.kubeconfig = kubeconfig
        self.bin = str(testbin.path() / "kubectl")

    def show(self, *args: str) -> str:
        print(f"$ kubectl {' '.join(args)}", flush=True)
        out = subprocess.run([self.bin, "--kubeconfig", self.kubeconfig, *args],
                             capture_output=True, text=True)
        print(out.stdout.rstrip() or out.stderr.rstrip(), flush=True)
        return out.stdout

    def json(self, *args: str) -> Any:
        out = subprocess.run([self.bin, "--kubeconfig", self.kubeconfig, *args, "-o", "json"],
                             capture_output=True, text=True)
        return json.loads(out.stdout) if out.returncode == 0 else {}


def _wait(what: str, probe: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"demo: timed out waiting for {what}")
        time.sleep(0.5)


def run(workdir: Path, *, keep: bool = False) -> int:
    workdir = workdir.resolve()
    _say(f"Starting a local fleet in {workdir} (real etcd + kube-apiserver processes)")
    started = fleet.up(workdir, fleet.Options(clusters=3, full=1))
    repo: ChartRepo | None = None
    controller: subprocess.Popen[bytes] | None = None
    try:
        for c in started.all:
            print(f"  {c.name:<11} {c.url}  {'full (nodes, GPUs)' if c.full else 'API only'}")
        mgmt = _Kubectl(started.management.kubeconfig)
        repo = ChartRepo(workdir / "chart-repo")
        _say("Offline mode: serving stand-in charts (same names and versions as upstream) "
             f"from {repo.url}")
        flags = repo.mirror_flags()
        for flag in flags[1::2]:
            print(f"  --chart-mirror {flag}")

        _say("flotilla install: CRDs and the catalog")
        for line in ops.install(started.management.kubeconfig, crds=ROOT / "crds",
                                catalog=ROOT / "catalog"):
            print(f"  {line}")
        _say("flotilla register: three workload clusters with labels")
        for c in started.clusters:
            print("  " + ops.register(started.management.kubeconfig, namespace="fleet",
                                      name=c.name, cluster_kubeconfig=c.kubeconfig,
                                      labels=LABELS.get(c.name, {})))

        _say("flotilla controller (running in the background for the demo)")
        argv = [sys.executable, "-m", "engine.cli", "controller", "--kubeconfig",
                started.management.kubeconfig, *flags]
        log = open(workdir / "logs" / "controller.log", "wb")  # noqa: SIM115 - lives with proc
        controller = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        _wait("clusters connected", lambda: all(
            (i.get("status") or {}).get("ready")
            for i in mgmt.json("get", "workloadclusters", "-n", "fleet").get("items", [])
        ) and bool(mgmt.json("get", "workloadclusters", "-n", "fleet").get("items")))
        mgmt.show("get", "workloadclusters", "-n", "fleet", "--show-labels")
        mgmt.show("get", "catalogservices")

        _say("Apply profiles/gpu-inference.yaml: selects clusters labelled gpu=nvidia")
        mgmt.show("apply", "-f", str(ROOT / "profiles" / "gpu-inference.yaml"))
        mgmt.show("get", "clusterprofiles")

        _say("A cluster owner labels cluster-1 gpu=nvidia — the services arrive")
        mgmt.show("label", "workloadcluster", "-n", "fleet", "cluster-1", "gpu=nvidia")
        _wait("gpu-inference ready on cluster-1", lambda: (mgmt.json(
            "get", "clusterprofile", "gpu-inference").get("status") or {}).get(
            "ready") == 1, timeout=180)
        mgmt.show("get", "clusterprofiles")
        mgmt.show("get", "clustersummaries", "-A")
        mgmt.show("wait", "--for=condition=Ready", "clusterprofile/gpu-inference",
                  "--timeout=30s")
        work = _Kubectl(started.clusters[0].kubeconfig)
        _say("On cluster-1 (helm list / deployments, read from the workload cluster)")
        print("$ helm list -A")
        subprocess.run([str(testbin.path() / "helm"), "--kubeconfig",
                        started.clusters[0].kubeconfig, "list", "-A"])
        work.show("get", "deployments,daemonsets", "-A", "-l",
                  "app.kubernetes.io/part-of=flotilla-standin")

        _say("The label goes away — so do the services")
        mgmt.show("label", "workloadcluster", "-n", "fleet", "cluster-1", "gpu-")
        _wait("withdrawn", lambda: not mgmt.json("get", "clustersummaries", "-n", "fleet").get(
            "items"), timeout=120)
        mgmt.show("get", "clusterprofiles")
        print("$ helm list -A   (on cluster-1)")
        subprocess.run([str(testbin.path() / "helm"), "--kubeconfig",
                        started.clusters[0].kubeconfig, "list", "-A"])
        _say("Done.")
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
            if repo is not None:
                repo.close()
            fleet.down(workdir)
