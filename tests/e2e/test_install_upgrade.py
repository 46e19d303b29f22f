"""`flotilla install` over catalog entries stored under an older schema.

Server-side apply refuses to touch an object that no longer fits its CRD's
schema (500: failed to create typed live object), which is what happens
when an alpha field changes type between releases. The test makes such an
object for real: the CatalogService CRD with `spec.description` as an
integer, an entry stored under it, then the real CRDs and an install.
"""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import yaml
from fleetkit import ROOT, Kubectl

from engine.cli import admin

CRD = ROOT / "crds" / "flotilla.dev_catalogservices.yaml"


def _entry(name: str, description: Any) -> dict[str, Any]:
    return {"apiVersion": "flotilla.dev/v1alpha1", "kind": "CatalogService",
            "metadata": {"name": name},
            "spec": {"description": description, "releaseName": name,
                     "releaseNamespace": name,
                     "versions": [{"version": "1.0.0", "chart": {
                         "repositoryURL": "https://charts.example.com", "chartName": name,
                         "chartVersion": "1.0.0"}}]}}


def test_install_replaces_entries_stored_under_an_older_schema(
        engine: object, mgmt: Kubectl, tmp_path: Path) -> None:
    name = f"upgrade-{uuid.uuid4().hex[:6]}"
    crd: dict[str, Any] = yaml.safe_load(CRD.read_text())
    old = copy.deepcopy(crd)
    spec = old["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["properties"]["description"] = {"type": "integer"}
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / f"{name}.yaml").write_text(yaml.safe_dump(_entry(name, "now a sentence")))
    kc = str(mgmt.kubeconfig)
    try:
        mgmt("apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(old))
        mgmt("wait", "--for=condition=Established", "crd/catalogservices.flotilla.dev")
        mgmt("apply", "--server-side", "-f", "-", input=json.dumps(_entry(name, 7)))
        # The real CRD: the stored entry no longer fits, and a plain apply says so.
        mgmt("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
        refused = mgmt.run("apply", "--server-side", "-f", "-", check=False,
                           input=json.dumps(_entry(name, "now a sentence")))
        assert refused.returncode != 0 and "typed live object" in refused.stderr, refused
        lines = admin.install(kc, crds=ROOT / "crds", catalog=catalog)
        assert f"catalogservice/{name} replaced (stored under an older schema)" in lines
        stored = mgmt.json("get", "catalogservice", name)
        assert stored["spec"]["description"] == "now a sentence"
        # And from then on an ordinary apply again.
        assert admin.install(kc, crds=ROOT / "crds", catalog=catalog)[-1] == \
            f"catalogservice/{name} applied"
    finally:
        mgmt("delete", "catalogservice", name, check=False)
        mgmt("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
