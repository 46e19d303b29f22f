"""Unit tests for engine.select.explain: `flotilla why`, check by check, on plain data."""

from __future__ import annotations

from typing import Any

import pytest

from engine import errors, select
from engine.model import types


def _cluster(name: str = "gpu-1", ns: str = "fleet", labels: dict[str, str] | None = None,
             **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "status": status}


def _spec(**data: Any) -> types.ProfileSpec:
    return types.ProfileSpec.from_dict(data)


def _checks(explanation: select.Explanation) -> list[tuple[str, bool, str]]:
    return [(c.field, c.holds, c.detail) for c in explanation.checks]


class TestSelector:
    """Each matchLabels pair and requirement is one check naming the label the cluster has."""

    def test_every_label_holds(self) -> None:
        spec = _spec(clusterSelector={"matchLabels": {"gpu": "nvidia"}, "matchExpressions": [
            {"key": "ring", "operator": "In", "values": ["canary", "main"]}]})
        got = select.explain(spec, _cluster(labels={"gpu": "nvidia", "ring": "main"}),
                             namespace=None)
        assert got.selected and got.reason == "Selector"
        assert _checks(got) == [
            ("clusterSelector", True, "matchLabels gpu=nvidia: cluster has gpu=nvidia"),
            ("clusterSelector", True, "matchExpressions ring In (canary, main): cluster has "
                                      "ring=main")]

    def test_a_missing_and_a_different_label(self) -> None:
        spec = _spec(clusterSelector={"matchLabels": {"gpu": "nvidia", "zone": "eu"}})
        got = select.explain(spec, _cluster(labels={"gpu": "amd"}), namespace=None)
        assert not got.selected and got.reason is None
        assert _checks(got) == [
            ("clusterSelector", False, "matchLabels gpu=nvidia: cluster has gpu=amd"),
            ("clusterSelector", False, "matchLabels zone=eu: cluster has no zone")]

    def test_no_selector_selects_nothing(self) -> None:
        got = select.explain(_spec(), _cluster(labels={"gpu": "nvidia"}), namespace=None)
        assert not got.selected
        assert _checks(got) == [("clusterSelector", False, "no clusterSelector and no "
                                 "clusterSelectorCEL: selects no cluster by labels")]


class TestCEL:
    """The CEL expression's result, or why it could not be evaluated."""

    def test_true_and_false(self) -> None:
        spec = _spec(clusterSelectorCEL="cluster.status.facts.gpus > 0")
        yes = select.explain(spec, _cluster(facts={"gpus": 8}), namespace=None)
        no = select.explain(spec, _cluster(facts={"gpus": 0}), namespace=None)
        assert yes.selected and _checks(yes) == [
            ("clusterSelectorCEL", True, "cluster.status.facts.gpus > 0 is true")]
        assert not no.selected and _checks(no) == [
            ("clusterSelectorCEL", False, "cluster.status.facts.gpus > 0 is false")]

    def test_missing_fact_is_a_failed_check_with_the_reason(self) -> None:
        spec = _spec(clusterSelectorCEL="cluster.status.facts.gpus > 0")
        got = select.explain(spec, _cluster(), namespace=None)
        assert not got.selected
        (check,) = got.checks
        assert check.field == "clusterSelectorCEL" and not check.holds
        assert check.detail.startswith("cluster.status.facts.gpus > 0 cannot be evaluated: ")

    def test_selector_and_cel_must_both_hold(self) -> None:
        spec = _spec(clusterSelector={"matchLabels": {"gpu": "nvidia"}},
                     clusterSelectorCEL="cluster.status.facts.gpus > 4")
        got = select.explain(spec, _cluster(labels={"gpu": "nvidia"}, facts={"gpus": 2}),
                             namespace=None)
        assert not got.selected
        assert [c.holds for c in got.checks] == [True, False]

    def test_a_cel_that_does_not_compile_is_a_spec_error(self) -> None:
        with pytest.raises(errors.SpecError) as caught:
            select.explain(_spec(clusterSelectorCEL="cluster.("), _cluster(), namespace=None)
        assert caught.value.field == "spec.clusterSelectorCEL"


class TestRefsAndScope:
    """clusterRefs add clusters; a Profile sees only its own namespace."""

    def test_refs_select_what_labels_do_not(self) -> None:
        spec = _spec(clusterSelector={"matchLabels": {"gpu": "nvidia"}},
                     clusterRefs=[{"namespace": "fleet", "name": "gpu-1"}])
        got = select.explain(spec, _cluster(), namespace=None)
        assert got.selected and got.reason == "ClusterRefs"
        assert _checks(got)[-1] == ("clusterRefs", True, "names fleet/gpu-1")
        other = select.explain(spec, _cluster(name="cpu-1"), namespace=None)
        assert not other.selected
        assert _checks(other)[-1] == ("clusterRefs", False, "does not name fleet/cpu-1")

    def test_profile_in_another_namespace(self) -> None:
        spec = _spec(clusterSelector={"matchLabels": {"gpu": "nvidia"}})
        got = select.explain(spec, _cluster(labels={"gpu": "nvidia"}), namespace="team-a")
        assert not got.selected
        assert _checks(got) == [("namespace", False, "a Profile in team-a selects only "
                                 "clusters in team-a; this one is in fleet")]


SPECS = [
    {"clusterSelector": {"matchLabels": {"gpu": "nvidia"}}},
    {"clusterSelector": {"matchExpressions": [{"key": "gpu", "operator": "NotIn",
                                               "values": ["nvidia"]}]}},
    {"clusterSelectorCEL": "'gpu' in cluster.metadata.labels"},
    {"clusterSelector": {"matchLabels": {"gpu": "nvidia"}}, "clusterSelectorCEL": "false"},
    {"clusterRefs": [{"namespace": "fleet", "name": "b"}]},
    {"clusterSelector": {}, "clusterSelectorCEL": "true"},
    {},
]


@pytest.mark.parametrize("data", SPECS, ids=range(len(SPECS)))
@pytest.mark.parametrize("namespace", [None, "fleet", "other"])
def test_explain_agrees_with_select_clusters(data: dict[str, Any], namespace: str | None) -> None:
    """The explanation's verdict is select_clusters' decision, cluster by cluster."""
    spec = _spec(**data)
    fleet = [_cluster("a", labels={"gpu": "nvidia"}), _cluster("b", labels={"gpu": "amd"}),
             _cluster("c")]
    chosen = {s.name: s.reason for s in select.select_clusters(spec, fleet, namespace=namespace)}
    for cluster in fleet:
        got = select.explain(spec, cluster, namespace=namespace)
        assert got.reason == chosen.get(cluster["metadata"]["name"]), cluster
        assert got.selected is (cluster["metadata"]["name"] in chosen)
