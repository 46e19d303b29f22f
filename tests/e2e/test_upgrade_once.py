"""A values change under drift detection upgrades the release once, and reports no drift.

Regression: the drift check judged a summary while its upgrade to a new
revision was under way (the spec named the new revision, the status still
the old one), saw the live objects moving, "corrected" them with a second
`helm upgrade` and reported false drift. Now a summary is judged only once
the revision its spec names is recorded as deployed.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from fleetkit import FLEET_NS, Engine, Helm, Kubectl, eventually


def test_values_change_is_one_upgrade(engine: Engine, mgmt: Kubectl, tmp_path: Path) -> None:
    uid = uuid.uuid4().hex[:6]
    name, ns, cluster = f"once-{uid}", f"once-{uid}", "cluster-1"
    helm = Helm(engine.kubeconfig(cluster), tmp_path / "helm")

    def profile(greeting: str) -> None:
        mgmt.apply(f"""
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  syncMode: ContinuousWithDriftDetection
  clusterSelector: {{matchLabels: {{{name}: "on"}}}}
  helmCharts:
  - repositoryURL: '{engine.repo.url}'
    chartName: standin-app
    chartVersion: 0.1.0
    releaseName: web
    releaseNamespace: {ns}
    values: {{data: {{greeting: {greeting}}}}}
""")

    def history() -> list[dict[str, object]]:
        found: list[dict[str, object]] = json.loads(helm("history", "web", "-n", ns, "-o",
                                                         "json"))
        return found

    def summary_status() -> dict[str, object]:
        items = mgmt.json("get", "clustersummaries", "-n", FLEET_NS, "-l",
                          f"flotilla.dev/profile-name={name}")["items"]
        return items[0].get("status") or {} if items else {}

    def drift_checks() -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in engine.metrics().splitlines()
                   if line.startswith("flotilla_drift_checks_total "))

    profile("hi")
    mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{name}=on")
    try:
        engine.wait_ready(name, 1)
        assert len(history()) == 1
        checks = drift_checks()
        profile("hello-again")
        eventually(lambda: summary_status().get("revision") == 2
                   and summary_status().get("phase") == "Provisioned", timeout=60,
                   what="revision 2 recorded")
        # The drift check the deploy asks for has compared what is live since.
        eventually(lambda: drift_checks() > checks, timeout=30,
                   what="a drift check after the upgrade")
        releases = history()
        assert [r["revision"] for r in releases] == [1, 2], releases
        values = json.loads(helm("get", "values", "web", "-n", ns, "-o", "json"))
        assert values == {"data": {"greeting": "hello-again"}}
        assert not summary_status().get("drift"), summary_status().get("drift")
        events = mgmt.json("get", "events", "-n", FLEET_NS, "--field-selector",
                           "reason=Drifted")["items"]
        assert not [e for e in events if name in e["involvedObject"]["name"]], events
    finally:
        mgmt("delete", "clusterprofile", name, "--wait=false", check=False)
        mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{name}-", check=False)
