"""`flotilla convert` output is accepted by a real API server with our CRDs, and deploys.

Every example of tests/sveltos_examples.py (our equivalents of Sveltos's
documented ones) goes through the real command, then `kubectl apply
--dry-run=server` on the management cluster: the API server runs our CRDs'
structural schema and CEL rules over each object without storing it. One
converted profile — a chart with templated inline values and a templated
valuesFrom ConfigMap plus a Secret — then really deploys to a workload cluster, and so
do the converted templated policyRefs (a templated ConfigMap and a Secret of manifests),
templateResourceRefs (a value read through getResource) and kustomizationRefs examples.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from fleetkit import FLEET_NS, Engine, Helm, Kubectl, eventually
from sveltos_examples import EXAMPLES, VALUES_FROM

from engine import api


def _convert(sveltos_yaml: str) -> tuple[str, list[dict[str, Any]]]:
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "convert", "-f", "-"],
                          input=sveltos_yaml, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, [d for d in yaml.safe_load_all(proc.stdout) if d]


class TestConvertedExamplesApply:
    """The API server accepts every converted example as it is."""

    @pytest.mark.parametrize("name", sorted(EXAMPLES))
    def test_server_dry_run_accepts(self, name: str, engine: Engine, mgmt: Kubectl) -> None:
        text, docs = _convert(EXAMPLES[name])
        proc = mgmt.run("apply", "--dry-run=server", "-f", "-", input=text, check=False)
        assert proc.returncode == 0, f"{proc.stderr}\n--- converted:\n{text}"
        for doc in docs:
            assert f"{doc['metadata']['name']} created (server dry run)" in proc.stdout or \
                f"{doc['metadata']['name']} configured (server dry run)" in proc.stdout, \
                proc.stdout

    def test_server_rejects_what_convert_leaves_out(self, engine: Engine,
                                                    mgmt: Kubectl) -> None:
        # The dry run is a real check: a chart whose release namespace is a Go template
        # (convert leaves that chart out, with a finding) is refused as it stands.
        sveltos = EXAMPLES["kyverno"].replace("releaseNamespace: kyverno",
                                              "releaseNamespace: '{{ .Cluster.metadata.name }}'")
        text, docs = _convert(sveltos)
        assert docs[0]["spec"].get("helmCharts", []) == []
        assert "spec.helmCharts[0]" in text.split("---", 1)[0]
        raw = sveltos.replace("config.projectsveltos.io/v1beta1", api.API_VERSION)
        proc = mgmt.run("apply", "--dry-run=server", "-f", "-", input=raw, check=False)
        assert proc.returncode != 0
        assert "releaseNamespace" in proc.stderr


class TestConvertedProfileDeploys:
    """A converted Sveltos profile deploys its chart with values rendered per cluster."""

    def test_values_and_values_from_render_for_the_cluster(
            self, engine: Engine, mgmt: Kubectl, namespace: str, tmp_path: Path) -> None:
        uid = uuid.uuid4().hex[:6]
        name, label, release_ns = f"conv-{uid}", f"conv-{uid}", f"conv-app-{uid}"
        sveltos = []
        for doc in yaml.safe_load_all(VALUES_FROM):
            if doc["kind"] == "ClusterProfile":
                doc["metadata"]["name"] = name
                doc["spec"]["clusterSelector"] = {"matchLabels": {label: "on"}}
                chart = doc["spec"]["helmCharts"][0]
                chart["repositoryURL"] = engine.repo.url
                chart["releaseNamespace"] = release_ns
                chart["values"] += "  region: '{{ index .Cluster.metadata.labels \"region\" " \
                                   "| default \"nowhere\" }}'\n"
                for ref in chart["valuesFrom"]:
                    ref["namespace"] = namespace
            else:
                doc["metadata"]["namespace"] = namespace
            sveltos.append(doc)
        text, _ = _convert(yaml.safe_dump_all(sveltos))
        cluster = "cluster-2"
        try:
            mgmt.apply(text)
            mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{label}=on")
            engine.wait_ready(name, 1, timeout=90)
            helm = Helm(engine.kubeconfig(cluster), tmp_path)
            values = json.loads(helm("get", "values", "app", "-n", release_ns, "-o", "json"))
            assert values["replicas"] == 2
            assert values["data"] == {"greeting": "hi", "region": "nowhere",
                                      "cluster": cluster, "zone": "NONE"}
            target = engine.cluster(cluster)
            rendered = target.get("configmap", "app", "-n", release_ns)
            assert rendered is not None and rendered["data"]["cluster"] == cluster
        finally:
            mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{label}-", check=False)
            mgmt("delete", "clusterprofile", name, "--ignore-not-found", "--timeout=90s",
                 check=False)
        eventually(lambda: engine.cluster(cluster).get("configmap", "app", "-n",
                                                       release_ns) is None,
                   timeout=60, what="release withdrawn")


def _retarget(sveltos: str, *, uid: str, label: str, namespace: str, repo: str,
              target_ns: str) -> str:
    """An example pointed at the test fleet: its profile renamed and selecting `label`, its
    charts served by the test repository into `target_ns`, what it references moved from
    `default` into the test's namespace on the management cluster."""
    out = []
    for doc in yaml.safe_load_all(sveltos):
        if doc["kind"] in ("ClusterProfile", "Profile"):
            spec = doc["spec"]
            doc["metadata"]["name"] += f"-{uid}"
            spec["clusterSelector"] = {"matchLabels": {label: "on"}}
            for chart in spec.get("helmCharts", []):
                chart["repositoryURL"], chart["releaseNamespace"] = repo, target_ns
                for ref in chart.get("valuesFrom", []):
                    ref["namespace"] = namespace
            for ref in spec.get("policyRefs", []) + spec.get("kustomizationRefs", []):
                ref["namespace"] = namespace
                if "targetNamespace" in ref:
                    ref["targetNamespace"] = target_ns
            for ref in spec.get("templateResourceRefs", []):
                ref["resource"]["namespace"] = namespace
        else:
            doc["metadata"]["namespace"] = namespace
        out.append(doc)
    return yaml.safe_dump_all(out)


def _deployed_policy_refs(target: Kubectl, cluster: str, ns: str) -> None:
    info = target.get("configmap", "cluster-info", "-n", "kube-public")
    assert info is not None
    assert info["data"] == {"name": cluster, "tier": "bronze"}
    assert info["metadata"]["labels"]["region"] == "unknown"
    quota = target.get("resourcequota", "default-quota", "-n", "default")
    assert quota is not None and quota["spec"]["hard"] == {"pods": "50"}


def _deployed_template_resource_refs(target: Kubectl, cluster: str, ns: str) -> None:
    app = target.get("deployment", "configured-app", "-n", ns)
    assert app is not None and app["spec"]["replicas"] == 3
    data = target.json("get", "configmap", "configured-app", "-n", ns)["data"]
    assert data["owner"] == "team-a"


def _deployed_kustomize(target: Kubectl, cluster: str, ns: str) -> None:
    built = target.get("configmap", "web-settings", "-n", ns)
    assert built is not None and built["data"] == {"region": "west", "cluster": cluster}


DEPLOYED = {
    "policy-refs": (_deployed_policy_refs, ("configmap", "cluster-info", "-n", "kube-public")),
    "template-resource-refs": (_deployed_template_resource_refs,
                               ("configmap", "configured-app", "-n", "{ns}")),
    "kustomize": (_deployed_kustomize, ("configmap", "web-settings", "-n", "{ns}")),
}


class TestConvertedTemplatesDeploy:
    """Converted examples whose Go templates became Jinja2 deploy what Sveltos would."""

    @pytest.mark.parametrize("example", sorted(DEPLOYED))
    def test_deploys(self, example: str, engine: Engine, mgmt: Kubectl,
                     namespace: str) -> None:
        uid = uuid.uuid4().hex[:6]
        label, target_ns, cluster = f"conv-{uid}", f"conv-{uid}", "cluster-2"
        sveltos = _retarget(EXAMPLES[example], uid=uid, label=label, namespace=namespace,
                            repo=engine.repo.url, target_ns=target_ns)
        if example == "template-resource-refs":
            sveltos += (f"---\n{{apiVersion: v1, kind: ConfigMap, metadata: {{name: "
                        f"{cluster}-settings, namespace: {namespace}}}, data: "
                        f"{{replicas: '3', owner: team-a}}}}\n")
        text, docs = _convert(sveltos)
        assert "0 item(s) not carried over, 0 to review" in text, text
        [name] = [d["metadata"]["name"] for d in docs if d["kind"] == api.CLUSTER_PROFILE]
        check, probe = DEPLOYED[example]
        try:
            mgmt.apply(text)
            mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{label}=on")
            profile = engine.wait_ready(name, 1, timeout=90)
            unsupported = [c for c in profile["status"].get("conditions", [])
                           if c["type"] == "Unsupported" and c["status"] == "True"]
            assert unsupported == []
            check(engine.cluster(cluster), cluster, target_ns)
        finally:
            mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{label}-", check=False)
            mgmt("delete", "clusterprofile", name, "--ignore-not-found", "--timeout=90s",
                 check=False)
        where = tuple(a.replace("{ns}", target_ns) for a in probe)
        eventually(lambda: engine.cluster(cluster).get(*where) is None, timeout=60,
                   what="withdrawn")
