"""Fault scenarios on the real fleet, shared by tests/chaos (bounded) and bench/chaos.py (longer).

Each scenario deploys a profile (a policyRef ConfigMap with a ConfigMap and a
ServiceAccount, plus a stand-in Helm release) into a namespace the scenario
made itself, next to *bystanders* the profile does not own (a ConfigMap and a
Helm release installed by hand). It then breaks something real — stops a
workload API server, restarts the management API server or etcd, SIGKILLs
the controller and its helm children, freezes an API server with SIGSTOP —
and returns an `Outcome`: converged or not, seconds to converge once the
fault ended, objects lost (expected objects or bystanders missing), workload
writes nobody needed, controller crashes (an exit we did not cause, or a
reconcile that failed with an unhandled exception), and what did not hold.

Nothing here asserts: tests/chaos asserts on the outcome, bench prints it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fleetkit import FLEET_NS, Engine, Helm, Kubectl, eventually

from engine import api

Obj = dict[str, Any]
T = TypeVar("T")
# Resources a profile's content touches on a workload cluster (Helm keeps releases in Secrets).
RESOURCES = ("configmaps", "secrets", "serviceaccounts", "namespaces", "deployments")
SUMMARY_UNREACHABLE = "ClusterUnreachable"


@dataclass
class Outcome:
    scenario: str
    converged: bool = False
    seconds: float = 0.0  # from the end of the fault to convergence
    lost: int = 0
    redundant: int = 0
    crashes: int = 0
    figures: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seed: int | None = None

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)


def _uid() -> str:
    return uuid.uuid4().hex[:6]


class Crashes:
    """Counts controller exits we did not cause and reconciles that failed unhandled."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.offsets = {p: p.stat().st_size for p in self._logs()}
        self.exits = 0

    def _logs(self) -> list[Path]:
        return sorted(self.engine.workdir.glob("controller-*.log"))

    def alive(self) -> None:
        """Call before a planned stop: an exit found here was not ours."""
        proc = self.engine.proc
        if proc is not None and proc.poll() is not None:
            self.exits += 1
            self.engine.start()

    def count(self) -> tuple[int, list[str]]:
        self.alive()
        failures = []
        for log in self._logs():
            with log.open("rb") as fh:
                fh.seek(self.offsets.get(log, 0))
                text = fh.read().decode(errors="replace")
            failures += [line for line in text.splitlines()
                         if re.search(r"reconcile of .* failed", line)]
        return self.exits + len(failures), failures[:5]


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        kids = [p for p, pp in parents.items() if pp == current]
        out += kids
        todo += kids
    return out


def kill_controller(engine: Engine) -> int:
    """SIGKILL the controller and every process it started (helm), as a dying pod would."""
    proc = engine.proc
    assert proc is not None
    family = [proc.pid, *_descendants(proc.pid)]
    for pid in family:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()
    engine.proc = None
    return len(family) - 1


class Scene:
    """One profile over some clusters, its bystanders, and the end state it should reach."""

    def __init__(self, engine: Engine, mgmt: Kubectl, clusters: list[str], home: Path,
                 *, spec_extra: str = "", sync: str = "ContinuousWithDriftDetection") -> None:
        self.engine, self.mgmt, self.clusters, self.home = engine, mgmt, clusters, home
        uid = _uid()
        self.name, self.label, self.ns = f"chaos-{uid}", f"chaos-{uid}", f"chaos-{uid}"
        self.spec_extra, self.sync = spec_extra, sync
        self.version = 0
        self.selected: set[str] = set()

    def kube(self, cluster: str) -> Kubectl:
        return self.engine.cluster(cluster)

    def helm(self, cluster: str) -> Helm:
        return Helm(self.engine.kubeconfig(cluster), self.home / cluster)

    def prepare(self, clusters: list[str] | None = None) -> None:
        """The namespace (not the profile's), a bystander ConfigMap and a bystander release."""
        def one(cluster: str) -> None:
            kube = self.kube(cluster)
            kube("create", "namespace", self.ns)
            kube("create", "configmap", "keep", "-n", self.ns, "--from-literal=keep=yes")
            self.helm(cluster)("install", "bystander", "standin-app", "--repo",
                               self.engine.repo.url, "--version", "0.1.0", "-n", self.ns,
                               "--set", "data.greeting=bystander")

        self.each(one, clusters or self.clusters)

    def each(self, work: Callable[[str], T], clusters: list[str] | None = None) -> list[T]:
        """work(cluster) on every cluster at once (kubectl and helm mostly wait)."""
        targets = clusters or self.clusters
        with ThreadPoolExecutor(max_workers=len(targets)) as pool:
            return list(pool.map(work, targets))

    def publish(self, version: int) -> None:
        self.version = version
        self.mgmt.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {self.name}, namespace: flotilla-system}}
data:
  objects.yaml: |
    apiVersion: v1
    kind: ConfigMap
    metadata: {{name: app, namespace: {self.ns}}}
    data: {{version: "{version}"}}
    ---
    apiVersion: v1
    kind: ServiceAccount
    metadata: {{name: app, namespace: {self.ns}}}
---
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {self.name}}}
spec:
  syncMode: {self.sync}
  clusterSelector: {{matchLabels: {{{self.label}: "on"}}}}
  policyRefs: [{{kind: ConfigMap, namespace: flotilla-system, name: {self.name}}}]
  helmCharts:
  - {{repositoryURL: '{self.engine.repo.url}', chartName: standin-app, chartVersion: '0.1.0',
      releaseName: web, releaseNamespace: {self.ns}, values: {{data: {{greeting: hello}}}}}}
{self.spec_extra}
""")

    def select(self, cluster: str, on: bool = True) -> None:
        self.mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster,
                  f"{self.label}=on" if on else f"{self.label}-", "--overwrite")
        (self.selected.add if on else self.selected.discard)(cluster)

    # -- what is on a cluster ------------------------------------------------------------------

    def live(self, cluster: str) -> Obj:
        """ConfigMaps (with data), ServiceAccounts and Helm releases of the namespace."""
        kube = self.kube(cluster)
        items = kube.json("get", "configmaps,serviceaccounts", "-n", self.ns)["items"]
        objects = {f"{o['kind']}/{o['metadata']['name']}": o.get("data", {})
                   for o in items if o["metadata"]["name"] not in ("default", "kube-root-ca.crt")}
        releases = json.loads(self.helm(cluster)("list", "-n", self.ns, "-a", "-o", "json")
                              or "[]")
        rels = {r["name"]: f"{r['status']} {r['chart']}" for r in releases}
        return {"objects": objects, "releases": rels}

    def expected(self, deployed: bool) -> Obj:
        objects: Obj = {"ConfigMap/keep": {"keep": "yes"},
                        "ConfigMap/bystander": {"greeting": "bystander"}}
        rels = {"bystander": "deployed standin-app-0.1.0"}
        if deployed:
            objects.update({
                "ConfigMap/app": {"version": str(self.version)},
                "ServiceAccount/app": {},
                "ConfigMap/web": {"greeting": "hello"},
                "ConfigMap/flotilla-owner.web": {"release": "web",
                                                 "owner": f"ClusterProfile//{self.name}"},
            })
            rels["web"] = "deployed standin-app-0.1.0"
        return {"objects": objects, "releases": rels}

    def lost(self, cluster: str, deployed: bool) -> int:
        """Expected objects and bystanders missing from the cluster (or with other data)."""
        want, have = self.expected(deployed), self.live(cluster)
        missing = [k for k, v in want["objects"].items() if have["objects"].get(k) != v]
        missing += [k for k, v in want["releases"].items() if have["releases"].get(k) != v]
        return len(missing)

    def summaries(self) -> dict[str, Obj]:
        items = self.mgmt.json("get", "clustersummaries", "-n", FLEET_NS, "-l",
                               f"{api.PROFILE_NAME_LABEL}={self.name}")["items"]
        return {s["spec"]["clusterRef"]["name"]: s for s in items}

    def settled(self) -> bool:
        """Every selected cluster provisioned, healthy, at the profile's latest revision."""
        profile = self.mgmt.get("clusterprofile", self.name)
        if profile is None:
            return not self.selected
        st = profile.get("status") or {}
        sums = self.summaries()
        if sorted(sums) != sorted(self.selected):
            return False
        for s in sums.values():
            ss = s.get("status") or {}
            if not (ss.get("phase") == "Provisioned" and ss.get("healthy")
                    and ss.get("revision") == s["spec"].get("revision")
                    and s["spec"].get("revision") == st.get("revision")):
                return False
        return st.get("ready") == len(self.selected) == st.get("matched")

    def converged(self) -> bool:
        if not self.settled():
            return False
        return all(self.each(lambda c: self.live(c) == self.expected(c in self.selected)))

    def wait_converged(self, timeout: float) -> float:
        """Seconds until converged; raises AssertionError (with the last state) past timeout."""
        start = time.monotonic()
        eventually(self.converged, timeout=timeout, interval=0.5,
                   what=f"{self.name} converged on {sorted(self.selected)}")
        return time.monotonic() - start

    def close(self) -> None:
        self.mgmt("delete", "clusterprofile", self.name, "--timeout=90s", check=False)
        self.mgmt("delete", "configmap", self.name, "-n", "flotilla-system", check=False)
        def one(cluster: str) -> None:
            self.mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{self.label}-",
                      check=False)
            self.helm(cluster)("uninstall", "bystander", "-n", self.ns, check=False)
            self.kube(cluster)("delete", "namespace", self.ns, "--wait=false", check=False)

        self.each(one)
