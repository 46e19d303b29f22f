"""Unit tests for engine.convert on Sveltos documents: each documented example, field by field.

The examples (tests/sveltos_examples.py) are our own equivalents of those in
Sveltos's documentation. Each test converts one and checks the Flotilla
documents and the findings — what was carried over, renamed, translated, or
left out and said so. The end-to-end side (the output applies and deploys)
is tests/e2e/test_convert.py.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from sveltos_examples import EXAMPLES

from engine import api, render
from engine.convert import convert, documents, profiles, schema
from engine.convert.report import Level

CLUSTER = {"metadata": {"name": "edge-7", "namespace": "fleet",
                        "labels": {"env": "prod", "zone": "b"}}}


def _convert(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    result = convert(yaml.safe_load_all(text))
    return result.documents, [f.line() for f in result.findings]


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


class TestExamples:
    """Every example converts with nothing left out, into our apiVersion and kinds."""

    @pytest.mark.parametrize("name", sorted(EXAMPLES))
    def test_example_converts_completely(self, name: str) -> None:
        result = convert(yaml.safe_load_all(EXAMPLES[name]))
        docs = result.documents
        # Nothing left out; to review at most fields Flotilla accepts but does not act on yet.
        assert [f.line() for f in result.findings
                if f.level is Level.DROPPED or f.message != schema.UNHONOURED] == []
        kinds = {d["kind"] for d in docs}
        assert kinds & {api.CLUSTER_PROFILE, api.PROFILE, api.WORKLOAD_CLUSTER}
        for doc in docs:
            if doc["kind"] in (api.CLUSTER_PROFILE, api.PROFILE, api.WORKLOAD_CLUSTER):
                assert doc["apiVersion"] == api.API_VERSION
            assert "projectsveltos" not in doc["apiVersion"]

    def test_kyverno_helm_chart_passes_field_for_field(self) -> None:
        docs, _ = _convert(EXAMPLES["kyverno"])
        source = yaml.safe_load(EXAMPLES["kyverno"])
        profile = _one(docs, api.CLUSTER_PROFILE, "deploy-kyverno")
        assert profile["spec"] == source["spec"]

    def test_templated_policy_ref_renders_per_cluster(self) -> None:
        docs, _ = _convert(EXAMPLES["policy-refs"])
        configmap = _one(docs, "ConfigMap", "cluster-info")
        assert configmap["metadata"]["annotations"][documents.TEMPLATE_ANNOTATION] == "ok"
        manifest = render.template_yaml(configmap["data"]["info.yaml"], {"cluster": CLUSTER})
        assert manifest["metadata"]["labels"] == {"region": "unknown"}
        assert manifest["data"] == {"name": "edge-7", "tier": "gold"}
        # A Secret of plain manifests is carried over untouched.
        [source] = [d for d in yaml.safe_load_all(EXAMPLES["policy-refs"]) if d["kind"] == "Secret"]
        assert _one(docs, "Secret", "quota") == source

    def test_values_from_configmap_is_translated_even_without_the_annotation(self) -> None:
        text = EXAMPLES["values-from"].replace("    projectsveltos.io/template: \"ok\"\n", "")
        docs, findings = _convert(text)
        assert findings == []
        values = render.template_yaml(_one(docs, "ConfigMap", "app-values")["data"][
            "values.yaml"], {"cluster": CLUSTER})
        assert values == {"data": {"cluster": "edge-7", "zone": "B"}}
        chart = _one(docs, api.CLUSTER_PROFILE, "app-with-values")["spec"]["helmCharts"][0]
        assert [r["kind"] for r in chart["valuesFrom"]] == ["ConfigMap", "Secret"]

    def test_depends_on_tier_sync_mode_and_max_update_pass(self) -> None:
        docs = _convert(EXAMPLES["depends-on"])[0] + _convert(EXAMPLES["tiers"])[0] + \
            _convert(EXAMPLES["sync-mode"])[0] + _convert(EXAMPLES["max-update"])[0]
        assert _one(docs, api.CLUSTER_PROFILE, "policies")["spec"]["dependsOn"] == \
            ["policy-engine"]
        assert _one(docs, api.CLUSTER_PROFILE, "prod-overrides")["spec"]["tier"] == 50
        assert _one(docs, api.CLUSTER_PROFILE, "fleet-defaults")["spec"][
            "continueOnConflict"] is True
        drift = _one(docs, api.CLUSTER_PROFILE, "drift-checked")["spec"]
        assert (drift["syncMode"], drift["stopMatchingBehavior"], drift["continueOnError"]) == \
            ("ContinuousWithDriftDetection", "LeavePolicies", True)
        assert _one(docs, api.CLUSTER_PROFILE, "careful-rollout")["spec"]["maxUpdate"] == "30%"
        # "1" is a valid Sveltos maxUpdate; ours takes numbers as numbers.
        assert _one(docs, api.CLUSTER_PROFILE, "one-at-a-time")["spec"]["maxUpdate"] == 1

    def test_validate_healths_keep_named_cel_rules_and_feature(self) -> None:
        docs, _ = _convert(EXAMPLES["validate-healths"])
        [check] = _one(docs, api.CLUSTER_PROFILE, "healthy-ingress")["spec"]["validateHealths"]
        assert check["featureID"] == "Helm"
        assert [r["name"] for r in check["evaluateCEL"]] == ["all-replicas-available",
                                                             "scaled-to-zero"]

    def test_cluster_refs_become_namespace_and_name(self) -> None:
        docs, _ = _convert(EXAMPLES["cluster-refs"])
        assert _one(docs, api.CLUSTER_PROFILE, "pinned")["spec"]["clusterRefs"] == \
            [{"namespace": "fleet", "name": "cluster-1"}]

    def test_sveltos_cluster_becomes_workload_cluster_with_its_secret(self) -> None:
        docs, _ = _convert(EXAMPLES["sveltos-cluster"])
        cluster = _one(docs, api.WORKLOAD_CLUSTER, "edge-7")
        assert cluster["metadata"]["labels"] == {"env": "fv", "region": "eu-west"}
        assert cluster["spec"] == {"kubeconfigSecretRef": {"name": "edge-7-sveltos-kubeconfig",
                                                           "key": "kubeconfig"}}
        assert _one(docs, "Secret", "edge-7-sveltos-kubeconfig")["data"]["kubeconfig"]

    def test_template_resource_refs_feed_values_through_get_resource(self) -> None:
        docs, _ = _convert(EXAMPLES["template-resource-refs"])
        spec = _one(docs, api.CLUSTER_PROFILE, "per-cluster-settings")["spec"]
        assert spec["templateResourceRefs"][0]["resource"]["name"] == \
            "{{ cluster.metadata.name }}-settings"
        settings = {"data": {"owner": "team-a"}}
        values = render.template_yaml(spec["helmCharts"][0]["values"], {
            "cluster": CLUSTER, "getResource": {"Settings": settings}.__getitem__})
        assert values == {"replicas": 1, "data": {"owner": "team-a"}}

    def test_kustomization_values_become_variables_of_its_files(self) -> None:
        docs, _ = _convert(EXAMPLES["kustomize"])
        [ref] = _one(docs, api.CLUSTER_PROFILE, "web-kustomized")["spec"]["kustomizationRefs"]
        files = _one(docs, "ConfigMap", "web-kustomize")["data"]
        for labels, region in (({"region": "eu"}, "eu"), ({}, "west")):
            cluster = {"metadata": {"name": "edge-7", "labels": labels}}
            value = render.template_values(ref["values"]["Region"], {"cluster": cluster})
            built = render.template_yaml(files["settings.yaml"], {"cluster": cluster,
                                                                   "Region": value})
            assert built["data"] == {"region": region, "cluster": "edge-7"}
        assert files["kustomization.yaml"] == "resources:\n- settings.yaml\n"

    def test_a_configmap_kustomization_is_not_flagged(self) -> None:
        # The schema says Flux kinds are reported as Unsupported; a ConfigMap source is
        # built, so converting one is no finding (it was flagged "does not act on it yet").
        _, findings = _convert(EXAMPLES["kustomize"])
        assert findings == []
        _, findings = _convert(EXAMPLES["kustomize"].replace(
            "targetNamespace: web", "targetNamespace: web\n    deploymentType: Local"))
        assert [f for f in findings if "deploymentType" in f] == [
            f for f in findings if schema.UNHONOURED in f] != []

    def test_profile_values_template_renders_like_sveltos(self) -> None:
        docs, _ = _convert(EXAMPLES["profile-templated"])
        profile = _one(docs, api.PROFILE, "tenant-app")
        assert profile["metadata"]["namespace"] == "default"
        values = render.template_yaml(profile["spec"]["helmCharts"][0]["values"],
                                      {"cluster": CLUSTER})
        assert values == {"replicas": 3, "nodeSelector": {"env": "prod", "zone": "b"},
                          "data": {"label-env": "prod", "label-zone": "b"}}


class TestWhatIsReported:
    """What Flotilla lacks is left out and named, with its field path; defaults pass quietly."""

    def test_unsupported_fields_are_reported_and_defaults_are_not(self) -> None:
        docs, findings = _convert("""
apiVersion: config.projectsveltos.io/v1beta1
kind: ClusterProfile
metadata:
  name: p
  finalizers: [clusterprofilefinalizer.projectsveltos.io]
  annotations: {profile.projectsveltos.io/paused: "true"}
spec:
  clusterSelector: {matchLabels: {env: fv}}
  reloader: false
  setRefs: [blue]
  someFutureField: 1
  policyRefs:
  - {kind: GitRepository, namespace: flux-system, name: repo, path: ./x}
  - {kind: ConfigMap, namespace: default, name: "{{ .Cluster.metadata.name }}-cm"}
  - {kind: ConfigMap, namespace: default, name: kept, deploymentType: Remote}
status: {matchingClusters: []}
""")
        profile = _one(docs, api.CLUSTER_PROFILE, "p")
        assert "finalizers" not in profile["metadata"]
        assert "status" not in profile
        assert [r["name"] for r in profile["spec"]["policyRefs"]] == ["kept"]
        text = "\n".join(findings)
        for path in ("spec.setRefs", "spec.someFutureField", "spec.policyRefs[0]",
                     "spec.policyRefs[1]", "profile.projectsveltos.io/paused"):
            assert path in text
        assert "spec.reloader" not in text
        assert all(f.startswith("ClusterProfile/p ") for f in findings)
        # setRefs is accepted by our schema, not acted on: carried, flagged for review.
        assert profile["spec"]["setRefs"] == ["blue"]
        assert next(f for f in findings if "spec.setRefs" in f).split(": ")[1] == "review"

    def test_templated_chart_coordinates_leave_the_chart_out(self) -> None:
        docs, findings = _convert("""
apiVersion: config.projectsveltos.io/v1beta1
kind: ClusterProfile
metadata: {name: p}
spec:
  clusterSelector: {matchLabels: {env: fv}}
  helmCharts:
  - {repositoryURL: https://x, repositoryName: x, chartName: x/x, releaseName: x,
     chartVersion: "{{ .Cluster.metadata.labels.version }}", releaseNamespace: x}
  - {repositoryURL: https://x, repositoryName: x, chartName: x/y, releaseName: y,
     chartVersion: "1.0.0", releaseNamespace: y, values: "a: {{ now }}"}
""")
        charts = _one(docs, api.CLUSTER_PROFILE, "p")["spec"]["helmCharts"]
        assert [c["releaseName"] for c in charts] == ["y"]
        assert charts[0]["values"] == "a: {{ now }}"
        assert any("spec.helmCharts[0]" in f and "chartVersion" in f for f in findings)
        assert any("spec.helmCharts[1].values (line 1, column 4)" in f for f in findings)

    def test_empty_namespace_of_a_cluster_profile_reference_is_reported(self) -> None:
        _, findings = _convert("""
apiVersion: config.projectsveltos.io/v1beta1
kind: ClusterProfile
metadata: {name: p}
spec:
  policyRefs: [{kind: ConfigMap, name: cm}]
""")
        assert any("spec.policyRefs[0].namespace" in f for f in findings)

    def test_values_out_of_our_bounds_are_reported(self) -> None:
        docs, findings = _convert("""
apiVersion: config.projectsveltos.io/v1beta1
kind: ClusterProfile
metadata: {name: p}
spec:
  tier: 5000
  syncMode: Sometimes
""")
        assert _one(docs, api.CLUSTER_PROFILE, "p")["spec"] == {}
        assert any("spec.tier" in f and "maximum" in f for f in findings)
        assert any("spec.syncMode" in f for f in findings)

    def test_v1alpha1_selector_string_becomes_a_label_selector(self) -> None:
        assert profiles.parse_selector("env=prod, tier in (a, b),!legacy,gpu,zone!=c") == {
            "matchLabels": {"env": "prod"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["a", "b"]},
                {"key": "legacy", "operator": "DoesNotExist"},
                {"key": "gpu", "operator": "Exists"},
                {"key": "zone", "operator": "NotIn", "values": ["c"]},
            ]}
        docs, _ = _convert("apiVersion: config.projectsveltos.io/v1alpha1\n"
                           "kind: ClusterProfile\nmetadata: {name: p}\n"
                           "spec: {clusterSelector: env=fv}\n")
        assert docs[0]["spec"]["clusterSelector"] == {"matchLabels": {"env": "fv"}}

    def test_cluster_with_other_key_and_sveltos_only_fields(self) -> None:
        docs, findings = _convert("""
apiVersion: lib.projectsveltos.io/v1beta1
kind: SveltosCluster
metadata: {name: c, namespace: ns}
spec: {kubeconfigName: c-kc, paused: true, tokenRequestRenewalOption:
  {renewTokenRequestInterval: 1h}}
---
apiVersion: v1
kind: Secret
metadata: {name: c-kc, namespace: ns}
data: {value: c2VjcmV0LXZhbHVl}
""")
        assert _one(docs, api.WORKLOAD_CLUSTER, "c")["spec"] == {
            "kubeconfigSecretRef": {"name": "c-kc", "key": "value"}, "paused": True}
        assert any("spec.tokenRequestRenewalOption" in f for f in findings)

    def test_cluster_without_its_secret_is_flagged_for_review(self) -> None:
        result = convert(yaml.safe_load_all(
            "apiVersion: lib.projectsveltos.io/v1beta1\nkind: SveltosCluster\n"
            "metadata: {name: c, namespace: ns}\n"))
        [finding] = result.findings
        assert finding.level is Level.REVIEW and "kubeconfigKeyName" in finding.path

    def test_secret_templates_are_translated_and_never_quoted(self) -> None:
        secret_text = "password: {{ (getResource \"db\").data.password }}\nx: {{ hush42 }}\n"
        result = convert(yaml.safe_load_all(f"""
apiVersion: v1
kind: Secret
metadata: {{name: s, namespace: default, annotations: {{projectsveltos.io/template: ok}}}}
data: {{manifest: {base64.b64encode(secret_text.encode()).decode()}}}
"""))
        data = base64.b64decode(result.documents[0]["data"]["manifest"]).decode()
        assert 'getResource("db").data.password' in data
        assert result.findings and all("hush42" not in f.line() for f in result.findings)
        assert "hush42" not in result.text().split("---", 1)[0]

    def test_other_sveltos_kinds_and_capi_clusters_are_left_out(self) -> None:
        docs, findings = _convert("""
apiVersion: lib.projectsveltos.io/v1beta1
kind: EventSource
metadata: {name: e}
---
apiVersion: cluster.x-k8s.io/v1beta1
kind: Cluster
metadata: {name: capi, namespace: default}
---
apiVersion: v1
kind: Namespace
metadata: {name: untouched, resourceVersion: "12"}
""")
        assert [d["kind"] for d in docs] == ["Namespace"]
        assert docs[0]["metadata"] == {"name": "untouched"}
        assert len(findings) == 2

    def test_output_lists_findings_as_comments_then_documents(self) -> None:
        result = convert(yaml.safe_load_all(EXAMPLES["kyverno"] + "\n  setRefs: [x]\n"))
        head, body = result.text().split("\n---\n", 1)
        assert all(line.startswith("#") for line in head.splitlines())
        assert "spec.setRefs" in head
        assert list(yaml.safe_load_all(body)) == result.documents


class TestCommand:
    """`flotilla convert` reads files and stdin; only unreadable input fails."""

    def test_files_and_stdin(self, tmp_path: Path) -> None:
        first = tmp_path / "a.yaml"
        first.write_text(EXAMPLES["kyverno"] + "\n  setRefs: [x]\n")
        proc = subprocess.run([sys.executable, "-m", "engine.cli", "convert", "-f", str(first),
                               "-f", "-"], input=EXAMPLES["sveltos-cluster"],
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        kinds = [d["kind"] for d in yaml.safe_load_all(proc.stdout) if d]
        assert kinds == [api.CLUSTER_PROFILE, "Secret", api.WORKLOAD_CLUSTER]
        assert "spec.setRefs" in proc.stderr

    @pytest.mark.parametrize("content", [None, "a: [\n"])
    def test_unreadable_input_fails(self, tmp_path: Path, content: str | None) -> None:
        path = tmp_path / "in.yaml"
        if content is not None:
            path.write_text(content)
        proc = subprocess.run([sys.executable, "-m", "engine.cli", "convert", "-f", str(path)],
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 1
        assert str(path) in proc.stderr and proc.stdout == ""
