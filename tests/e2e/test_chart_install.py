"""The controller's chart on the management cluster: the core scenario with only the chart's rights.

`helm install` puts deploy/chart/flotilla into flotilla-system (the CRDs are
the fleet's, installed by `flotilla install`, so the release skips them; the
catalog too). No pod runs there (the management cluster has no
controller-manager), so the test plays the pod: it mints a token for the
chart's ServiceAccount with the TokenRequest API, builds a kubeconfig from
it, and runs `flotilla controller` with the very arguments of the installed
Deployment (only the local paths and ports swapped) and the downward API's
environment. The session's own controller is stopped meanwhile, so every
write in the scenario is this identity's. The controller log must hold no
403, and `kubectl auth can-i --list` for the ServiceAccount must show exactly
what the chart's ClusterRole and Role grant beyond what every
authenticated user gets.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fleetkit import FLEET_NS, ROOT, Engine, Helm, Kubectl, bins, eventually

from engine import api
from engine.cli import admin
from engine.devfleet import procs

CHART = ROOT / "deploy" / "chart" / "flotilla"
RELEASE = "flotilla"  # the release name holds the chart's: every object is named "flotilla…"
NS = "flotilla-system"
SA = "flotilla"
CLUSTER = "cluster-1"  # full: the stand-in chart's Deployment becomes Available (profile Ready)

Triple = tuple[str, str, str]  # (resource, resource names, verb) as `can-i --list` shows them


def _uid() -> str:
    return uuid.uuid4().hex[:6]


@pytest.fixture(scope="module")
def release(fleet: Any, mgmt: Kubectl, chart_repo: Any,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Helm]:
    """The chart installed into flotilla-system, without the CRDs and the catalog it finds there."""
    admin.install(fleet.management.kubeconfig, crds=ROOT / "crds", catalog=ROOT / "catalog")
    home = tmp_path_factory.mktemp("chart-helm")
    helm = Helm(fleet.management.kubeconfig, home)
    mirrors = [flag for flag in chart_repo.mirror_flags() if flag != "--chart-mirror"]
    values = home / "values.yaml"
    values.write_text(yaml.safe_dump({
        "catalog": {"install": False}, "replicas": 1, "chartMirrors": mirrors,
        "withdrawTimeout": 30, "logFormat": "json",
        # debug: best-effort writes (Events) log their failures at debug only.
        "logLevel": "debug"}))
    helm("install", RELEASE, str(CHART), "-n", NS, "--create-namespace", "--skip-crds",
         "-f", str(values))
    try:
        yield helm
    finally:
        helm("uninstall", RELEASE, "-n", NS, "--wait", check=False)
        mgmt("delete", "lease", f"{RELEASE}-controller", "-n", NS, "--ignore-not-found",
             check=False)


def _sa_kubeconfig(mgmt: Kubectl, path: Path) -> Path:
    """A kubeconfig whose user is a token of the chart's ServiceAccount (TokenRequest API)."""
    token = mgmt("create", "token", SA, "-n", NS, "--duration", "1h").strip()
    admin_config = yaml.safe_load(Path(mgmt.kubeconfig).read_text())
    cluster = admin_config["clusters"][0]["cluster"]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "management", "cluster": {
            "server": cluster["server"],
            "certificate-authority-data": cluster["certificate-authority-data"]}}],
        "users": [{"name": SA, "user": {"token": token}}],
        "contexts": [{"name": SA, "context": {"cluster": "management", "user": SA}}],
        "current-context": SA}))
    path.chmod(0o600)
    return path


def _local_args(deployment: dict[str, Any], workdir: Path, health: int,
                metrics: int) -> list[str]:
    """The installed Deployment's controller arguments, with paths and ports of this machine."""
    local = {"--helm": str(bins() / "helm"), "--kubectl": str(bins() / "kubectl"),
             "--workdir": str(workdir),
             "--bind-address": "127.0.0.1", "--health-port": str(health),
             "--metrics-port": str(metrics)}
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    out = []
    for arg in args:
        flag = arg.split("=", 1)[0]
        out.append(f"{flag}={local[flag]}" if flag in local and "=" in arg else arg)
    assert {a.split("=", 1)[0] for a in out} >= set(local), args
    return out


class ChartController:
    """`flotilla controller` as the chart's pod would run it, with the ServiceAccount's token."""

    def __init__(self, mgmt: Kubectl, workdir: Path) -> None:
        deployment = mgmt.json("get", "deployment", RELEASE, "-n", NS)
        self.health, self.metrics = procs.free_port(), procs.free_port()
        kubeconfig = _sa_kubeconfig(mgmt, workdir / "sa.kubeconfig")
        self.argv = [sys.executable, "-m", "engine.cli", "controller", "--kubeconfig",
                     str(kubeconfig),
                     *_local_args(deployment, workdir / "work", self.health, self.metrics)]
        (workdir / "home").mkdir()
        # What the Deployment's downward API and HOME give the pod.
        self.env = {**os.environ, "POD_NAME": f"{RELEASE}-test-{_uid()}", "POD_NAMESPACE": NS,
                    "HOME": str(workdir / "home")}
        self.log = workdir / "controller.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         env=self.env, cwd=ROOT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def refused(self) -> list[str]:
        """Log lines of requests the API server refused (403), best-effort writes included.

        Not counted: writes into a namespace being deleted (also 403 Forbidden), which
        earlier tests leave behind on a management cluster without a namespace controller.
        """
        text = self.log.read_text() if self.log.exists() else ""
        return [line for line in text.splitlines()
                if re.search(r"forbidden|\b403\b|cannot \w+ resource", line, re.I)
                and "because it is being terminated" not in line]

    def status(self, path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health}{path}",
                                        timeout=2) as resp:
                return int(resp.status)
        except OSError:
            return 0


@pytest.fixture
def chart_controller(release: Helm, engine: Engine, mgmt: Kubectl,
                     tmp_path: Path) -> Iterator[ChartController]:
    """The session's controller stopped, the chart's identity running in its place."""
    engine.stop()
    running = ChartController(mgmt, tmp_path)
    running.start()
    try:
        yield running
    finally:
        running.stop()
        engine.start()
        for line in running.refused()[:20]:
            print("refused:", line)  # shown with a failure: what the chart's RBAC lacks


def _profile(name: str, label: str, ns: str, repo_url: str, greeting: str) -> str:
    return f"""
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  syncMode: ContinuousWithDriftDetection
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  policyRefs: [{{kind: ConfigMap, namespace: {NS}, name: {name}}}]
  helmCharts:
  - repositoryURL: '{repo_url}'
    chartName: standin-app
    chartVersion: 0.1.0
    releaseName: web
    releaseNamespace: {ns}
    values: {{data: {{greeting: {greeting}}}}}
    valuesFrom: [{{kind: Secret, namespace: {NS}, name: {name}-values}}]
"""


def _refs(name: str, ns: str) -> str:
    replicas = base64.b64encode(b"replicas: 2\n").decode()
    return f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: {NS}}}
data:
  settings.yaml: |
    {{apiVersion: v1, kind: ConfigMap, metadata: {{name: {name}-settings, namespace: {ns}}},
     data: {{owner: platform}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: {name}-values, namespace: {NS}}}
data: {{values.yaml: {replicas}}}
"""


def _release(helm: Helm, ns: str) -> dict[str, Any] | None:
    rows = json.loads(helm("list", "-n", ns, "-o", "json"))
    return rows[0] if rows else None


def _can_i(mgmt: Kubectl, user: str, ns: str) -> set[Triple]:
    """`kubectl auth can-i --list` as a set of (resource, resource names, verb)."""
    lines = mgmt("auth", "can-i", "--list", "--as", user, "-n", ns).splitlines()
    header = lines[0]
    cols = [header.index(h) for h in ("Resources", "Non-Resource URLs", "Resource Names",
                                      "Verbs")]
    out: set[Triple] = set()
    for line in lines[1:]:
        resource = line[cols[0]:cols[1]].strip() or line[cols[1]:cols[2]].strip()
        names = line[cols[2]:cols[3]].strip()
        for verb in line[cols[3]:].strip().strip("[]").split():
            out.add((resource, names, verb))
    return out


def _granted(rules: list[dict[str, Any]]) -> set[Triple]:
    out: set[Triple] = set()
    for rule in rules:
        names = "[" + " ".join(rule.get("resourceNames") or []) + "]"
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                shown = resource if not group else (
                    f"{resource.split('/')[0]}.{group}" + ("/" + resource.split("/", 1)[1]
                                                          if "/" in resource else ""))
                out |= {(shown, names, verb) for verb in rule["verbs"]}
    return out


def _tenant(name: str, label: str, wc_ns: str, ns: str) -> str:
    """A namespaced Profile deploying one ConfigMap to the clusters of its own namespace."""
    return f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: {wc_ns}}}
data:
  object.yaml: |
    {{apiVersion: v1, kind: ConfigMap, metadata: {{name: {name}-tenant, namespace: {ns}}},
     data: {{team: a}}}}
---
apiVersion: flotilla.dev/v1alpha1
kind: Profile
metadata: {{name: {name}, namespace: {wc_ns}}}
spec:
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  policyRefs: [{{kind: ConfigMap, namespace: {wc_ns}, name: {name}}}]
"""


def _revisions(mgmt: Kubectl, name: str) -> list[int]:
    items = mgmt.json("get", "controllerrevisions", "-n", NS, "-l",
                      f"{api.PROFILE_NAME_LABEL}={name}")["items"]
    return sorted(int(r["revision"]) for r in items)


def test_core_scenario_with_the_charts_service_account(
        chart_controller: ChartController, release: Helm, mgmt: Kubectl, engine: Engine,
        chart_repo: Any, tmp_path: Path) -> None:
    name, ns, wc_ns = f"ch-{_uid()}", f"ch-{_uid()}", f"chwc-{_uid()}"
    label, tenant_label = f"t-{_uid()}", f"t-{_uid()}"
    eventually(lambda: chart_controller.status("/healthz") == 200, timeout=30,
               what="/healthz answers 200")
    eventually(lambda: chart_controller.status("/readyz") == 200, timeout=60,
               what="/readyz answers 200")
    eventually(lambda: ((mgmt.get("lease", f"{RELEASE}-controller", "-n", NS) or {})
                        .get("spec", {}).get("holderIdentity") == chart_controller.env["POD_NAME"]),
               timeout=30, what="the chart's Lease held by the pod")

    # A cluster registered now is connected by this identity (its kubeconfig Secret read);
    # a tenant's Profile in its namespace deploys to it.
    admin.register(mgmt.kubeconfig, namespace=wc_ns, name="chart-e2e",
                   cluster_kubeconfig=engine.kubeconfig(CLUSTER), labels={tenant_label: "on"})
    eventually(lambda: (mgmt.get("workloadcluster", "chart-e2e", "-n", wc_ns) or {})
               .get("status", {}).get("ready"), timeout=60, what="chart-e2e connected")

    target, helm = engine.cluster(CLUSTER), Helm(engine.kubeconfig(CLUSTER), tmp_path / "h")
    try:
        mgmt.apply(_refs(name, ns))
        mgmt.apply(_profile(name, label, ns, chart_repo.url, "hi"))
        mgmt.apply(_tenant(name, tenant_label, wc_ns, ns))
        mgmt("label", "workloadcluster", "-n", FLEET_NS, CLUSTER, f"{label}=on")
        mgmt("wait", "--for=condition=Ready", f"clusterprofile/{name}", "--timeout=90s",
             timeout=120)
        mgmt("wait", "--for=condition=Ready", f"profile/{name}", "-n", wc_ns, "--timeout=60s",
             timeout=90)
        assert target.get("configmap", f"{name}-settings", "-n", ns)
        assert target.get("configmap", f"{name}-tenant", "-n", ns)
        values = json.loads(helm("get", "values", "web", "-n", ns, "-o", "json"))
        assert values == {"data": {"greeting": "hi"}, "replicas": 2}

        # A values change is an upgrade.
        mgmt.apply(_profile(name, label, ns, chart_repo.url, "hello-again"))
        eventually(lambda: json.loads(helm("get", "values", "web", "-n", ns, "-o", "json"))
                   ["data"] == {"greeting": "hello-again"}, timeout=60, what="release upgraded")
        mgmt("wait", "--for=condition=Ready", f"clusterprofile/{name}", "--timeout=90s",
             timeout=120)

        # A hand edit is corrected.
        target("patch", "configmap", f"{name}-settings", "-n", ns, "--type=merge",
               "-p", '{"data": {"owner": "someone"}}')
        eventually(lambda: (target.get("configmap", f"{name}-settings", "-n", ns) or {})
                   .get("data") == {"owner": "platform"}, timeout=30, what="edit corrected")

        # No helm operation on the release still running when the withdrawal starts.
        eventually(lambda: (_release(helm, ns) or {}).get("status") == "deployed", timeout=60,
                   what="release settled")

        # Unlabelled: withdrawn.
        mgmt("label", "workloadcluster", "-n", FLEET_NS, CLUSTER, f"{label}-")
        mgmt("label", "workloadcluster", "-n", wc_ns, "chart-e2e", f"{tenant_label}-")
        for obj in ("settings", "tenant"):
            eventually(lambda o=obj: target.get("configmap", f"{name}-{o}", "-n", ns) is None,
                       timeout=60, what=f"{obj} manifest withdrawn")
        eventually(lambda: _release(helm, ns) is None, timeout=60, what="release uninstalled")
        eventually(lambda: not mgmt.json("get", "clustersummaries", "-A", "-l",
                                         f"{api.PROFILE_NAME_LABEL}={name}")["items"],
                   timeout=60, what="summaries gone")

        # Old revisions are pruned: the newest 10 stay (none runs anywhere now).
        assert _revisions(mgmt, name) == [1, 2]
        for number in range(3, 12):
            mgmt.apply(_profile(name, label, ns, chart_repo.url, f"v{number}"))
            eventually(lambda n=number: _revisions(mgmt, name)[-1] == n, timeout=30,
                       what=f"revision {number} recorded")
        eventually(lambda: _revisions(mgmt, name) == list(range(2, 12)), timeout=30,
                   what="revision 1 pruned")
        profile = mgmt.json("get", "clusterprofile", name)
        assert "forbidden" not in json.dumps(profile.get("status")).lower()
    finally:
        mgmt("delete", "profile", name, "-n", wc_ns, "--timeout=60s", check=False)
        mgmt("delete", "clusterprofile", name, "--timeout=60s", check=False)
        mgmt("delete", "configmap,secret", name, f"{name}-values", "-n", NS,
             "--ignore-not-found", check=False)
        # No garbage collector runs on the management cluster: the revisions stay behind.
        mgmt("delete", "controllerrevisions,secrets", "-n", NS, "-l",
             f"{api.PROFILE_NAME_LABEL}={name}", check=False)
        mgmt("delete", "workloadcluster", "chart-e2e", "-n", wc_ns, "--timeout=60s", check=False)
        # The management cluster runs no namespace controller: do not wait for it.
        mgmt("delete", "namespace", wc_ns, "--wait=false", check=False)

    chart_controller.stop()
    assert not chart_controller.refused(), "\n".join(chart_controller.refused()[:20])
    assert "leading: acquired lease" in chart_controller.log.read_text()


def test_service_account_has_only_what_the_chart_grants(release: Helm,
                                                        mgmt: Kubectl) -> None:
    cluster_rules = mgmt.json("get", "clusterrole", f"{RELEASE}-controller")["rules"]
    role_rules = mgmt.json("get", "role", f"{RELEASE}-leader-election", "-n", NS)["rules"]
    user = f"system:serviceaccount:{NS}:{SA}"
    nobody = f"system:serviceaccount:{NS}:nobody-{_uid()}"  # the groups' rights, nothing bound
    for ns in (NS, "default"):
        extra = _can_i(mgmt, user, ns) - _can_i(mgmt, nobody, ns)
        expected = _granted(cluster_rules) | (_granted(role_rules) if ns == NS else set())
        assert extra == expected, (ns, sorted(extra ^ expected))
