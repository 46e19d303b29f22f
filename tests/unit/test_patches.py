"""Unit tests for engine.patches and engine.strategicmerge: kustomize-style patches, extra marks."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from engine import errors, patches, strategicmerge
from engine.adapters import postrender
from engine.patches import Patch, Target, Transform


def _deployment(name: str = "web", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "apps", "labels": {"app": name, **labels}},
        "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": name}}, "spec": {
            "containers": [
                {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}],
                 "ports": [{"containerPort": 80}], "args": ["--x"]},
                {"name": "sidecar", "image": "side:1"}],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "tolerations": [{"key": "a", "operator": "Exists"}]}}},
    }


CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "settings", "namespace": "apps"}, "data": {"k": "v"}}


def _smp(text: str, **target: str) -> Patch:
    return Patch(patch=text, target=Target(**target) if target else None)


class TestStrategicMerge:
    """Maps merge, null deletes, built-in lists merge on their merge keys, others replace."""

    def test_containers_merge_by_name_and_env_by_name(self) -> None:
        out = strategicmerge.apply(_deployment(), {"spec": {"template": {"spec": {
            "containers": [{"name": "app", "image": "app:2",
                            "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "9"}]},
                           {"name": "new", "image": "new:1"}]}}}})
        assert out is not None
        containers = out["spec"]["template"]["spec"]["containers"]
        assert [c["name"] for c in containers] == ["app", "sidecar", "new"]
        assert containers[0]["image"] == "app:2"
        assert containers[0]["env"] == [{"name": "A", "value": "9"}, {"name": "B", "value": "2"}]
        assert containers[0]["args"] == ["--x"]  # untouched fields stay
        assert containers[1] == {"name": "sidecar", "image": "side:1"}

    def test_lists_without_a_merge_key_are_replaced(self) -> None:
        out = strategicmerge.apply(_deployment(), {"spec": {"template": {"spec": {
            "tolerations": [{"key": "b", "operator": "Exists"}],
            "containers": [{"name": "app", "args": ["--y"]}]}}}})
        assert out is not None
        spec = out["spec"]["template"]["spec"]
        assert spec["tolerations"] == [{"key": "b", "operator": "Exists"}]
        assert spec["containers"][0]["args"] == ["--y"]

    def test_ports_merge_by_container_port_and_volumes_by_name(self) -> None:
        out = strategicmerge.apply(_deployment(), {"spec": {"template": {"spec": {
            "volumes": [{"name": "cache", "emptyDir": {}}],
            "containers": [{"name": "app", "ports": [{"containerPort": 80, "name": "http"},
                                                     {"containerPort": 443}]}]}}}})
        assert out is not None
        spec = out["spec"]["template"]["spec"]
        assert [v["name"] for v in spec["volumes"]] == ["data", "cache"]
        assert spec["containers"][0]["ports"] == [{"containerPort": 80, "name": "http"},
                                                  {"containerPort": 443}]

    def test_null_deletes_and_directives(self) -> None:
        out = strategicmerge.apply(_deployment(), {
            "metadata": {"labels": {"app": None}},
            "spec": {"template": {"spec": {
                "containers": [{"name": "sidecar", "$patch": "delete"}],
                "volumes": [{"$patch": "replace"}, {"name": "only", "emptyDir": {}}],
                "$deleteFromPrimitiveList/none": ["x"]}}}})
        assert out is not None
        assert "app" not in out["metadata"]["labels"]
        spec = out["spec"]["template"]["spec"]
        assert [c["name"] for c in spec["containers"]] == ["app"]
        assert spec["volumes"] == [{"name": "only", "emptyDir": {}}]

    def test_map_replace_directive_and_object_delete(self) -> None:
        out = strategicmerge.apply(_deployment(), {"spec": {"template": {"metadata": {
            "$patch": "replace", "labels": {"only": "this"}}}}})
        assert out is not None
        assert out["spec"]["template"]["metadata"] == {"labels": {"only": "this"}}
        assert strategicmerge.apply(_deployment(), {"$patch": "delete"}) is None

    def test_finalizers_merge_as_a_set(self) -> None:
        obj = {**CONFIGMAP, "metadata": {**CONFIGMAP["metadata"], "finalizers": ["a"]}}
        out = strategicmerge.apply(obj, {"metadata": {"finalizers": ["b", "a"]}})
        assert out is not None and out["metadata"]["finalizers"] == ["a", "b"]

    def test_custom_resources_merge_lists_by_name_only_when_all_have_one(self) -> None:
        obj = {"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t"},
               "spec": {"items": [{"name": "a", "v": 1}, {"name": "b", "v": 1}],
                        "ports": [{"port": 1}]}}
        out = strategicmerge.apply(obj, {"spec": {"items": [{"name": "b", "v": 2}],
                                                  "ports": [{"port": 2}]}})
        assert out is not None
        assert out["spec"]["items"] == [{"name": "a", "v": 1}, {"name": "b", "v": 2}]
        assert out["spec"]["ports"] == [{"port": 2}]

    def test_inputs_are_not_modified(self) -> None:
        original, patch = _deployment(), {"spec": {"replicas": 3}}
        before = copy.deepcopy(original)
        strategicmerge.apply(original, patch)
        assert original == before and patch == {"spec": {"replicas": 3}}


class TestTargets:
    """Targets: anchored regular expressions and kubectl selectors; empty matches anything."""

    @pytest.mark.parametrize(("target", "expected"), [
        (Target(), True),
        (Target(kind="Deployment"), True),
        (Target(kind="Deploy"), False),  # anchored, as in kustomize
        (Target(kind="Deploy.*", group="apps", version="v1"), True),
        (Target(group=""), True),
        (Target(name="web|api"), True),
        (Target(namespace="other"), False),
        (Target(label_selector="app in (web, api),tier!=db"), True),
        (Target(label_selector="app=api"), False),
        (Target(annotation_selector="note"), False),
    ])
    def test_selects(self, target: Target, expected: bool) -> None:
        assert patches.selects(target, _deployment()) is expected

    def test_core_group_matches_an_empty_pattern_only(self) -> None:
        assert patches.selects(Target(group="apps"), CONFIGMAP) is False
        assert patches.selects(Target(kind="ConfigMap", version="v1"), CONFIGMAP) is True

    def test_a_bad_regex_is_a_spec_error_naming_the_field(self) -> None:
        patch = Patch(patch="{metadata: {labels: {a: b}}}", target=Target(name="(["),
                      field="spec.patches[2]")
        with pytest.raises(errors.SpecError) as caught:
            Transform(patches=(patch,)).check()
        assert caught.value.field == "spec.patches[2]"


class TestPatches:
    """Strategic merge or JSON 6902, detected from the text, applied in order."""

    def test_smp_with_a_target_ignores_the_patch_identity(self) -> None:
        patch = _smp("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: not-important}\n"
                     "spec: {replicas: 3}\n", kind="Deployment")
        out = patches.apply_patch([_deployment("web"), _deployment("api"), CONFIGMAP], patch)
        assert [o["metadata"]["name"] for o in out] == ["web", "api", "settings"]
        assert [o.get("spec", {}).get("replicas") for o in out] == [3, 3, None]

    def test_smp_without_a_target_patches_the_object_it_names(self) -> None:
        patch = _smp("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api, namespace: "
                     "apps}\nspec: {replicas: 5}\n")
        out = patches.apply_patch([_deployment("web"), _deployment("api")], patch)
        assert [o["spec"]["replicas"] for o in out] == [1, 5]

    def test_json6902_from_yaml_or_json(self) -> None:
        yaml_ops = _smp("- {op: replace, path: /spec/replicas, value: 4}\n"
                        "- {op: add, path: /metadata/labels/extra, value: 'yes'}\n", kind="Depl.*")
        json_ops = _smp('[{"op": "remove", "path": "/spec/template/spec/tolerations"}]',
                        name="web")
        out = Transform(patches=(yaml_ops, json_ops)).apply([_deployment(), CONFIGMAP])
        assert out[0]["spec"]["replicas"] == 4
        assert out[0]["metadata"]["labels"]["extra"] == "yes"
        assert "tolerations" not in out[0]["spec"]["template"]["spec"]
        assert out[1] == CONFIGMAP

    def test_a_failing_json6902_patch_names_the_object(self) -> None:
        patch = Patch(patch="[{op: replace, path: /spec/nothing/here, value: 1}]",
                      target=Target(kind="Deployment"), field="spec.patchesFrom[0] key p")
        with pytest.raises(errors.SpecError, match="Deployment apps/web") as caught:
            patches.apply_patch([_deployment()], patch)
        assert caught.value.reason == "PatchFailed"
        assert caught.value.field == "spec.patchesFrom[0] key p"

    @pytest.mark.parametrize("ops", [
        "[{op: test, path: /data/pw, value: guess}]",
        "[{op: replace, path: /data/pw/deeper, value: 1}]",
        "[{op: remove, path: /data/nothing/x}]",
        "[{op: add, path: /data/pw/0, value: 1}]",
    ])
    def test_failures_never_quote_the_object(self, ops: str) -> None:
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                  "data": {"pw": "hunter2-value"}}
        with pytest.raises(errors.SpecError) as caught:
            patches.apply_patch([secret], Patch(patch=ops, target=Target(kind="Secret")))
        assert "hunter2" not in str(caught.value) and "Secret s" in str(caught.value)

    @pytest.mark.parametrize(("text", "target", "match"), [
        ("- {op: remove, path: /a}", None, "needs a target"),
        ("just text", Target(), "strategic merge patch .a mapping."),
        ("spec: {replicas: 1}", None, "must name its object"),
        ("spec: [unclosed", Target(), "not valid YAML"),
    ])
    def test_unusable_patches_fail_the_check(self, text: str, target: Target | None,
                                             match: str) -> None:
        with pytest.raises(errors.SpecError, match=match) as caught:
            Transform(patches=(Patch(patch=text, target=target),)).check()
        assert caught.value.reason == "InvalidPatch"

    def test_smp_delete_drops_the_object(self) -> None:
        patch = _smp("$patch: delete", kind="ConfigMap")
        assert patches.apply_patch([_deployment(), CONFIGMAP], patch) == [_deployment()]


class TestExtraMarks:
    """extraLabels / extraAnnotations land on every object, after the patches, and win."""

    def test_labels_and_annotations_override_the_objects_own(self) -> None:
        transform = Transform(
            patches=(_smp("metadata: {labels: {team: from-patch}}", kind=".*"),),
            labels={"team": "platform", "app": "renamed"}, annotations={"owner": "sre"})
        out = transform.apply([_deployment(), CONFIGMAP])
        assert [o["metadata"]["labels"] for o in out] == [
            {"app": "renamed", "team": "platform"}, {"team": "platform", "app": "renamed"}]
        assert all(o["metadata"]["annotations"] == {"owner": "sre"} for o in out)
        # Only metadata: pod template labels (and selectors) are left alone.
        assert out[0]["spec"]["template"]["metadata"]["labels"] == {"app": "web"}

    def test_empty_transform_changes_nothing(self) -> None:
        assert Transform().empty
        assert Transform().apply([_deployment()]) == [_deployment()]


class TestSerialisation:
    """The JSON form the post-renderer reads, and patchesFrom data."""

    def test_round_trip(self) -> None:
        transform = Transform(patches=(Patch(patch="x: 1", target=Target(kind="A", label_selector=
                                                                          "a=b"), field="f"),
                                       Patch(patch="y: 2", field="g")),
                              labels={"b": "2", "a": "1"}, annotations={"n": "v"})
        data = json.loads(patches.dumps(transform))
        assert list(data["labels"]) == ["a", "b"]
        assert Transform.from_json(data) == transform

    def test_parse_patches_from_data(self) -> None:
        text = "- patch: 'spec: {replicas: 2}'\n  target: {kind: Deployment}\n"
        assert patches.parse_patches(text, field="f") == [
            {"patch": "spec: {replicas: 2}", "target": {"kind": "Deployment"}}]
        assert patches.parse_patches("", field="f") == []
        with pytest.raises(errors.SpecError, match="entry 1"):
            patches.parse_patches("- target: {kind: A}\n", field="f")


class TestPostRender:
    """The post-renderer: CRDs kept and/or the transform run over Helm's stream."""

    STREAM = ("---\n# Source: chart/templates/cm.yaml\n" + yaml.safe_dump(CONFIGMAP) +
              "---\n" + yaml.safe_dump(_deployment()))

    def test_transform_over_a_stream(self) -> None:
        out = postrender.render(self.STREAM, keep_crds=True, transform=Transform(
            labels={"team": "x"}, patches=(_smp("spec: {replicas: 2}", kind="Deployment"),)))
        docs = [d for d in yaml.safe_load_all(out) if d]
        assert [d["kind"] for d in docs] == ["ConfigMap", "Deployment"]
        assert all(d["metadata"]["labels"]["team"] == "x" for d in docs)
        assert docs[1]["spec"]["replicas"] == 2

    def test_without_a_transform_the_stream_is_untouched(self) -> None:
        assert postrender.render(self.STREAM, keep_crds=True, transform=None) == self.STREAM

    def test_flags(self, tmp_path: Any) -> None:
        assert postrender.flags(keep_crds=False) == []
        flags = postrender.flags(keep_crds=False, transform=tmp_path / "t.json")
        assert flags[-2:] == ["--post-renderer-args", str(tmp_path / "t.json")]
        assert "--no-keep-crds" in flags and "--no-keep-crds" not in postrender.flags()

    def test_main_reads_the_transform_file(self, tmp_path: Any, monkeypatch: Any,
                                           capsys: Any) -> None:
        import io
        path = tmp_path / "t.json"
        path.write_text(patches.dumps(Transform(annotations={"a": "b"})))
        monkeypatch.setattr("sys.stdin", io.StringIO(self.STREAM))
        assert postrender.main(["--no-keep-crds", "--transform", str(path)]) == 0
        docs = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
        assert all(d["metadata"]["annotations"] == {"a": "b"} for d in docs)

    def test_a_failing_patch_names_its_field_on_stderr(self, tmp_path: Any, monkeypatch: Any,
                                                      capsys: Any) -> None:
        import io
        path = tmp_path / "t.json"
        path.write_text(patches.dumps(Transform(patches=(Patch(
            patch="[{op: replace, path: /spec/none, value: 1}]", target=Target(kind="ConfigMap"),
            field="spec.patches[1]"),))))
        monkeypatch.setattr("sys.stdin", io.StringIO(self.STREAM))
        assert postrender.main(["--transform", str(path)]) == 1
        err = capsys.readouterr().err
        assert "flotilla post-renderer: spec.patches[1]: JSON 6902 patch failed on ConfigMap " \
               "apps/settings: " in err
        assert "'k'" not in err  # the object's content never reaches the message
