"""Unit tests for engine.render: templating, merging, manifests and hashes."""

from __future__ import annotations

from typing import Any

import pytest

from engine import errors, render

CONTEXT: dict[str, Any] = {
    "cluster": {
        "metadata": {"name": "gpu-eu-1", "namespace": "fleet", "labels": {"region": "eu"}},
        "status": {"facts": {"gpuTotal": 8, "gpus": {"A100": 8}}},
    }
}


class TestTemplateValues:
    """Strings with Jinja2 markers render over the cluster; others pass through."""

    def test_renders_nested_strings(self) -> None:
        values = {
            "name": "{{ cluster.metadata.name }}",
            "plain": "no markers",
            "number": 3,
            "list": ["{{ cluster.metadata.labels.region }}-1", True],
            "nested": {"gpus": "{% if cluster.status.facts.gpuTotal > 0 %}yes{% endif %}"},
        }
        assert render.template_values(values, CONTEXT) == {
            "name": "gpu-eu-1",
            "plain": "no markers",
            "number": 3,
            "list": ["eu-1", True],
            "nested": {"gpus": "yes"},
        }

    def test_does_not_mutate(self) -> None:
        values = {"a": ["{{ cluster.metadata.name }}"]}
        render.template_values(values, CONTEXT)
        assert values == {"a": ["{{ cluster.metadata.name }}"]}

    @pytest.mark.parametrize(
        ("values", "field"),
        [
            ({"a": {"b": "{{ cluster.metadata.missing }}"}}, "values.a.b"),
            ({"a": ["ok", "{{ nothere }}"]}, "values.a[1]"),
            ({"a": "{{ cluster.metadata.name "}, "values.a"),
            ({"a": "{% for %}"}, "values.a"),
        ],
    )
    def test_errors_name_the_path(self, values: dict[str, Any], field: str) -> None:
        with pytest.raises(errors.SpecError) as caught:
            render.template_values(values, CONTEXT)
        assert caught.value.reason == "TemplateError"
        assert caught.value.field == field

    @pytest.mark.parametrize(
        "source",
        [
            "{{ cluster.__class__ }}",
            "{{ cluster.metadata.labels.update({'x': 1}) }}",
            "{{ cluster.metadata.labels.clear() }}",
        ],
    )
    def test_sandbox_blocks_unsafe_access(self, source: str) -> None:
        with pytest.raises(errors.SpecError):
            render.template_values({"v": source}, CONTEXT)
        assert CONTEXT["cluster"]["metadata"]["labels"] == {"region": "eu"}

    def test_template_yaml_gives_typed_values(self) -> None:
        text = "gpus: {{ cluster.status.facts.gpuTotal }}\nname: {{ cluster.metadata.name }}\n"
        assert render.template_yaml(text, CONTEXT, field="spec.helmCharts[0].values") == {
            "gpus": 8,
            "name": "gpu-eu-1",
        }

    def test_template_yaml_invalid_after_rendering(self) -> None:
        with pytest.raises(errors.SpecError) as caught:
            render.template_yaml("a: [{{ cluster.metadata.name }}", CONTEXT, field="f")
        assert caught.value.reason == "TemplateError" and caught.value.field == "f"

    @pytest.mark.parametrize(
        ("text", "expected"), [("{{ x }}", True), ("{% if %}", True), ("{ a }", False)]
    )
    def test_is_template(self, text: str, expected: bool) -> None:
        assert render.is_template(text) is expected


class TestDeepMerge:
    """deep_merge merges dicts recursively and replaces everything else."""

    @pytest.mark.parametrize(
        ("base", "override", "expected"),
        [
            ({"a": 1}, {"b": 2}, {"a": 1, "b": 2}),
            ({"a": {"x": 1, "y": 2}}, {"a": {"y": 3}}, {"a": {"x": 1, "y": 3}}),
            ({"a": [1, 2]}, {"a": [3]}, {"a": [3]}),
            ({"a": {"x": 1}}, {"a": 5}, {"a": 5}),
            ({"a": 5}, {"a": {"x": 1}}, {"a": {"x": 1}}),
            ({"a": 1}, {"a": None}, {"a": None}),
            ({}, {}, {}),
        ],
    )
    def test_merge(
        self, base: dict[str, Any], override: dict[str, Any], expected: dict[str, Any]
    ) -> None:
        assert render.deep_merge(base, override) == expected

    def test_inputs_are_not_shared_or_mutated(self) -> None:
        base = {"a": {"list": [1]}}
        override = {"b": {"list": [2]}}
        merged = render.deep_merge(base, override)
        merged["a"]["list"].append(9)
        merged["b"]["list"].append(9)
        assert base == {"a": {"list": [1]}} and override == {"b": {"list": [2]}}


class TestLoadManifests:
    """load_manifests parses multi-document YAML, sorted by key."""

    def test_parses_sorted_documents(self) -> None:
        data = {
            "b.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n",
            "a.yaml": (
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a1, namespace: b}\n"
                "---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a2, namespace: b}\n"
            ),
        }
        manifests = render.load_manifests(data, field="spec.policyRefs[0]")
        assert [m["metadata"]["name"] for m in manifests] == ["a1", "a2", "b"]

    def test_lists_are_flattened(self) -> None:
        data = {
            "list": (
                "apiVersion: v1\nkind: List\nitems:\n"
                "- {apiVersion: v1, kind: ConfigMap, metadata: {name: x}}\n"
                "- {apiVersion: v1, kind: ConfigMap, metadata: {name: y}}\n"
            )
        }
        assert [m["metadata"]["name"] for m in render.load_manifests(data, field="f")] == ["x", "y"]

    def test_empty(self) -> None:
        assert render.load_manifests({"empty": "", "comment": "# nothing\n"}, field="f") == []

    @pytest.mark.parametrize(
        ("text", "problem"),
        [
            ("kind: ConfigMap\nmetadata: {name: x}\n", "has no apiVersion"),
            ("apiVersion: v1\nmetadata: {name: x}\n", "has no kind"),
            ("apiVersion: v1\nkind: ConfigMap\n", "has no metadata.name"),
            ("apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: x}\n", "has no metadata.name"),
            ("- a\n- b\n", "is not an object"),
            ("a: [1", "not valid YAML"),
        ],
    )
    def test_invalid(self, text: str, problem: str) -> None:
        with pytest.raises(errors.SpecError) as caught:
            render.load_manifests({"bad.yaml": text}, field="spec.policyRefs[2]")
        assert caught.value.reason == "InvalidManifest"
        assert caught.value.field == "spec.policyRefs[2]"
        assert problem in caught.value.message and "bad.yaml" in caught.value.message


class TestHashes:
    """Hashes are short, stable and independent of dict ordering."""

    def test_object_hash_ignores_key_order(self) -> None:
        first = render.object_hash({"a": 1, "b": {"c": [1, 2], "d": "x"}})
        second = render.object_hash({"b": {"d": "x", "c": [1, 2]}, "a": 1})
        assert first == second
        assert len(first) == 16 and all(ch in "0123456789abcdef" for ch in first)

    @pytest.mark.parametrize(
        ("a", "b"), [({"a": 1}, {"a": 2}), ({"a": [1, 2]}, {"a": [2, 1]}), (1, "1")]
    )
    def test_object_hash_sees_changes(self, a: Any, b: Any) -> None:
        assert render.object_hash(a) != render.object_hash(b)

    def test_stable_hash(self) -> None:
        assert render.stable_hash("a", {"x": 1, "y": 2}) == render.stable_hash(
            "a", {"y": 2, "x": 1}
        )
        assert render.stable_hash("a", "b") != render.stable_hash("ab")
        assert render.stable_hash("a", "b") != render.stable_hash("b", "a")
