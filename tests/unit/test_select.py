"""Unit tests for engine.select: label selectors, CEL, and cluster selection."""

from __future__ import annotations

import sys
import threading
from typing import Any

import pytest

from engine import errors, select
from engine.model import types


def cluster(
    name: str,
    namespace: str = "fleet",
    *,
    labels: dict[str, str] | None = None,
    facts: dict[str, Any] | None = None,
    paused: bool = False,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "WorkloadCluster",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {"kubeconfigSecretRef": {"name": f"{name}-kubeconfig"}, "paused": paused},
        "status": {},
    }
    if facts is not None:
        body["status"]["facts"] = facts
    return body


def selector(data: dict[str, Any]) -> types.LabelSelector:
    return types.LabelSelector.from_dict(data, field="spec.clusterSelector")


def names(selections: list[select.Selection]) -> list[str]:
    return [f"{s.namespace}/{s.name}" for s in selections]


FLEET = [
    cluster("gpu-eu-1", labels={"gpu": "nvidia", "region": "eu"}, facts={"gpuTotal": 8}),
    cluster("gpu-us-1", labels={"gpu": "nvidia", "region": "us"}, facts={"gpuTotal": 2}),
    cluster("cpu-eu-1", labels={"region": "eu"}, facts={"gpuTotal": 0}),
    cluster("amd-eu-1", labels={"gpu": "amd", "region": "eu"}),
    cluster("gpu-eu-9", "tenant-a", labels={"gpu": "nvidia", "region": "eu"}, paused=True),
]


class TestLabelSelector:
    """Label selectors follow Kubernetes semantics, but empty selects nothing."""

    LABELS = {"gpu": "nvidia", "region": "eu"}

    @pytest.mark.parametrize(
        ("data", "expected"),
        [
            ({"matchLabels": {"gpu": "nvidia"}}, True),
            ({"matchLabels": {"gpu": "amd"}}, False),
            ({"matchLabels": {"gpu": "nvidia", "region": "us"}}, False),
            (
                {"matchExpressions": [{"key": "region", "operator": "In", "values": ["eu", "us"]}]},
                True,
            ),
            ({"matchExpressions": [{"key": "region", "operator": "In", "values": ["us"]}]}, False),
            ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}, False),
            (
                {"matchExpressions": [{"key": "region", "operator": "NotIn", "values": ["us"]}]},
                True,
            ),
            (
                {"matchExpressions": [{"key": "region", "operator": "NotIn", "values": ["eu"]}]},
                False,
            ),
            ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, True),
            ({"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}, True),
            ({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, False),
            ({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, True),
            ({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}, False),
            (
                {
                    "matchLabels": {"gpu": "nvidia"},
                    "matchExpressions": [{"key": "region", "operator": "In", "values": ["us"]}],
                },
                False,
            ),
        ],
    )
    def test_semantics(self, data: dict[str, Any], expected: bool) -> None:
        assert select.label_selector_matches(selector(data), self.LABELS) is expected

    @pytest.mark.parametrize("value", [None, types.LabelSelector()])
    def test_empty_or_absent_matches_nothing(self, value: types.LabelSelector | None) -> None:
        assert not select.label_selector_matches(value, self.LABELS)
        assert not select.label_selector_matches(value, {})

    def test_no_labels(self) -> None:
        assert not select.label_selector_matches(selector({"matchLabels": {"a": "b"}}), None)


class TestCel:
    """CEL programs compile once, evaluate over JSON and report errors as data."""

    def test_compile_is_cached(self) -> None:
        first = select.compile_cel("cluster.metadata.name == 'x'", field="f")
        assert select.compile_cel("cluster.metadata.name == 'x'", field="f") is first

    @pytest.mark.parametrize("expression", ["cluster.metadata.", "1 +", "a b", ")"])
    def test_compile_error(self, expression: str) -> None:
        with pytest.raises(errors.SpecError) as caught:
            select.compile_cel(expression, field="spec.clusterSelectorCEL")
        assert caught.value.field == "spec.clusterSelectorCEL"
        assert caught.value.reason == "InvalidCEL"
        assert "syntax error" in caught.value.message

    @pytest.mark.parametrize(
        ("expression", "expected"),
        [
            ("cluster.status.facts.gpuTotal >= 4", True),
            ("cluster.status.facts.gpuTotal == 8 && cluster.metadata.labels.gpu == 'nvidia'", True),
            (
                "'region' in cluster.metadata.labels && cluster.metadata.labels.region == 'us'",
                False,
            ),
            ("has(cluster.status.facts.gpus) && cluster.status.facts.gpus.size() > 0", False),
            ("!has(cluster.status.facts.gpus) || cluster.status.facts.gpus.size() > 0", True),
            (
                "has(cluster.metadata.labels.gpu) ? cluster.metadata.labels.gpu == 'nvidia'"
                " : false",
                True,
            ),
            ("cluster.metadata.name.startsWith('gpu-')", True),
        ],
    )
    def test_evaluate(self, expression: str, expected: bool) -> None:
        program = select.compile_cel(expression, field="f")
        assert program.evaluate(variable="cluster", value=FLEET[0]) is expected

    @pytest.mark.parametrize(
        ("expression", "message"),
        [
            ("cluster.status.missing == 1", "missing"),
            ("cluster.status.facts.gpuTotal > 2.5", "no such overload"),
            ("cluster.status.facts.gpuTotal", "not a bool"),
            ("nosuchfunction(1)", "nosuchfunction"),
        ],
    )
    def test_evaluation_errors(self, expression: str, message: str) -> None:
        program = select.compile_cel(expression, field="f")
        with pytest.raises(select.CelEvaluationError, match=message):
            program.evaluate(variable="cluster", value=FLEET[0])
        assert not program.matches(variable="cluster", value=FLEET[0])

    def test_concurrent_evaluations_do_not_mix_inputs(self) -> None:
        program = select.compile_cel("cluster.metadata.name == 'gpu-eu-1'", field="f")
        wrong: list[str] = []

        def work(body: dict[str, Any]) -> None:
            expected = body["metadata"]["name"] == "gpu-eu-1"
            for _ in range(200):
                if program.evaluate(variable="cluster", value=body) is not expected:
                    wrong.append(body["metadata"]["name"])

        threads = [threading.Thread(target=work, args=(body,)) for body in FLEET[:4]]
        interval = sys.getswitchinterval()
        # Switch threads as often as possible, so a race would show up.
        sys.setswitchinterval(1e-6)
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            sys.setswitchinterval(interval)
        assert wrong == []


class TestSelectClusters:
    """select_clusters combines selector, CEL and refs, scoped by namespace."""

    def spec(self, **data: Any) -> types.ProfileSpec:
        return types.ProfileSpec.from_dict(data)

    def test_nothing_set_selects_nothing(self) -> None:
        assert select.select_clusters(self.spec(), FLEET, namespace=None) == []

    def test_empty_selector_selects_nothing(self) -> None:
        assert select.select_clusters(self.spec(clusterSelector={}), FLEET, namespace=None) == []

    def test_selector(self) -> None:
        result = select.select_clusters(
            self.spec(clusterSelector={"matchLabels": {"gpu": "nvidia"}}), FLEET, namespace=None
        )
        assert names(result) == ["fleet/gpu-eu-1", "fleet/gpu-us-1", "tenant-a/gpu-eu-9"]
        assert {s.reason for s in result} == {"Selector"}

    def test_paused_clusters_are_selected(self) -> None:
        result = select.select_clusters(
            self.spec(clusterSelector={"matchLabels": {"gpu": "nvidia"}}),
            FLEET,
            namespace="tenant-a",
        )
        assert names(result) == ["tenant-a/gpu-eu-9"]

    def test_cel_alone(self) -> None:
        result = select.select_clusters(
            self.spec(clusterSelectorCEL="cluster.status.facts.gpuTotal > 0"), FLEET, namespace=None
        )
        # amd-eu-1 and gpu-eu-9 have no facts: a runtime error is "no match".
        assert names(result) == ["fleet/gpu-eu-1", "fleet/gpu-us-1"]

    def test_selector_and_cel_must_both_hold(self) -> None:
        spec = self.spec(
            clusterSelector={"matchLabels": {"region": "eu"}},
            clusterSelectorCEL="cluster.status.facts.gpuTotal > 0",
        )
        assert names(select.select_clusters(spec, FLEET, namespace=None)) == ["fleet/gpu-eu-1"]

    def test_explicit_true_takes_the_fleet(self) -> None:
        spec = self.spec(clusterSelector={}, clusterSelectorCEL="true")
        assert len(select.select_clusters(spec, FLEET, namespace=None)) == len(FLEET)

    def test_refs_are_added(self) -> None:
        spec = self.spec(
            clusterSelector={"matchLabels": {"gpu": "amd"}},
            clusterRefs=[
                {"namespace": "fleet", "name": "cpu-eu-1"},
                {"namespace": "fleet", "name": "amd-eu-1"},
                {"namespace": "fleet", "name": "not-registered"},
            ],
        )
        result = select.select_clusters(spec, FLEET, namespace=None)
        assert [(s.name, s.reason) for s in result] == [
            ("amd-eu-1", "Selector"),
            ("cpu-eu-1", "ClusterRefs"),
        ]

    def test_profile_only_sees_its_namespace(self) -> None:
        spec = self.spec(
            clusterSelector={"matchLabels": {"region": "eu"}},
            clusterRefs=[{"namespace": "fleet", "name": "gpu-us-1"}, {"name": "gpu-eu-9"}],
        )
        result = select.select_clusters(spec, FLEET, namespace="tenant-a")
        assert [(s.namespace, s.name, s.reason) for s in result] == [
            ("tenant-a", "gpu-eu-9", "Selector")
        ]

    def test_profile_ref_without_namespace_means_its_own(self) -> None:
        spec = self.spec(clusterRefs=[{"name": "gpu-eu-9"}])
        result = select.select_clusters(spec, FLEET, namespace="tenant-a")
        assert [(s.name, s.reason) for s in result] == [("gpu-eu-9", "ClusterRefs")]

    def test_bad_cel_is_a_spec_error_even_without_clusters(self) -> None:
        with pytest.raises(errors.SpecError) as caught:
            select.select_clusters(self.spec(clusterSelectorCEL="cluster.("), [], namespace=None)
        assert caught.value.field == "spec.clusterSelectorCEL"

    def test_sorted_and_deduplicated(self) -> None:
        shuffled = [FLEET[4], FLEET[1], FLEET[0], FLEET[0]]
        spec = self.spec(clusterSelectorCEL="true")
        assert names(select.select_clusters(spec, shuffled, namespace=None)) == [
            "fleet/gpu-eu-1",
            "fleet/gpu-us-1",
            "tenant-a/gpu-eu-9",
        ]
