"""The read commands on the real fleet, as people run them: `kubectl flotilla …` through the
real kubectl (plugin on PATH, kubectl's --kubeconfig/--context/KUBECONFIG), `status` trees,
`why`, `rollout status --watch` as a CI gate, and a `plan` free of helm's noise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fleetkit import FLEET_NS, Engine, Kubectl, bins, eventually

from engine import api

VENV_BIN = Path(sys.executable).parent  # where kubectl-flotilla was installed


def _uid() -> str:
    return uuid.uuid4().hex[:6]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{bins()}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = extra.pop("HOME", env.get("HOME", "/nonexistent"))
    return {**env, **extra}


def kubectl_flotilla(*args: str, timeout: float = 120,
                     **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bins() / "kubectl"), "flotilla", *args], capture_output=True,
                          text=True, timeout=timeout, env=_env(**env), check=False)


def flotilla(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "flotilla"), *args], capture_output=True, text=True,
                          timeout=timeout, env=_env(**env), check=False)


class Staged:
    """A two-stage ClusterProfile (canary: cluster-2, main: cluster-3) of one ConfigMap."""

    def __init__(self, engine: Engine, mgmt: Kubectl, extra: str = "") -> None:
        self.engine, self.mgmt = engine, mgmt
        self.canary = ""  # more fields of the canary stage, e.g. ", minSuccessTime: 5s"
        self.name, self.label, self.ring = f"kc-{_uid()}", f"t-{_uid()}", f"ring-{_uid()}"
        self.ns, self.extra = f"kc-{_uid()}", extra
        for cluster in ("cluster-2", "cluster-3"):
            mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{self.label}=on")
        mgmt("label", "workloadcluster", "-n", FLEET_NS, "cluster-2", f"{self.ring}=canary")

    def publish(self, version: int, extra: str | None = None) -> None:
        if extra is not None:
            self.extra = extra
        self.mgmt.apply(f"""
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {self.name}}}
spec:
  clusterSelector: {{matchLabels: {{{self.label}: "on"}}}}
  policyRefs: [{{kind: ConfigMap, namespace: flotilla-system, name: {self.name}-v{version}}}]
  rollout:
    stages:
    - {{name: canary, clusterSelector: {{matchLabels: {{{self.ring}: canary}}}}{self.canary}}}
    - {{name: main}}
{self.extra}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: {self.name}-v{version}, namespace: flotilla-system}}
data:
  app.yaml: |
    apiVersion: v1
    kind: ConfigMap
    metadata: {{name: app, namespace: {self.ns}}}
    data: {{version: "{version}"}}
""")

    def complete(self, revision: int, timeout: float = 90) -> None:
        def done() -> bool:
            st = self.engine.profile(self.name).get("status") or {}
            return (st.get("rollout") or {}).get("phase") == "Complete" \
                and st["rollout"].get("targetRevision") == revision and st.get("ready") == 2
        eventually(done, timeout=timeout, what=f"revision {revision} complete")

    def close(self) -> None:
        self.mgmt("delete", "clusterprofile", self.name, "--timeout=90s", check=False)
        for cluster in ("cluster-2", "cluster-3"):
            self.mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{self.label}-",
                      f"{self.ring}-", check=False)


@pytest.fixture
def staged(engine: Engine, mgmt: Kubectl) -> Iterator[Staged]:
    profile = Staged(engine, mgmt)
    try:
        yield profile
    finally:
        profile.close()


def _two_contexts(engine: Engine, folder: Path) -> Path:
    """A kubeconfig whose current context points nowhere; `mgmt` is the real one."""
    doc = yaml.safe_load(Path(engine.fleet.management.kubeconfig).read_text())
    real = doc["contexts"][0]["context"]
    doc["clusters"].append({"name": "nowhere", "cluster": {"server": "https://127.0.0.1:9"}})
    doc["contexts"] = [{"name": "nowhere", "context": {"cluster": "nowhere",
                                                       "user": real["user"]}},
                       {"name": "mgmt", "context": real}]
    doc["current-context"] = "nowhere"
    path = folder / "two-contexts.kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


class TestKubectlPlugin:
    """kubectl finds `kubectl-flotilla` on PATH and hands it kubectl's own flags."""

    def test_status_tree_through_kubectl(self, engine: Engine, staged: Staged,
                                         tmp_path: Path) -> None:
        staged.publish(1)
        staged.complete(1)
        kc = str(engine.fleet.management.kubeconfig)
        done = kubectl_flotilla("status", staged.name, "--kubeconfig", kc)
        assert done.returncode == 0, done.stderr
        out = done.stdout
        assert out.startswith(f"ClusterProfile {staged.name}  Ready  revision 1"), out
        for text in ("stage canary", f"{FLEET_NS}/cluster-2  Provisioned  healthy  in sync  r1",
                     "stage main", f"{FLEET_NS}/cluster-3  Provisioned",
                     f"ConfigMap/{staged.ns}/app  Manifests  Provisioned  healthy"):
            assert text in out, out
        # The tree's order: canary holds cluster-2, main holds cluster-3.
        assert out.index("stage canary") < out.index("cluster-2") < out.index("stage main") \
            < out.index("cluster-3"), out
        assert done.stderr == ""

        # KUBECONFIG and --context, as kubectl reads them: the current context is dead.
        two = _two_contexts(engine, tmp_path)
        dead = kubectl_flotilla("status", staged.name, timeout=60, KUBECONFIG=str(two))
        assert dead.returncode != 0
        picked = kubectl_flotilla("status", staged.name, "-o", "json", "--context", "mgmt",
                                  KUBECONFIG=f"{two}{os.pathsep}{tmp_path / 'missing'}")
        assert picked.returncode == 0, picked.stderr
        view = json.loads(picked.stdout)
        assert [s["name"] for s in view["stages"]] == ["canary", "main"]
        assert [c["cluster"] for c in view["stages"][0]["clusters"]] == [f"{FLEET_NS}/cluster-2"]
        assert view["stages"][0]["clusters"][0]["standing"] == "done"
        assert view["stages"][1]["done"] == 1 and view["stages"][1]["total"] == 1
        # ~/.kube/config when nothing else is named.
        home = tmp_path / "home"
        (home / ".kube").mkdir(parents=True)
        (home / ".kube" / "config").write_text(Path(kc).read_text())
        yml = kubectl_flotilla("status", staged.name, "-o", "yaml", HOME=str(home))
        assert yml.returncode == 0, yml.stderr
        assert yaml.safe_load(yml.stdout)["name"] == staged.name

    def test_why_selected_and_not(self, engine: Engine, mgmt: Kubectl, staged: Staged) -> None:
        staged.publish(1)
        refs = f"kc-refs-{_uid()}"
        mgmt.apply(f"""
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {refs}}}
spec:
  clusterRefs: [{{namespace: {FLEET_NS}, name: cluster-1}}]
  syncMode: DryRun
""")
        try:
            kc = str(engine.fleet.management.kubeconfig)
            chosen = kubectl_flotilla("why", "cluster-2", "--kubeconfig", kc)
            assert chosen.returncode == 0, chosen.stderr
            head, _, rest = chosen.stdout.partition("\nnot selected by:")
            assert f"ClusterProfile {staged.name} (Selector)" in head, chosen.stdout
            assert f"✓ clusterSelector: matchLabels {staged.label}=on: cluster has " \
                   f"{staged.label}=on" in head
            assert f"ClusterProfile {refs}" in rest, chosen.stdout

            other = kubectl_flotilla("why", f"{FLEET_NS}/cluster-1", "--kubeconfig", kc,
                                     "-o", "json")
            assert other.returncode == 0, other.stderr
            by_name = {p["name"]: p for p in json.loads(other.stdout)["profiles"]}
            assert by_name[refs]["selected"] and by_name[refs]["reason"] == "ClusterRefs"
            mine = by_name[staged.name]
            assert not mine["selected"]
            assert {"field": "clusterSelector", "holds": False,
                    "detail": f"matchLabels {staged.label}=on: cluster has no "
                              f"{staged.label}"} in mine["checks"]
            missing = kubectl_flotilla("why", "no-such-cluster", "--kubeconfig", kc)
            assert missing.returncode == 1
            assert "WorkloadCluster no-such-cluster not found" in missing.stderr
        finally:
            mgmt("delete", "clusterprofile", refs, "--timeout=60s", check=False)


def test_kubectl_completes_the_plugin() -> None:
    """kubectl asks `kubectl_complete-flotilla` (found on PATH) to complete `kubectl flotilla`."""
    done = subprocess.run([str(bins() / "kubectl"), "__complete", "flotilla", "rollout", "st"],
                          capture_output=True, text=True, timeout=60, env=_env(), check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["status", ":4"]
    files = subprocess.run([str(bins() / "kubectl"), "__complete", "flotilla", "status",
                            "--kubeconfig", ""], capture_output=True, text=True, timeout=60,
                           env=_env(), check=False)
    assert files.stdout.splitlines()[-1] == ":0"  # the shell completes file names


class TestRolloutWatch:
    """`rollout status --watch` waits like kubectl's and says how the rollout ended."""

    def test_completed_rollout_exits_zero(self, staged: Staged) -> None:
        staged.publish(1)
        staged.complete(1)
        # The canary soaks: progress to watch. Long enough that the watch's own start-up
        # (seconds under load) cannot miss it: at 4 s CI saw the rollout finish first.
        staged.canary = ", minSuccessTime: 15s"
        staged.publish(2)
        kc = str(staged.engine.fleet.management.kubeconfig)
        started = time.monotonic()
        done = flotilla("rollout", "status", staged.name, "--watch", "--timeout", "120",
                        "--kubeconfig", kc, timeout=150)
        assert done.returncode == 0, (done.stdout, done.stderr)
        lines = done.stdout.splitlines()
        assert lines[-1] == "rollout of revision 2 complete", done.stdout
        # Plain lines (no terminal), printed as they change: the canary soaked while main
        # waited, then both were done.
        assert "canary: 0/1 done, 1 soaking" in lines, done.stdout
        assert "main: 0/1 done, 1 waiting" in lines, done.stdout
        assert lines.index("canary: 0/1 done, 1 soaking") < lines.index("canary: 1/1 done") \
            < lines.index("main: 1/1 done"), done.stdout
        assert "\x1b[" not in done.stdout
        st = staged.engine.profile(staged.name)["status"]
        assert st["rollout"]["phase"] == "Complete" and st["rollout"]["targetRevision"] == 2
        assert time.monotonic() - started < 120

    def test_paused_rollout_exits_non_zero(self, staged: Staged) -> None:
        staged.publish(1)
        staged.complete(1)
        staged.publish(2, "    paused: true")  # under spec.rollout
        kc = str(staged.engine.fleet.management.kubeconfig)
        paused = flotilla("rollout", "status", staged.name, "--watch", "--timeout", "60",
                          "--kubeconfig", kc, timeout=90)
        assert paused.returncode == 2, (paused.stdout, paused.stderr)
        assert "rollout of revision 2 is paused" in paused.stderr
        summaries = staged.mgmt.json("get", "clustersummaries", "-n", FLEET_NS, "-l",
                                     f"{api.PROFILE_NAME_LABEL}={staged.name}")["items"]
        assert {s["spec"]["revision"] for s in summaries} == {1}  # nothing moved

    def test_timeout_exits_three(self, staged: Staged) -> None:
        staged.publish(1, f"""  validateHealths:
  - {{name: never, version: v1, kind: ConfigMap, namespace: {staged.ns}, objectName: app,
      evaluateCEL: [{{name: never, rule: "resource.data.version == 'never'"}}]}}""")
        kc = str(staged.engine.fleet.management.kubeconfig)
        out = flotilla("rollout", "status", staged.name, "--watch", "--timeout", "4", "-o",
                       "json", "--kubeconfig", kc, timeout=60)
        assert out.returncode == 3, (out.stdout, out.stderr)
        assert "timed out after 4s" in out.stderr
        last: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
        assert last["stages"][0]["name"] == "canary" and last["stages"][1]["done"] == 0


def test_plan_prints_no_helm_noise(engine: Engine, mgmt: Kubectl) -> None:
    """A release not installed yet is planned as an install, without helm's failure lines."""
    name, label = f"kc-plan-{_uid()}", f"t-{_uid()}"
    mgmt("label", "workloadcluster", "-n", FLEET_NS, "cluster-3", f"{label}=on")
    mgmt.apply(f"""
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  rollout: {{paused: true}}    # nothing deployed: the release stays uninstalled
  helmCharts:
  - {{repositoryURL: '{engine.repo.url}', chartName: multi-a, chartVersion: 0.1.0,
      releaseName: {name}, releaseNamespace: {name}}}
""")
    try:
        done = kubectl_flotilla("plan", name, "--kubeconfig",
                                str(engine.fleet.management.kubeconfig),
                                "--workdir", str(engine.workdir / "work"), timeout=180,
                                FLOTILLA_HELM=str(bins() / "helm"))
        assert done.returncode == 0, done.stderr
        assert f"{FLEET_NS}/cluster-3 (Selector):" in done.stdout, done.stdout
        assert "install" in done.stdout, done.stdout
        assert done.stderr == "", done.stderr
        for noise in ("command failed", "--kubeconfig", str(engine.workdir)):
            assert noise not in done.stdout + done.stderr
        data = kubectl_flotilla("plan", name, "-o", "json", "--kubeconfig",
                                str(engine.fleet.management.kubeconfig),
                                "--workdir", str(engine.workdir / "work"), timeout=180,
                                FLOTILLA_HELM=str(bins() / "helm"))
        assert data.returncode == 0 and data.stderr == "", data.stderr
        (entry,) = json.loads(data.stdout)["clusters"]
        assert entry["cluster"] == f"{FLEET_NS}/cluster-3" and entry["reason"] == "Selector"
        assert [c.split()[0] for c in entry["changes"]] == ["install"], entry
        # The noise is real: the same preview without the command's quieting prints it.
        probe = ("import asyncio, pathlib, sys; from engine.controller import preview; "
                 "asyncio.run(preview.render_plan(sys.argv[1], sys.argv[2], "
                 "helm=pathlib.Path(sys.argv[3]), workdir=pathlib.Path(sys.argv[4])))")
        raw = subprocess.run([sys.executable, "-c", probe,
                              str(engine.fleet.management.kubeconfig), name,
                              str(bins() / "helm"), str(engine.workdir / "work")],
                             capture_output=True, text=True, timeout=180, check=False)
        assert raw.returncode == 0, raw.stderr
        assert "command failed" in raw.stderr
    finally:
        mgmt("delete", "clusterprofile", name, "--timeout=60s", check=False)
        mgmt("label", "workloadcluster", "-n", FLEET_NS, "cluster-3", f"{label}-", check=False)
