"""`flotilla demo` (and `make demo`): what Flotilla does, end to end, on a local fleet, offline.

Starts a management cluster and three workload clusters: cluster-1 and
cluster-2 are full (controller-manager, scheduler, simulated CPU and H100 GPU
nodes; cluster-1 is the canary ring), cluster-3 is API-only (no nodes, so no
GPUs). Installs the CRDs and the catalog, registers the clusters, runs the
controller (a process recorded in the fleet folder, so `flotilla dev-fleet
down` stops it too), then tells the story in `engine.cli.demostory`: label
→ the GPU stack on the GPU clusters only, a hand edit → drift reported and
corrected, a values change → canary first, unlabel → withdrawn. Every step
prints the command it runs, so the output doubles as a tutorial.

Offline: the catalog names real upstream chart repositories; the demo serves
small stand-in charts of ours (tests/charts, same names and versions) from a
loopback repository and points the controller's chart mirror map at it.
With `--charts DIR` (a Helm repository folder holding the real upstream
charts, as `make demo` passes when ../shared/charts exists) it serves those
instead, through the mirror ConfigMap, and applies the profile as
`engine.devfleet.realcharts` prepares it for the dev fleet (values that turn
admission webhooks away: no webhook server runs on simulated nodes); while
waiting for health it plays the GPU operator's part (`play_operators`),
which does not really run there. `--keep` leaves the fleet, the chart
repository and the controller running.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from engine import api, errors
from engine.cli import admin, demostory
from engine.devfleet import fleet, procs, realcharts, testbin
from engine.devfleet.chartrepo import ChartRepo

ROOT = Path(__file__).resolve().parents[2]
LABELS = {"cluster-1": {"env": "prod", "ring": "canary"}, "cluster-2": {"env": "prod"},
          "cluster-3": {"env": "prod"}}
ROLES = {"cluster-1": "H100 GPUs, canary ring", "cluster-2": "H100 GPUs",
         "cluster-3": "no GPUs (API only)"}
_say = demostory.say
_wait = demostory.wait


class _Kubectl:
    def __init__(self, kubeconfig: str) -> None:
        self.kubeconfig = kubeconfig
        self.bin = str(testbin.path() / "kubectl")

    def show(self, *args: str, stdin: str | None = None) -> str:
        print(f"$ kubectl {shlex.join(args)}", flush=True)
        out = subprocess.run([self.bin, "--kubeconfig", self.kubeconfig, *args],
                             capture_output=True, text=True, input=stdin)
        print(out.stdout.rstrip() or out.stderr.rstrip(), flush=True)
        return out.stdout

    def json(self, *args: str) -> Any:
        out = subprocess.run([self.bin, "--kubeconfig", self.kubeconfig, *args, "-o", "json"],
                             capture_output=True, text=True)
        return json.loads(out.stdout) if out.returncode == 0 else {}


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
        """profiles/gpu-inference.yaml (or its real-chart preparation) set up for the story."""
        if self.folder is None:
            docs = [d for d in yaml.safe_load_all(
                (ROOT / "profiles" / "gpu-inference.yaml").read_text()) if d]
        else:
            docs = realcharts.example_profiles("gpu")["gpu-inference"]
        path = workdir / "gpu-inference.demo.yaml"
        path.write_text(realcharts.dump(demostory.profile_docs(docs)))
        return path

    def hand_off(self, workdir: Path) -> None:
        """Serve the repository from a recorded process on the same port, to outlive us."""
        port = str(self.repo.server.server_address[1])
        served = self.folder if self.folder is not None else self.repo.dir
        self.repo.server.shutdown()
        self.repo.server.server_close()
        procs.spawn(workdir, "chart-repo", [sys.executable, "-m", "http.server", port,
                                            "--bind", "127.0.0.1", "--directory", str(served)])


def demo_command(args: argparse.Namespace) -> int:
    return run(Path(args.dir), keep=args.keep, charts=Path(args.charts) if args.charts else None)


def run(workdir: Path, *, keep: bool = False, charts: Path | None = None) -> int:
    if charts is not None and not (charts / "index.yaml").is_file():
        raise errors.FlotillaError(f"--charts {charts}: not a Helm repository (no index.yaml)")
    workdir = workdir.resolve()
    began = time.monotonic()
    _say(f"Starting a local fleet in {workdir} (real etcd + kube-apiserver processes)")
    started = fleet.up(workdir, fleet.Options(clusters=3, full=2))
    source: _Charts | None = None
    controller: int | None = None
    kept = False
    try:
        for c in started.all:
            print(f"  {c.name:<11} {c.url}  {ROLES.get(c.name, 'management')}")
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
        _say("flotilla controller (in the background; its log: logs/controller.log)")
        controller = procs.spawn(workdir, "controller", [
            sys.executable, "-m", "engine.cli", "controller", "--kubeconfig",
            started.management.kubeconfig, "--helm", str(testbin.path() / "helm"),
            "--workdir", str(workdir / "controller"), *flags])
        _wait("clusters connected and their facts read", lambda: _connected(mgmt))
        mgmt.show("get", "workloadclusters", "-n", "fleet", "--show-labels")
        mgmt.show("get", "catalogservices")
        demostory.tell(started, mgmt, str(source.profile(workdir)), real=source.real)
        _say(f"Done in {time.monotonic() - began:.0f} s. Charts used: " + source.describe())
        if keep:
            source.hand_off(workdir)
            kept = True
            _next_steps(workdir, started)
        return 0
    finally:
        if not kept:
            if controller is not None:
                procs.stop(controller, timeout=15)
            if source is not None:
                source.repo.close()
            if not keep:
                fleet.down(workdir)


def _connected(mgmt: _Kubectl) -> bool:
    items = mgmt.json("get", "workloadclusters", "-n", "fleet").get("items", [])
    return bool(items) and all((i.get("status") or {}).get("ready") and
                               "facts" in (i.get("status") or {}) for i in items)


def _next_steps(workdir: Path, started: fleet.Fleet) -> None:
    kc = started.management.kubeconfig
    print(f"""
Everything keeps running: the fleet, the chart repository and the controller.
Try next:
  export KUBECONFIG={kc}
  kubectl label workloadclusters -n fleet --all serving=inference   # the stack comes back
  flotilla rollout status gpu-inference --watch                      # canary, then main
  flotilla status gpu-inference                                      # profile → stage → cluster
  flotilla why cluster-3                                             # why it is not selected
  flotilla dashboard --kubeconfig {kc}                # the fleet in a browser
  kubectl --kubeconfig {started.clusters[1].kubeconfig} get deployments -A
Stop everything (fleet, chart repository, controller):
  flotilla dev-fleet down --dir {workdir}""", flush=True)
