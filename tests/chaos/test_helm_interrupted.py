"""A controller killed while helm runs: the release it leaves pending-* is undone, then deployed.

Helm marks a release pending-install/pending-upgrade while it works and
refuses every later operation on it ("another operation is in progress")
until that one ends — which, for a helm killed with its controller, is never.
Here helm is held mid-operation for certain — waiting on a hook Job that an
api-only cluster never runs, or (`wait`) on pods no node may take — so the
kill always lands inside helm. Then the test lets the wait end (completes the
Job by hand, labels a node) and the new controller must get the release
deployed.
"""

from __future__ import annotations

import datetime
import json
import uuid
from pathlib import Path
from typing import Any

from chaoskit import kill_controller
from fleetkit import FLEET_NS, Engine, Helm, Kubectl, eventually

from engine import api


class Release:
    def __init__(self, engine: Engine, mgmt: Kubectl, home: Path, cluster: str) -> None:
        uid = uuid.uuid4().hex[:6]
        self.engine, self.mgmt, self.cluster = engine, mgmt, cluster
        self.name, self.label, self.ns = f"hk-{uid}", f"hk-{uid}", f"hk-{uid}"
        self.helm = Helm(engine.kubeconfig(cluster), home)

    def publish(self, chart: str, values: str, options: str = "{}") -> None:
        self.mgmt.apply(f"""
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {self.name}}}
spec:
  clusterSelector: {{matchLabels: {{{self.label}: "on"}}}}
  helmCharts:
  - {{repositoryURL: '{self.engine.repo.url}', chartName: {chart}, chartVersion: '0.1.0',
      releaseName: web, releaseNamespace: {self.ns}, values: {values}, options: {options}}}
""")

    def status(self) -> str:
        out = self.helm("status", "web", "-n", self.ns, "-o", "json", check=False)
        return str(json.loads(out)["info"]["status"]) if out else "absent"

    def provisioned(self) -> bool:
        items = self.mgmt.json("get", "clustersummaries", "-n", FLEET_NS, "-l",
                               f"{api.PROFILE_NAME_LABEL}={self.name}")["items"]
        st = (items[0].get("status") or {}) if items else {}
        # At the profile's current revision: a Provisioned left from the last one says nothing.
        current = bool(items) and st.get("revision") == items[0]["spec"].get("revision")
        return current and st.get("phase") == "Provisioned" and self.status() == "deployed"

    def close(self) -> None:
        self.mgmt("delete", "clusterprofile", self.name, "--timeout=60s", check=False)
        self.mgmt("label", "workloadcluster", "-n", FLEET_NS, self.cluster, f"{self.label}-",
                  check=False)
        self.engine.cluster(self.cluster)("delete", "namespace", self.ns, "--wait=false",
                                     check=False)


def _complete(work: Kubectl, ns: str, job: str) -> None:
    """Mark a Job complete, as the job controller an api-only cluster lacks would."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = {"startTime": now, "completionTime": now, "succeeded": 1, "conditions": [
        {"type": t, "status": "True", "lastTransitionTime": now}
        for t in ("SuccessCriteriaMet", "Complete")]}
    work("patch", "job", job, "-n", ns, "--subresource=status", "--type=merge",
         "-p", json.dumps({"status": status}))


class TestInterruptedHelm:
    """Install and upgrade killed inside helm both end deployed, with no stuck lock."""

    def test_install_killed_while_a_hook_runs(self, engine: Engine, mgmt: Kubectl,
                                              tmp_path: Path) -> None:
        rel = Release(engine, mgmt, tmp_path, "cluster-3")
        work = engine.cluster(rel.cluster)
        try:
            rel.publish("hook-app", "{hook: {enabled: true}}", "{timeout: 5m}")
            mgmt("label", "workloadcluster", "-n", FLEET_NS, rel.cluster, f"{rel.label}=on")
            first = eventually(lambda: work.get("job", "web-check", "-n", rel.ns), timeout=60,
                               what="helm waiting on the post-install hook")
            try:
                kill_controller(engine)
                assert rel.status() == "pending-install"
            finally:
                engine.start()
            # The new controller's helm replaces the hook Job (before-hook-creation).
            again = eventually(lambda: (job := work.get("job", "web-check", "-n", rel.ns))
                               and job["metadata"]["uid"] != first["metadata"]["uid"],
                               timeout=60, what="the install run again")
            assert again
            _complete(work, rel.ns, "web-check")
            eventually(rel.provisioned, timeout=60, interval=1, what="release deployed")
            history = json.loads(rel.helm("history", "web", "-n", rel.ns, "-o", "json"))
            assert [h["status"] for h in history] == ["deployed"], history
        finally:
            rel.close()

    def test_upgrade_killed_while_helm_waits(self, engine: Engine, mgmt: Kubectl,
                                             tmp_path: Path) -> None:
        rel = Release(engine, mgmt, tmp_path, "cluster-1")  # full: Deployments get ready
        work = engine.cluster(rel.cluster)
        node = work("get", "nodes", "-o", "name").split()[0]
        try:
            rel.publish("standin-app", "{data: {greeting: one}}")
            mgmt("label", "workloadcluster", "-n", FLEET_NS, rel.cluster, f"{rel.label}=on")
            eventually(rel.provisioned, timeout=60, interval=1, what="first revision")
            # No node has the label yet: the new pods stay Pending and helm waits.
            rel.publish("standin-app", f"{{data: {{greeting: two}}, nodeSelector: "
                                       f"{{{rel.label}: 'yes'}}}}", "{wait: true, timeout: 5m}")
            eventually(lambda: rel.status() == "pending-upgrade", timeout=60,
                       what="helm upgrading")
            try:
                kill_controller(engine)
                assert rel.status() == "pending-upgrade"
            finally:
                engine.start()
            work("label", node, f"{rel.label}=yes")
            def upgraded() -> list[dict[str, Any]] | None:
                # One history read decides: status and values of the same, latest revision
                # (CI once read a finished rollback's status, then the next upgrade's values).
                history = json.loads(rel.helm("history", "web", "-n", rel.ns, "-o", "json"))
                last = history[-1]
                if last["status"] != "deployed" or not rel.provisioned():
                    return None
                values = json.loads(rel.helm("get", "values", "web", "-n", rel.ns, "--revision",
                                             str(last["revision"]), "-o", "json"))
                return history if values["data"]["greeting"] == "two" else None

            history = eventually(upgraded, timeout=90, interval=1,
                                 what="release upgraded after the kill")
            # The interrupted revision 2 was rolled back (3), then upgraded again (4).
            assert [h["status"] for h in history] == \
                ["superseded", "pending-upgrade", "superseded", "deployed"], history
        finally:
            work("label", node, f"{rel.label}-", check=False)
            rel.close()
