"""Templated policyRefs on plain data: the template mark, its capture and per-cluster rendering."""

from __future__ import annotations

import pytest
import yaml

from engine import api, errors, render, snapshot
from engine.controller import desired
from engine.model import types

CLUSTER = {"metadata": {"name": "eu-1", "labels": {"region": "eu"}}}
MANIFEST = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{ cluster.metadata.name }}'}\n"
            "data: {region: '{{ cluster.metadata.labels.region }}'}\n")


class TestMark:
    """The mark travels with the data in the snapshot and stays out of every other reader."""

    def test_templated_and_without_mark(self) -> None:
        marked = {"a.yaml": MANIFEST, snapshot.TEMPLATE_MARK: "true"}
        assert snapshot.templated(marked)
        assert not snapshot.templated({"a.yaml": MANIFEST}) and not snapshot.templated(None)
        assert snapshot.without_mark(marked) == {"a.yaml": MANIFEST}
        assert snapshot.without_mark(None) is None

    def test_only_policy_refs_keep_the_mark(self) -> None:
        spec = types.ProfileSpec.from_dict({
            "policyRefs": [{"kind": "ConfigMap", "name": "p"}],
            "helmCharts": [{"chartName": "c", "chartVersion": "1", "releaseName": "r",
                            "releaseNamespace": "n", "repositoryURL": "https://x",
                            "valuesFrom": [{"kind": "ConfigMap", "name": "v"}]}]})
        refs = {r.name: r for r in snapshot.references(spec, profile_kind="ClusterProfile",
                                                       profile_namespace="")}
        assert refs["p"].manifests and not refs["v"].manifests

    def test_both_annotations_are_honoured(self) -> None:
        assert api.TEMPLATE_ANNOTATION == "flotilla.dev/template"
        assert "projectsveltos.io/template" in api.TEMPLATE_ANNOTATIONS

    def test_annotating_is_a_new_revision(self) -> None:
        plain = snapshot.Snapshot(spec={}, configmaps={"ConfigMap/d/p": {"a.yaml": MANIFEST}})
        marked = snapshot.Snapshot(spec={}, configmaps={"ConfigMap/d/p": {
            "a.yaml": MANIFEST, snapshot.TEMPLATE_MARK: "true"}})
        assert plain.digest() != marked.digest()


class TestRendering:
    """A marked object's manifests are rendered per cluster; an unmarked one is applied as is."""

    def test_marked_object_is_rendered_for_the_cluster(self) -> None:
        data = desired._policy_data({"a.yaml": MANIFEST, snapshot.TEMPLATE_MARK: "true"},
                                    {"cluster": CLUSTER}, "spec.policyRefs[0]")
        (obj,) = render.load_manifests(data, field="f")
        assert obj["metadata"]["name"] == "eu-1" and obj["data"] == {"region": "eu"}

    def test_unmarked_object_keeps_its_braces(self) -> None:
        data = desired._policy_data({"a.yaml": MANIFEST}, {"cluster": CLUSTER}, "f")
        assert data == {"a.yaml": MANIFEST}
        assert yaml.safe_load(data["a.yaml"])["metadata"]["name"].startswith("{{")

    def test_missing_variable_names_the_ref_and_key(self) -> None:
        bad = {"a.yaml": "x: '{{ cluster.spec.nothing }}'\n", snapshot.TEMPLATE_MARK: "true"}
        with pytest.raises(errors.SpecError) as caught:
            desired._policy_data(bad, {"cluster": CLUSTER}, "spec.policyRefs[2]")
        assert "spec.policyRefs[2] key a.yaml" in caught.value.field

    def test_the_sandbox_forbids_mutation(self) -> None:
        evil = {"a.yaml": "x: '{{ cluster.metadata.update({\"name\": \"x\"}) }}'\n",
                snapshot.TEMPLATE_MARK: "true"}
        with pytest.raises(errors.SpecError):
            desired._policy_data(evil, {"cluster": CLUSTER}, "f")
        assert CLUSTER["metadata"]["name"] == "eu-1"
