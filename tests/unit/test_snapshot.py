"""Revision snapshots: what they hold, how they are stored, and what changed between two."""

from __future__ import annotations

import json
import random
import string

import pytest

from engine import errors, snapshot
from engine.model import types

SPEC = {
    "clusterSelector": {"matchLabels": {"gpu": "nvidia"}},
    "services": [{"name": "kserve", "version": "0.18.0"}],
    "helmCharts": [{"repositoryURL": "https://x", "chartName": "a", "chartVersion": "1.0.0",
                    "releaseName": "a", "releaseNamespace": "a",
                    "valuesFrom": [{"kind": "Secret", "name": "creds", "namespace": "team"}]}],
    "policyRefs": [{"kind": "ConfigMap", "name": "policies", "namespace": "team"},
                   {"kind": "ConfigMap", "name": "extra", "namespace": "other",
                    "optional": True}],
    "maxUpdate": 1,
}
CATALOG = {
    "kserve": {"dependsOn": ["cert-manager", "kserve-crd"], "versions": []},
    "cert-manager": {"versions": [{"version": "1.21.1"}]},
    "kserve-crd": {"versions": []},
    "istiod": {"versions": []},
}


def _snap(**over: object) -> snapshot.Snapshot:
    base: dict[str, object] = {
        "spec": snapshot.content_of(SPEC),
        "configmaps": {"ConfigMap/team/policies": {"a.yaml": "kind: Namespace\n"}},
        "secrets": {"Secret/team/creds": {"values.yaml": "password: hunter2\n"}},
        "catalog": snapshot.catalog_used(types.ProfileSpec.from_dict(SPEC), CATALOG),
    }
    base.update(over)
    return snapshot.Snapshot(**base)  # type: ignore[arg-type]


class TestWhatASnapshotHolds:
    """Content of the spec, its references, and the catalog entries it uses."""

    def test_selection_and_rollout_fields_are_not_content(self) -> None:
        content = snapshot.content_of(SPEC)
        assert "clusterSelector" not in content and "maxUpdate" not in content
        assert content["services"] == SPEC["services"]

    def test_references_name_the_field_that_names_them(self) -> None:
        refs = snapshot.references(types.ProfileSpec.from_dict(SPEC), profile_kind="ClusterProfile",
                                   profile_namespace="")
        assert [(r.key, r.field, r.optional) for r in refs] == [
            ("Secret/team/creds", "spec.helmCharts[0].valuesFrom[0]", False),
            ("ConfigMap/team/policies", "spec.policyRefs[0]", False),
            ("ConfigMap/other/extra", "spec.policyRefs[1]", True)]

    def test_a_profile_reads_only_its_own_namespace(self) -> None:
        refs = snapshot.references(types.ProfileSpec.from_dict(SPEC), profile_kind="Profile",
                                   profile_namespace="tenant-a")
        assert {r.namespace for r in refs} == {"tenant-a"}

    def test_catalog_entries_include_dependencies_and_nothing_else(self) -> None:
        used = snapshot.catalog_used(types.ProfileSpec.from_dict(SPEC), CATALOG)
        assert sorted(used) == ["cert-manager", "kserve", "kserve-crd"]

    def test_every_part_moves_the_digest(self) -> None:
        base = _snap().digest()
        assert _snap(configmaps={"ConfigMap/team/policies": {"a.yaml": "x"}}).digest() != base
        assert _snap(secrets={"Secret/team/creds": {"values.yaml": "y"}}).digest() != base
        assert _snap(catalog={}).digest() != base
        assert _snap(spec={}).digest() != base
        assert _snap().digest() == base


class TestStoredForm:
    """Secret data is kept apart; big content is compressed; too big is refused."""

    def test_round_trip_keeps_everything_and_secrets_stay_out_of_the_revision(self) -> None:
        snap = _snap()
        public, secret = snapshot.split(snap)
        assert "hunter2" not in json.dumps(public)
        assert public["secretRefs"] == ["Secret/team/creds"]
        assert snapshot.join(public, secret) == snap

    def test_big_content_is_compressed(self) -> None:
        big = {f"k{i}": "v" * 1000 for i in range(400)}  # ~400 KB, compresses well
        snap = _snap(configmaps={"ConfigMap/team/policies": big})
        public, secret = snapshot.split(snap)
        assert "gzip" in public and "content" not in public
        assert len(json.dumps(public)) < 100_000
        assert snapshot.join(public, secret) == snap

    def test_content_too_big_even_compressed_is_a_spec_error(self) -> None:
        rng = random.Random(7)
        noise = "".join(rng.choices(string.ascii_letters, k=2_000_000))
        with pytest.raises(errors.SpecError) as caught:
            snapshot.split(_snap(configmaps={"ConfigMap/team/policies": {"k": noise}}))
        assert caught.value.reason == "SnapshotTooLarge"

    def test_revisions_recorded_before_snapshots_read_as_incomplete(self) -> None:
        old = snapshot.join({"services": [{"name": "kserve"}], "tier": 100}, None)
        assert not old.complete
        assert old.spec == {"services": [{"name": "kserve"}], "tier": 100}

    def test_missing_secret_data_is_retriable(self) -> None:
        public, _ = snapshot.split(_snap())
        with pytest.raises(errors.RetriableError):
            snapshot.join(public, None)


class TestChanges:
    """History names which ConfigMap, which catalog entry and which values path changed."""

    def test_values_path_inside_a_configmap(self) -> None:
        old = _snap(configmaps={"ConfigMap/team/v": {"values.yaml": "driver:\n  version: '1'\n"}})
        new = _snap(configmaps={"ConfigMap/team/v": {"values.yaml": "driver:\n  version: '2'\n"}})
        assert snapshot.changes(old, new) == ["ConfigMap team/v values.yaml /driver/version"]

    def test_catalog_and_spec_paths(self) -> None:
        catalog = dict(_snap().catalog)
        catalog["cert-manager"] = {"versions": [{"version": "1.21.2"}]}
        new = _snap(catalog=catalog, spec={**snapshot.content_of(SPEC), "tier": 50})
        assert snapshot.changes(_snap(), new) == [
            "spec /tier", "catalog cert-manager /versions/0/version"]

    def test_secret_values_are_never_shown(self) -> None:
        new = _snap(secrets={"Secret/team/creds": {"values.yaml": "password: s3cret\n"}})
        lines = snapshot.changes(_snap(), new)
        assert lines == ["Secret team/creds key values.yaml changed"]
        assert "s3cret" not in " ".join(lines) and "hunter2" not in " ".join(lines)
