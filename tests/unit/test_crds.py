"""The committed crds/ match engine.model.schema, and every CRD has the shape users rely on.

crds/ is generated (`python -m engine.model.schema crds/`) and committed so that
`kubectl apply -f crds/` works from a clone; these tests catch a schema change
that was not regenerated, and structural slips (a kind without a status
subresource, printer columns or short name) that would break `kubectl get` and
`kubectl wait`. No cluster needed: whether the API server accepts these files
(structural schema, CEL cost budget) is exercised wherever they are installed
(`flotilla install`, the end-to-end fleet).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.model import schema

CRDS = Path(__file__).resolve().parents[2] / "crds"
REGENERATE = "crds/ is stale: run `python -m engine.model.schema crds/` and commit the result"

# kind -> (plural, short name, scope, printer columns before AGE), as docs/api.md lists them.
EXPECTED = {
    "WorkloadCluster": ("workloadclusters", "wc", "Namespaced",
                        ["READY", "CONNECTION", "VERSION", "NODES", "GPUS"]),
    "CatalogService": ("catalogservices", "cs", "Cluster", ["RELEASE", "NAMESPACE", "LATEST"]),
    "ClusterProfile": ("clusterprofiles", "cp", "Cluster",
                       ["MATCHED", "UPDATED", "READY", "DRIFTED", "FAILED", "PHASE", "STAGE",
                        "ROLLOUT"]),
    "Profile": ("profiles", "prof", "Namespaced",
                ["MATCHED", "UPDATED", "READY", "DRIFTED", "FAILED", "PHASE", "STAGE",
                 "ROLLOUT"]),
    "ClusterSummary": ("clustersummaries", "csum", "Namespaced",
                       ["CLUSTER", "PROFILE", "REVISION", "PHASE", "HEALTHY"]),
}

DOCUMENTS = {doc["spec"]["names"]["kind"]: doc for doc in schema.crd_documents()}


def _version(doc: dict[str, Any]) -> dict[str, Any]:
    (version,) = doc["spec"]["versions"]
    assert isinstance(version, dict)
    return version


def _root(doc: dict[str, Any]) -> dict[str, Any]:
    root = _version(doc)["schema"]["openAPIV3Schema"]
    assert isinstance(root, dict)
    return root


Walk = Iterator[tuple[str, dict[str, Any], bool]]


def _walk(node: dict[str, Any], path: str, bounded: bool) -> Walk:
    """Yield (path, node, every enclosing list has maxItems) for every schema node."""
    yield path, node, bounded
    for name, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}", bounded)
    if "items" in node:
        yield from _walk(node["items"], f"{path}[]", bounded and "maxItems" in node)
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}", bounded)


class TestGeneratedFiles:
    """crds/ is exactly what the schema module generates."""

    @pytest.mark.parametrize("name", sorted(schema.crd_files()))
    def test_file_is_byte_identical(self, name: str) -> None:
        path = CRDS / name
        assert path.is_file(), f"{path} is missing; {REGENERATE}"
        assert path.read_text(encoding="utf-8") == schema.crd_files()[name], REGENERATE

    def test_no_stray_files(self) -> None:
        present = {path.name for path in CRDS.glob("*.yaml")}
        assert present == set(schema.crd_files()), REGENERATE

    def test_files_parse_back_to_the_documents(self) -> None:
        for name, text in schema.crd_files().items():
            doc = yaml.safe_load(text)
            assert DOCUMENTS[doc["spec"]["names"]["kind"]] == doc, name


class TestStructure:
    """Each kind carries what kubectl users and the controller rely on."""

    def test_all_five_kinds(self) -> None:
        assert set(DOCUMENTS) == set(EXPECTED)

    @pytest.mark.parametrize("kind", sorted(EXPECTED))
    def test_names_scope_and_group(self, kind: str) -> None:
        plural, short, scope, _ = EXPECTED[kind]
        doc = DOCUMENTS[kind]
        assert doc["metadata"]["name"] == f"{plural}.flotilla.dev"
        assert doc["spec"]["group"] == "flotilla.dev"
        assert doc["spec"]["scope"] == scope
        names = doc["spec"]["names"]
        assert names["plural"] == plural
        assert names["shortNames"] == [short]
        assert names["categories"] == ["flotilla"]

    @pytest.mark.parametrize("kind", sorted(EXPECTED))
    def test_served_stored_with_status_subresource(self, kind: str) -> None:
        version = _version(DOCUMENTS[kind])
        assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
        assert version["subresources"] == {"status": {}}
        assert "status" in _root(DOCUMENTS[kind])["properties"]

    @pytest.mark.parametrize("kind", sorted(EXPECTED))
    def test_printer_columns(self, kind: str) -> None:
        columns = [c for c in _version(DOCUMENTS[kind])["additionalPrinterColumns"]
                   if not c.get("priority")]
        assert [c["name"] for c in columns] == [*EXPECTED[kind][3], "AGE"]
        assert columns[-1] == {"name": "AGE", "type": "date",
                               "jsonPath": ".metadata.creationTimestamp"}
        for column in columns:
            assert column["jsonPath"].startswith((".status.", ".spec.", ".metadata."))

    @pytest.mark.parametrize("kind", sorted(EXPECTED))
    def test_conditions_are_a_list_map_keyed_by_type(self, kind: str) -> None:
        conditions = _root(DOCUMENTS[kind])["properties"]["status"]["properties"]["conditions"]
        assert conditions["x-kubernetes-list-type"] == "map"
        assert conditions["x-kubernetes-list-map-keys"] == ["type"]
        assert conditions["items"]["properties"]["status"]["enum"] == ["True", "False", "Unknown"]

    @pytest.mark.parametrize("kind", sorted(EXPECTED))
    def test_cel_rules_sit_under_bounded_lists(self, kind: str) -> None:
        # The API server estimates rule cost from maxItems; unbounded lists blow the budget.
        for path, node, bounded in _walk(_root(DOCUMENTS[kind]), kind, True):
            if node.get("x-kubernetes-validations"):
                assert bounded, f"{path}: a CEL rule under a list without maxItems"
                if node.get("type") == "array":
                    assert "maxItems" in node, f"{path}: a rule iterates a list without maxItems"


class TestProfileContract:
    """Defaults and bounds that docs/api.md promises for ClusterProfile and Profile."""

    @pytest.mark.parametrize("kind", ["ClusterProfile", "Profile"])
    def test_defaults(self, kind: str) -> None:
        spec = _root(DOCUMENTS[kind])["properties"]["spec"]["properties"]
        assert spec["syncMode"]["default"] == "Continuous"
        assert (spec["tier"]["default"], spec["tier"]["minimum"], spec["tier"]["maximum"]) == (
            100, 1, 1000)
        assert spec["stopMatchingBehavior"]["default"] == "WithdrawPolicies"
        assert spec["maxUpdate"]["default"] == "100%"
        assert spec["maxUpdate"]["x-kubernetes-int-or-string"] is True
        rollout = spec["rollout"]["properties"]
        assert rollout["minSuccessTime"]["default"] == "0s"
        assert rollout["progressDeadline"]["default"] == "10m"
        assert rollout["maxFailures"]["default"] == 0
        assert rollout["onFailure"]["default"] == "Pause"

    def test_cluster_profile_and_profile_share_one_spec_shape(self) -> None:
        def shape(node: Any) -> Any:
            if isinstance(node, dict):
                return {k: shape(v) for k, v in node.items() if k != "description"}
            if isinstance(node, list):
                return [shape(v) for v in node]
            return node

        specs = [_root(DOCUMENTS[k])["properties"]["spec"] for k in ("ClusterProfile", "Profile")]
        assert shape(specs[0]) == shape(specs[1])
