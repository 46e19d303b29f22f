"""Unit tests for the CRD guard: the post-render transform and the upgrade comparison."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import yaml

from engine import crdguard

CRD = """\
# Source: kserve-crd/templates/a.yaml
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
  annotations:
    controller-gen.kubebuilder.io/version: v0.19.0
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Cluster
  versions: [{name: v1, served: true, storage: true,
              schema: {openAPIV3Schema: {type: object, description: "on: yes"}}}]
"""
CONFIGMAP = """\
# Source: app/templates/cm.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: mentions-CustomResourceDefinition   # must survive byte for byte
data:
  when: 2024-01-01
"""


def crd(name: str, **annotations: str) -> dict[str, Any]:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": name, "annotations": annotations}}


def test_keep_crds_annotates_crds_and_leaves_the_rest_alone() -> None:
    stream = f"---\n{CONFIGMAP}---\n{CRD}"
    out = crdguard.keep_crds(stream)
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert [d["kind"] for d in docs] == ["ConfigMap", "CustomResourceDefinition"]
    annotations = docs[1]["metadata"]["annotations"]
    assert annotations == {"controller-gen.kubebuilder.io/version": "v0.19.0",
                           crdguard.RESOURCE_POLICY: crdguard.KEEP}
    assert docs[1]["spec"] == yaml.safe_load(CRD)["spec"]
    assert CONFIGMAP in out  # not a CRD: untouched, comment and all
    assert "# Source: kserve-crd/templates/a.yaml" in out


def test_keep_crds_without_any_crd_is_the_identity() -> None:
    stream = f"---\n{CONFIGMAP}---\n{CONFIGMAP}"
    assert crdguard.keep_crds(stream) == stream


def test_removed_crds_is_what_the_new_render_lacks() -> None:
    current = [crd("a.x.io"), crd("b.x.io"), {"kind": "ConfigMap", "metadata": {"name": "c"}}]
    assert crdguard.removed_crds(current, [crd("a.x.io")]) == ["b.x.io"]
    assert crdguard.removed_crds(current, current) == []
    assert crdguard.removed_crds([], [crd("a.x.io")]) == []


def test_crd_docs_and_lacks_keep() -> None:
    stream = f"---\n{CONFIGMAP}---\n{CRD}"
    found = crdguard.crd_docs(stream)
    assert [d["metadata"]["name"] for d in found] == ["widgets.example.com"]
    assert crdguard.lacks_keep(found[0])
    assert not crdguard.lacks_keep(crdguard.crd_docs(crdguard.keep_crds(stream))[0])
    assert not crdguard.lacks_keep({"kind": "ConfigMap"})


def test_postrender_runs_as_helm_runs_it() -> None:
    """The real entry point, as a process: manifests on stdin, manifests on stdout."""
    proc = subprocess.run([sys.executable, "-m", "engine.adapters.postrender"],
                          input=f"---\n{CRD}", capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    doc = next(d for d in yaml.safe_load_all(proc.stdout) if d)
    assert doc["metadata"]["annotations"][crdguard.RESOURCE_POLICY] == crdguard.KEEP
    bad = subprocess.run([sys.executable, "-m", "engine.adapters.postrender"],
                         input="kind: CustomResourceDefinition\n  bad: [", capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 1 and "flotilla post-renderer" in bad.stderr
