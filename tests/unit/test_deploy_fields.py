"""Unit tests for the Sveltos deploy-path fields: model, schema, references, hashes, Unsupported."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from engine import errors, inventory, render, snapshot, unsupported
from engine.catalog import ReleasePlan
from engine.model import schema, types


def _spec(**fields: Any) -> types.ProfileSpec:
    return types.ProfileSpec.from_dict(fields)


class TestModel:
    """The fields read with Sveltos' names, defaults and bounds; errors name the field."""

    def test_policy_ref_fields_and_defaults(self) -> None:
        spec = _spec(policyRefs=[
            {"kind": "ConfigMap", "name": "a"},
            {"kind": "Secret", "name": "b", "namespace": "x", "optional": True, "tier": 5,
             "deploymentType": "Local", "skipNamespaceCreation": True}])
        plain, full = spec.policy_refs
        assert (plain.tier, plain.deployment_type, plain.skip_namespace_creation,
                plain.optional) == (100, types.DeploymentType.REMOTE, False, False)
        assert (full.tier, full.deployment_type, full.skip_namespace_creation,
                full.optional) == (5, types.DeploymentType.LOCAL, True, True)

    def test_profile_fields(self) -> None:
        spec = _spec(extraLabels={"team": "a"}, extraAnnotations={"n": "v"},
                     patches=[{"patch": "spec: {}", "target": {"kind": "Deployment",
                                                              "labelSelector": "a=b"}}],
                     patchesFrom=[{"kind": "ConfigMap", "name": "p", "optional": True}],
                     maxConsecutiveFailures=2)
        assert spec.extra_labels == {"team": "a"} and spec.extra_annotations == {"n": "v"}
        assert spec.patches[0].patch == "spec: {}"
        assert spec.patches[0].target is not None
        assert spec.patches[0].target.label_selector == "a=b"
        assert spec.patches_from[0].optional and spec.max_consecutive_failures == 2

    def test_checks_around_deploy_and_withdrawal(self) -> None:
        check = {"name": "gate", "version": "v1", "kind": "ConfigMap", "namespace": "a",
                 "evaluateCEL": [{"name": "open", "rule": "resource.data.open == 'yes'"}]}
        spec = _spec(preDeployChecks=[check], preDeleteChecks=[check, check],
                     postDeleteChecks=[{**check, "name": "after"}])
        assert [c.name for c in spec.pre_deploy_checks] == ["gate"]
        assert len(spec.pre_delete_checks) == 2
        assert spec.post_delete_checks[0].name == "after"
        with pytest.raises(errors.SpecError) as caught:
            _spec(postDeleteChecks=[{"name": "x"}])
        assert caught.value.field.startswith("spec.postDeleteChecks[0]")
        assert _spec().max_consecutive_failures is None

    @pytest.mark.parametrize(("fields", "where"), [
        ({"policyRefs": [{"kind": "ConfigMap", "name": "a", "tier": 0}]},
         "spec.policyRefs[0].tier"),
        ({"policyRefs": [{"kind": "ConfigMap", "name": "a", "deploymentType": "Mars"}]},
         "spec.policyRefs[0].deploymentType"),
        ({"maxConsecutiveFailures": 0}, "spec.maxConsecutiveFailures"),
        ({"extraLabels": {"a": 1}}, "spec.extraLabels.a"),
        ({"patches": [{"target": {}}]}, "spec.patches[0].patch"),
    ])
    def test_bad_input_names_the_field(self, fields: dict[str, Any], where: str) -> None:
        with pytest.raises(errors.SpecError) as caught:
            types.ProfileSpec.from_dict(fields)
        assert caught.value.field == where


class TestSchema:
    """Both profile CRDs carry the fields, with Sveltos' enums and defaults."""

    @pytest.mark.parametrize("index", [2, 3])
    def test_fields_present(self, index: int) -> None:
        doc = schema.crd_documents()[index]
        spec = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        props = spec["properties"]
        for name in ("patches", "patchesFrom", "extraLabels", "extraAnnotations",
                     "maxConsecutiveFailures", "reloader", "setRefs", "templateResourceRefs",
                     "preDeployChecks", "preDeleteChecks", "postDeleteChecks"):
            assert name in props, name
        ref = props["policyRefs"]["items"]["properties"]
        assert ref["deploymentType"]["enum"] == ["Remote", "Local"]
        assert ref["deploymentType"]["default"] == "Remote"
        assert ref["tier"]["default"] == 100 and ref["tier"]["minimum"] == 1
        assert ref["skipNamespaceCreation"]["default"] is False
        chart = props["helmCharts"]["items"]["properties"]
        assert "registryCredentialsConfig" in chart and "signatureVerification" in chart


class TestReferences:
    """patchesFrom ConfigMaps/Secrets are part of the snapshot like policyRefs'."""

    def test_patches_from_is_a_reference(self) -> None:
        spec = _spec(policyRefs=[{"kind": "ConfigMap", "name": "m", "namespace": "a"}],
                     patchesFrom=[{"kind": "Secret", "name": "p", "namespace": "b",
                                   "optional": True}])
        refs = snapshot.references(spec, profile_kind="ClusterProfile", profile_namespace="")
        assert [(r.field, r.key, r.optional) for r in refs] == [
            ("spec.policyRefs[0]", "ConfigMap/a/m", False),
            ("spec.patchesFrom[0]", "Secret/b/p", True)]

    def test_profile_reads_its_own_namespace(self) -> None:
        spec = _spec(patchesFrom=[{"kind": "ConfigMap", "name": "p", "namespace": "other"}])
        refs = snapshot.references(spec, profile_kind="Profile", profile_namespace="team")
        assert refs[0].key == "ConfigMap/team/p"


class TestReleaseHash:
    """A release's hash covers its post-render; without one it is what it always was."""

    PLAN = ReleasePlan(name="web", release_name="web", namespace="apps", repository_url="u",
                       chart_name="c", chart_version="1.0.0", values={}, depends_on=(),
                       health_checks=(), source="helmChart", field="spec.helmCharts[0]")

    def test_post_render_changes_the_hash_only_when_set(self) -> None:
        plain = inventory.DesiredItem.for_release(self.PLAN, values={"a": 1})
        assert plain.hash == render.stable_hash("u", "c", "1.0.0", False, {"a": 1})
        labelled = inventory.DesiredItem.for_release(
            dataclasses.replace(self.PLAN, post_render={"labels": {"t": "a"}}), values={"a": 1})
        relabelled = inventory.DesiredItem.for_release(
            dataclasses.replace(self.PLAN, post_render={"labels": {"t": "b"}}), values={"a": 1})
        assert len({plain.hash, labelled.hash, relabelled.hash}) == 3


class TestUnsupported:
    """Every accepted-but-not-honoured field is named with its path; honoured ones are not."""

    def test_everything_named(self) -> None:
        found = unsupported.fields({
            "reloader": True, "setRefs": ["s"],
            "kustomizationRefs": [{"kind": "GitRepository", "name": "g"},
                                  {"kind": "ConfigMap", "name": "c", "deploymentType": "Local"},
                                  {"kind": "ConfigMap", "name": "deployed"}],
            "policyRefs": [{"kind": "ConfigMap", "name": "a"},
                           {"kind": "ConfigMap", "name": "b", "deploymentType": "Local"}],
            "helmCharts": [{"chartName": "c", "registryCredentialsConfig": {"x": 1},
                            "signatureVerification": "cosign"}],
        })
        paths = [f.split(":")[0].split(" ")[0] for f in found]
        assert paths == ["spec.reloader", "spec.setRefs", "spec.kustomizationRefs[0]",
                         "spec.kustomizationRefs[1].deploymentType",
                         "spec.policyRefs[1].deploymentType",
                         "spec.helmCharts[0].registryCredentialsConfig",
                         "spec.helmCharts[0].signatureVerification"]
        assert "Flux sources are out of scope" in found[2]
        assert "Local (the management cluster) is not supported" in found[3]

    def test_honoured_or_default_fields_are_not_reported(self) -> None:
        assert unsupported.fields({
            "reloader": False, "setRefs": [], "extraLabels": {"a": "b"},
            "policyRefs": [{"kind": "ConfigMap", "name": "a", "deploymentType": "Remote"}],
            "patches": [{"patch": "x"}], "maxConsecutiveFailures": 3,
            "preDeployChecks": [{"name": "c"}], "preDeleteChecks": [{"name": "c"}],
            "postDeleteChecks": [{"name": "c"}],
            "templateResourceRefs": [{"identifier": "x", "resource": {"kind": "A", "name": "b"}}],
        }) == []
        assert unsupported.message([]) == "every field set is honoured"
