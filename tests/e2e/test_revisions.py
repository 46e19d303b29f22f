"""Every change is a revision snapshot: referenced ConfigMaps and catalog entries included.

An edit of a values ConfigMap or of a CatalogService's defaults must go
through the canary, maxUpdate and health gates like a spec change, and
`undo` must restore the old content even though the live objects now hold
the new one.
"""

from __future__ import annotations

import datetime
import subprocess
import sys
import uuid
from typing import Any

from fleetkit import FLEET_NS, Engine, Kubectl, eventually

from engine import api

API_ONLY = ["cluster-3", "cluster-4", "cluster-5", "cluster-6"]

STAGES = """  maxUpdate: 1
  rollout:
    stages:
    - {{name: canary, clusterSelector: {{matchLabels: {{{ring}: canary}}}}}}
    - {{name: main}}
    minSuccessTime: 3s"""


def _uid() -> str:
    return uuid.uuid4().hex[:6]


def _ts(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _cli(engine: Engine, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", "rollout", *args,
         "--kubeconfig", engine.fleet.management.kubeconfig],
        capture_output=True, text=True, check=True).stdout


class Staged:
    """A profile over API_ONLY with cluster-3 as its canary; reads summaries and revisions."""

    def __init__(self, engine: Engine, mgmt: Kubectl) -> None:
        self.engine, self.mgmt = engine, mgmt
        self.name, self.label, self.ring = f"rv-{_uid()}", f"t-{_uid()}", f"ring-{_uid()}"
        self.canary, self.main = "cluster-3", [c for c in API_ONLY if c != "cluster-3"]
        for cluster in API_ONLY:
            mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{self.label}=on")
        mgmt("label", "workloadcluster", "-n", FLEET_NS, self.canary, f"{self.ring}=canary")

    def profile(self, content: str) -> None:
        self.mgmt.apply(f"""
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {self.name}}}
spec:
  clusterSelector: {{matchLabels: {{{self.label}: "on"}}}}
{content}
{STAGES.format(ring=self.ring)}
""")

    def summaries(self) -> dict[str, dict[str, Any]]:
        items = self.mgmt.json("get", "clustersummaries", "-n", FLEET_NS, "-l",
                               f"{api.PROFILE_NAME_LABEL}={self.name}")["items"]
        return {s["spec"]["clusterRef"]["name"]: s for s in items}

    def complete(self, revision: int, timeout: float = 120) -> None:
        def done() -> bool:
            st = self.engine.profile(self.name).get("status") or {}
            at = [c for c, s in self.summaries().items()
                  if (s.get("status") or {}).get("revision") == revision
                  and s["status"].get("healthy") and s["spec"].get("revision") == revision]
            return (st.get("rollout") or {}).get("phase") == "Complete" \
                and st["rollout"].get("targetRevision") == revision and len(at) == len(API_ONLY)
        eventually(done, timeout=timeout, what=f"revision {revision} complete")

    def canary_first(self, revision: int, live: Any, old: str, new: str) -> None:
        """The canary reaches `new` while every other cluster still shows `old`."""
        eventually(lambda: live(self.canary) == new, timeout=60, what="canary updated")
        assert [live(c) for c in self.main] == [old] * len(self.main)
        self.complete(revision)
        summaries = self.summaries()
        healthy = _ts(summaries[self.canary]["status"]["healthySince"])
        for cluster in self.main:
            assert live(cluster) == new, cluster
            # The main stage started only after the canary had been healthy for 3 s.
            assert _ts(summaries[cluster]["spec"]["assignedAt"]) >= healthy + 3.0, cluster

    def close(self) -> None:
        self.mgmt("delete", "clusterprofile", self.name, "--timeout=90s", check=False)
        for cluster in API_ONLY:
            self.mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{self.label}-",
                      f"{self.ring}-", check=False)


class TestConfigMapEdit:
    """Editing a referenced ConfigMap is a revision that goes canary first; undo restores it."""

    def test_configmap_edit_goes_through_the_stages_and_undo_restores_it(
            self, engine: Engine, mgmt: Kubectl) -> None:
        run = Staged(engine, mgmt)
        ns, source = f"rv-{_uid()}", f"{run.name}-manifests"

        def publish(version: str) -> None:
            mgmt.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {source}, namespace: flotilla-system}}
data:
  app.yaml: |
    apiVersion: v1
    kind: ConfigMap
    metadata: {{name: app, namespace: {ns}}}
    data: {{version: "{version}"}}
""")

        def live(cluster: str) -> str | None:
            cm = engine.cluster(cluster).get("configmap", "app", "-n", ns)
            return ((cm or {}).get("data") or {}).get("version")

        try:
            publish("1")
            run.profile(f"  policyRefs: [{{kind: ConfigMap, namespace: flotilla-system, "
                        f"name: {source}}}]")
            run.complete(1)
            publish("2")  # the profile itself is not touched
            run.canary_first(2, live, "1", "2")
            history = _cli(engine, "history", run.name)
            assert f"ConfigMap flotilla-system/{source} app.yaml" in history, history
            _cli(engine, "undo", run.name, "--to-revision", "1")
            run.complete(1)
            assert [live(c) for c in API_ONLY] == ["1"] * len(API_ONLY)
            # The ConfigMap itself still holds the new data: revision 1 came from its snapshot.
            held = mgmt.json("get", "configmap", source, "-n", "flotilla-system")
            assert 'version: "2"' in held["data"]["app.yaml"]
        finally:
            run.close()
            mgmt("delete", "configmap", source, "-n", "flotilla-system", check=False)


class TestCatalogEdit:
    """A CatalogService's default values are part of the revision too."""

    def test_catalog_default_values_go_through_the_stages_and_undo_restores_them(
            self, engine: Engine, mgmt: Kubectl) -> None:
        run = Staged(engine, mgmt)
        entry, ns = f"svc-{_uid()}", f"rv-{_uid()}"

        def publish(greeting: str) -> None:
            mgmt.apply(f"""
apiVersion: flotilla.dev/v1alpha1
kind: CatalogService
metadata: {{name: {entry}}}
spec:
  description: test entry
  releaseName: {entry}
  releaseNamespace: {ns}
  versions:
  - version: 0.1.0
    chart: {{repositoryURL: "{engine.repo.url}", chartName: standin-app, chartVersion: 0.1.0}}
    values: {{data: {{greeting: {greeting}}}}}
""")

        def live(cluster: str) -> str | None:
            cm = engine.cluster(cluster).get("configmap", entry, "-n", ns)
            return ((cm or {}).get("data") or {}).get("greeting")

        try:
            publish("hello")
            run.profile(f"  services: [{{name: {entry}}}]")
            run.complete(1)
            assert live(run.canary) == "hello"
            publish("bonjour")
            run.canary_first(2, live, "hello", "bonjour")
            assert f"catalog {entry} /versions/0/values/data/greeting" in \
                _cli(engine, "history", run.name)
            _cli(engine, "undo", run.name, "--to-revision", "1")
            run.complete(1)
            assert [live(c) for c in API_ONLY] == ["hello"] * len(API_ONLY)
        finally:
            run.close()
            mgmt("delete", "catalogservice", entry, "--wait=false", check=False)
