"""A key removed from a manifest is removed from the live object.

Regression: objects were created with a POST and then applied, and the
POST's own field-ownership entry kept every field it created, so removing
a key from the manifest never removed it from the cluster.
"""

from __future__ import annotations

import json
import uuid

from fleetkit import FLEET_NS, Engine, Kubectl, eventually


def test_a_removed_key_leaves_the_live_object(engine: Engine, mgmt: Kubectl) -> None:
    uid = uuid.uuid4().hex[:6]
    name, ns = f"fr-{uid}", f"fr-app-{uid}"
    cluster = next(c.name for c in engine.fleet.clusters if not c.full)
    workload = engine.cluster(cluster)

    def publish(data: dict[str, str]) -> None:
        manifest = (f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n"
                    f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: app, namespace: {ns}}}\n"
                    f"data: {json.dumps(data)}\n")
        mgmt.apply(json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": name, "namespace": "flotilla-system"},
                               "data": {"objects.yaml": manifest}}))

    def live() -> dict[str, str]:
        found = workload.get("configmap", "app", "-n", ns) or {}
        return found.get("data") or {}  # type: ignore[no-any-return]

    publish({"kept": "1", "dropped": "2"})
    mgmt.apply(f"""
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  clusterSelector: {{matchLabels: {{{name}: "on"}}}}
  policyRefs: [{{kind: ConfigMap, namespace: flotilla-system, name: {name}}}]
""")
    try:
        mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{name}=on")
        eventually(lambda: live() == {"kept": "1", "dropped": "2"}, timeout=60,
                   what="both keys deployed")
        publish({"kept": "1"})
        eventually(lambda: live() == {"kept": "1"}, timeout=60, what="the removed key gone")
        managers = [(e["manager"], e["operation"]) for e in workload.json(
            "get", "configmap", "app", "-n", ns, "--show-managed-fields")["metadata"][
            "managedFields"]]
        assert ("flotilla", "Update") not in managers, managers
    finally:
        mgmt("delete", "clusterprofile", name, "--wait=false", check=False)
        mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{name}-", check=False)
        mgmt("delete", "configmap", "-n", "flotilla-system", name, check=False)
