"""Unit tests for engine.templaterefs: resolving templateResourceRefs, capturing, getResource."""

from __future__ import annotations

from typing import Any

import pytest

from engine import errors, render, snapshot, templaterefs
from engine.model import types

CLUSTER = {"apiVersion": "flotilla.dev/v1alpha1", "kind": "WorkloadCluster",
           "metadata": {"name": "gpu-eu-1", "namespace": "fleet", "labels": {"region": "eu"}}}


def _refs(*entries: dict[str, Any]) -> tuple[types.TemplateResourceRef, ...]:
    return types.ProfileSpec.from_dict({"templateResourceRefs": list(entries)}
                                       ).template_resource_refs


class TestModel:
    """Sveltos' shape; apiVersion defaults to v1; identifiers are unique."""

    def test_fields(self) -> None:
        (ref,) = _refs({"identifier": "info", "optional": True, "ignoreStatusChanges": True,
                        "resource": {"kind": "ConfigMap", "name": "x", "namespace": "n"}})
        assert (ref.identifier, ref.api_version, ref.kind, ref.name, ref.namespace,
                ref.optional, ref.ignore_status_changes) == (
            "info", "v1", "ConfigMap", "x", "n", True, True)

    def test_duplicate_identifiers_name_the_second(self) -> None:
        entry = {"identifier": "a", "resource": {"kind": "ConfigMap", "name": "x"}}
        with pytest.raises(errors.SpecError) as caught:
            _refs(entry, entry)
        assert caught.value.field == "spec.templateResourceRefs[1].identifier"


class TestResolve:
    """Names and namespaces are templates over the cluster; namespaces default by scope."""

    def test_templated_name_and_cluster_namespace(self) -> None:
        refs = _refs({"identifier": "info", "resource": {
            "kind": "ConfigMap", "name": "{{ cluster.metadata.name }}-{{ "
                                         "cluster.metadata.labels.region }}"}},
                     {"identifier": "shared", "resource": {
                         "apiVersion": "example.com/v1", "kind": "Thing", "name": "t",
                         "namespace": "platform"}})
        found = templaterefs.resolve(refs, CLUSTER, profile_kind="ClusterProfile",
                                     profile_namespace="")
        assert [(r.identifier, r.namespace, r.name, r.key) for r in found] == [
            ("info", "fleet", "gpu-eu-1-eu", "Resource/v1/ConfigMap/fleet/gpu-eu-1-eu"),
            ("shared", "platform", "t", "Resource/example.com/v1/Thing/platform/t")]
        assert found[1].field == "spec.templateResourceRefs[1]"

    def test_a_profile_reads_its_own_namespace_only(self) -> None:
        refs = _refs({"identifier": "i", "resource": {"kind": "Secret", "name": "s",
                                                      "namespace": "elsewhere"}})
        (found,) = templaterefs.resolve(refs, CLUSTER, profile_kind="Profile",
                                        profile_namespace="team-a")
        assert found.namespace == "team-a" and found.secret

    def test_a_name_that_renders_empty_is_an_error(self) -> None:
        refs = _refs({"identifier": "i", "resource": {
            "kind": "ConfigMap", "name": "{{ cluster.metadata.labels.get('none', '') }}"}})
        with pytest.raises(errors.SpecError) as caught:
            templaterefs.resolve(refs, CLUSTER, profile_kind="ClusterProfile",
                                 profile_namespace="")
        assert caught.value.field == "spec.templateResourceRefs[0].resource.name"


class TestCapture:
    """What a snapshot keeps: no managedFields or resourceVersion; no status when asked."""

    OBJ = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}, "status": {"s": 1},
           "metadata": {"name": "x", "namespace": "n", "resourceVersion": "7",
                        "managedFields": [{"manager": "kubectl"}], "labels": {"a": "b"}}}

    def _ref(self, ignore_status: bool) -> templaterefs.Resolved:
        return templaterefs.Resolved("i", "v1", "ConfigMap", "n", "x", False, ignore_status, "f")

    def test_round_trip(self) -> None:
        kept = templaterefs.release(templaterefs.capture(self.OBJ, self._ref(False)))
        assert kept == {"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"},
                        "status": {"s": 1},
                        "metadata": {"name": "x", "namespace": "n", "labels": {"a": "b"}}}

    def test_status_changes_do_not_change_what_is_kept_when_ignored(self) -> None:
        other = {**self.OBJ, "status": {"s": 2},
                 "metadata": {**self.OBJ["metadata"], "resourceVersion": "8"}}
        ref = self._ref(True)
        assert templaterefs.capture(self.OBJ, ref) == templaterefs.capture(other, ref)
        assert templaterefs.capture(self.OBJ, self._ref(False)) != \
            templaterefs.capture(other, self._ref(False))

    def test_absent(self) -> None:
        assert templaterefs.capture(None, self._ref(False)) is None
        assert templaterefs.release(None) is None


class TestGetResource:
    """getResource() in the Jinja2 sandbox: the object, {} for an absent optional one."""

    def test_in_templates(self) -> None:
        get = templaterefs.getter({"info": {"data": {"endpoint": "https://eu"}}, "gone": None})
        ctx = {"cluster": CLUSTER, "getResource": get}
        assert render.template_values('{{ getResource("info").data.endpoint }}', ctx) == \
            "https://eu"
        assert render.template_yaml('x: {{ getResource("gone") | length }}', ctx) == {"x": 0}

    def test_unknown_identifier_names_the_known_ones(self) -> None:
        ctx = {"getResource": templaterefs.getter({"b": {}, "a": {}})}
        with pytest.raises(errors.SpecError, match=r"known: a, b"):
            render.template_values('{{ getResource("c") }}', ctx)


def test_history_names_captured_objects_and_never_secret_values() -> None:
    before = snapshot.Snapshot(spec={}, configmaps={
        "Resource/v1/ConfigMap/f/x": {"object": '{"data": {"r": "eu"}}'}},
        secrets={"Resource/v1/Secret/f/s": {"object": '{"data": {"p": "b2xk"}}'}})
    after = snapshot.Snapshot(spec={}, configmaps={
        "Resource/v1/ConfigMap/f/x": {"object": '{"data": {"r": "us"}}'}},
        secrets={"Resource/v1/Secret/f/s": {"object": '{"data": {"p": "bmV3"}}'}})
    assert snapshot.changes(before, after) == [
        "templateResourceRefs object v1/ConfigMap/f/x /data/r",
        "templateResourceRefs object v1/Secret/f/s changed"]
