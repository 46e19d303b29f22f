"""kustomizationRefs on the real fleet: built with the real kubectl, deployed, updated, withdrawn.

One profile references two kustomizations: files as a ConfigMap's data keys
(a Deployment and a strategic-merge patch, with `values` rendered per cluster
into the built output and a `targetNamespace`), and a tarball — in a
ConfigMap's binaryData and in a Secret — built at a `path`. The objects
appear on the workload cluster as kustomize built them, the summary's rows
and inventory say Kustomize, a Flux GitRepository ref is named by the
Unsupported condition (and not an error), drift on a built object is
corrected, an edit of the ConfigMap becomes a new revision that is
redeployed, and deleting the profile removes the objects.
"""

from __future__ import annotations

import base64
import io
import tarfile
import uuid

from fleetkit import FLEET_NS, Engine, Kubectl, eventually

from engine import api

CLUSTER = "cluster-2"
DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations: {who: "{{ Who }}"}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "registry.k8s.io/pause:3.9"}]}
"""


def _patch(replicas: int) -> str:
    return ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
            f"spec: {{replicas: {replicas}}}\n")


def _configmap(name: str, replicas: int) -> str:
    data = {"kustomization.yaml": "resources: [deploy.yaml]\npatches: [{path: replicas.yaml}]\n"
                                  "labels: [{pairs: {built-by: kustomize}}]\n",
            "deploy.yaml": DEPLOY, "replicas.yaml": _patch(replicas)}
    body = "".join(f"  {k}: |\n" + "".join(f"    {line}\n" for line in v.splitlines())
                   for k, v in data.items())
    return (f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: "
            f"flotilla-system}}\ndata:\n{body}")


def _tarball() -> str:
    files = {"overlay/kustomization.yaml": b"resources: [cm.yaml]\nnamePrefix: tar-\n",
             "overlay/cm.yaml": b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n"
                                b"data: {from: tarball}\n"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path, content in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return base64.b64encode(buf.getvalue()).decode()


class TestKustomizationRefs:
    """A Sveltos-shaped kustomizationRefs profile deploys what `kubectl kustomize` builds."""

    def test_build_deploy_update_withdraw(self, engine: Engine, mgmt: Kubectl) -> None:
        uid = uuid.uuid4().hex[:6]
        name, label, ns, tns = f"kz-{uid}", f"kz-{uid}", f"kz-{uid}", f"kzt-{uid}"
        sns = f"kzs-{uid}"
        target = engine.cluster(CLUSTER)
        mgmt.apply(_configmap(name, 3))
        mgmt.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}-tar, namespace: flotilla-system}}
binaryData: {{overlay.tar.gz: {_tarball()}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: {name}-secret, namespace: flotilla-system}}
data: {{bundle.tgz: {_tarball()}}}
---
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  syncMode: ContinuousWithDriftDetection
  kustomizationRefs:
  - {{kind: ConfigMap, namespace: flotilla-system, name: {name}, targetNamespace: {ns},
     values: {{Who: "{{{{ cluster.metadata.name }}}}"}}}}
  - {{kind: ConfigMap, namespace: flotilla-system, name: {name}-tar, path: overlay,
     targetNamespace: {tns}}}
  - {{kind: GitRepository, namespace: flotilla-system, name: flux-source}}
  - {{kind: Secret, namespace: flotilla-system, name: {name}-secret, path: overlay,
     targetNamespace: {sns}}}
""")
        mgmt("label", "workloadcluster", "-n", FLEET_NS, CLUSTER, f"{label}=on")
        try:
            engine.wait_ready(name, 1)
            deploy = target.get("deployment", "web", "-n", ns)
            assert deploy is not None
            assert deploy["spec"]["replicas"] == 3  # the kustomization's patch
            assert deploy["metadata"]["labels"]["built-by"] == "kustomize"
            assert deploy["metadata"]["annotations"]["who"] == CLUSTER  # values, per cluster
            settings = target.get("configmap", "tar-settings", "-n", tns)
            assert settings is not None and settings["data"] == {"from": "tarball"}
            from_secret = target.get("configmap", "tar-settings", "-n", sns)
            assert from_secret is not None and from_secret["data"] == {"from": "tarball"}
            summary = mgmt.json("get", "clustersummaries", "-n", FLEET_NS, "-l",
                                f"{api.PROFILE_NAME_LABEL}={name}")["items"][0]
            kinds = {row["name"]: row["kind"] for row in summary["status"]["services"]}
            assert kinds == {f"Deployment/{ns}/web": "Kustomize",
                             f"ConfigMap/{tns}/tar-settings": "Kustomize",
                             f"ConfigMap/{sns}/tar-settings": "Kustomize"}
            assert {row.get("feature") for row in summary["status"]["inventory"]} == \
                {"Kustomize"}
            unsupported = next(c for c in engine.profile(name)["status"]["conditions"]
                               if c["type"] == "Unsupported")
            assert "spec.kustomizationRefs[2] (GitRepository)" in unsupported["message"]
            assert "kustomizationRefs[0]" not in unsupported["message"]

            # Drift on a built object is corrected like a policyRef's.
            target("scale", "deployment", "web", "-n", ns, "--replicas=7")
            eventually(lambda: (target.get("deployment", "web", "-n", ns) or {})
                       .get("spec", {}).get("replicas") == 3 or None,
                       timeout=60, what="the drifted Deployment corrected")

            revision = engine.profile(name)["status"]["revision"]
            mgmt.apply(_configmap(name, 2))
            eventually(lambda: (target.get("deployment", "web", "-n", ns) or {})
                       .get("spec", {}).get("replicas") == 2 or None,
                       timeout=60, what="the edited kustomization redeployed")
            assert engine.profile(name)["status"]["revision"] > revision
        finally:
            mgmt("delete", "clusterprofile", name, "--ignore-not-found")
            mgmt("label", "workloadcluster", "-n", FLEET_NS, CLUSTER, f"{label}-")
            eventually(lambda: mgmt.get("clusterprofile", name) is None or None, timeout=60,
                       what="profile gone")
            mgmt("delete", "configmap", "-n", "flotilla-system", name, f"{name}-tar",
                 "--ignore-not-found")
            mgmt("delete", "secret", "-n", "flotilla-system", f"{name}-secret",
                 "--ignore-not-found")
        assert target.get("deployment", "web", "-n", ns) is None  # withdrawn
        assert target.get("configmap", "tar-settings", "-n", tns) is None
        assert target.get("configmap", "tar-settings", "-n", sns) is None
