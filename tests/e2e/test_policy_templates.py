"""Templated policyRefs on the real fleet: an annotated ConfigMap is rendered for each cluster.

Two ConfigMaps hold the same manifest with `{{ cluster.metadata.name }}` in
it: one annotated `projectsveltos.io/template` (as Sveltos writes it), and one
not, which is deployed as written. Annotating the second with ours,
`flotilla.dev/template`, is a new revision that renders it too.
"""

from __future__ import annotations

import uuid

from fleetkit import FLEET_NS, Engine, Kubectl, eventually

CLUSTERS = ("cluster-1", "cluster-2")


def _configmap(name: str, ns: str, obj: str, annotations: str) -> str:
    return f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: flotilla-system, annotations: {{{annotations}}}}}
data:
  objects.yaml: |
    apiVersion: v1
    kind: ConfigMap
    metadata: {{name: {obj}, namespace: {ns}}}
    data: {{cluster: "{{{{ cluster.metadata.name }}}}"}}
"""


def _rendered(target: Kubectl, ns: str, cluster: str) -> bool | None:
    live = target.get("configmap", "verbatim", "-n", ns) or {}
    return live.get("data") == {"cluster": cluster} or None


class TestTemplatedPolicyRefs:
    """The template annotation decides whether a policyRef's manifests are rendered."""

    def test_rendered_per_cluster_only_when_annotated(self, engine: Engine,
                                                      mgmt: Kubectl) -> None:
        uid = uuid.uuid4().hex[:6]
        name, label, ns = f"tpl-{uid}", f"tpl-{uid}", f"tpl-{uid}"
        mgmt.apply(_configmap(f"{name}-a", ns, "templated", "projectsveltos.io/template: ok"))
        mgmt.apply(_configmap(f"{name}-b", ns, "verbatim", ""))
        mgmt.apply(f"""
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  policyRefs:
  - {{kind: ConfigMap, namespace: flotilla-system, name: {name}-a}}
  - {{kind: ConfigMap, namespace: flotilla-system, name: {name}-b}}
""")
        for cluster in CLUSTERS:
            mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{label}=on")
        try:
            engine.wait_ready(name, len(CLUSTERS))
            for cluster in CLUSTERS:
                target = engine.cluster(cluster)
                templated = target.get("configmap", "templated", "-n", ns)
                verbatim = target.get("configmap", "verbatim", "-n", ns)
                assert templated is not None and templated["data"] == {"cluster": cluster}
                assert verbatim is not None
                assert verbatim["data"] == {"cluster": "{{ cluster.metadata.name }}"}
            revision = engine.profile(name)["status"]["revision"]
            mgmt("annotate", "configmap", "-n", "flotilla-system", f"{name}-b",
                 "flotilla.dev/template=true")
            for cluster in CLUSTERS:
                eventually(lambda c=cluster: _rendered(engine.cluster(c), ns, c), timeout=60,
                           what=f"the newly annotated ConfigMap rendered on {cluster}")
            assert engine.profile(name)["status"]["revision"] > revision
        finally:
            mgmt("delete", "clusterprofile", name, "--ignore-not-found")
            for cluster in CLUSTERS:
                mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{label}-")
            eventually(lambda: mgmt.get("clusterprofile", name) is None or None, timeout=60,
                       what="profile gone")
            mgmt("delete", "configmap", "-n", "flotilla-system", f"{name}-a", f"{name}-b",
                 "--ignore-not-found")
