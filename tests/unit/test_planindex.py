"""Unit tests for engine.planindex: incremental selections equal select_clusters' answers,
and a cluster change asks only the profiles that could select that cluster."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import errors, planindex, select
from engine.controller import store
from engine.model import types

FAST = settings(max_examples=150, deadline=None, database=None)
NAMESPACES = ("fleet", "tenant-a")
LABELS = {"env": ("prod", "dev"), "region": ("eu", "us", "ap"), "gpu": ("a100", "h100")}
CEL = ("cluster.status.facts.gpuTotal >= 4",  # fails (no match) where facts are missing
       "cluster.metadata.labels.env == 'prod'",  # fails where env is missing
       "has(cluster.metadata.labels.region) && cluster.status.ready",
       "true")


def cluster(name: str, namespace: str = "fleet", labels: dict[str, str] | None = None,
            gpus: int | None = None, ready: bool = True) -> dict[str, Any]:
    status: dict[str, Any] = {"ready": ready}
    if gpus is not None:
        status["facts"] = {"nodes": 3, "gpuTotal": gpus}
    return {"apiVersion": "flotilla.dev/v1alpha1", "kind": "WorkloadCluster",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {},
                         "resourceVersion": "1"},
            "spec": {"kubeconfigSecretRef": {"name": f"{name}-kubeconfig"}}, "status": status}


def profile(kind: str, name: str, spec: dict[str, Any], namespace: str = "") -> dict[str, Any]:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "flotilla.dev/v1alpha1", "kind": kind, "metadata": meta, "spec": spec}


labels_st = st.dictionaries(st.sampled_from(sorted(LABELS)), st.sampled_from(
    ("prod", "dev", "eu", "us", "ap", "a100", "h100")), max_size=3)
cluster_st = st.builds(cluster, name=st.sampled_from([f"c{i}" for i in range(8)]),
                       namespace=st.sampled_from(NAMESPACES), labels=labels_st,
                       gpus=st.none() | st.integers(0, 8), ready=st.booleans())
expression_st = st.one_of(
    st.builds(lambda k, vs: {"key": k, "operator": "In", "values": vs},
              st.sampled_from(sorted(LABELS)), st.lists(st.sampled_from(
                  ("prod", "eu", "us", "a100")), min_size=1, max_size=2, unique=True)),
    st.builds(lambda k, vs: {"key": k, "operator": "NotIn", "values": vs},
              st.sampled_from(sorted(LABELS)), st.lists(st.sampled_from(
                  ("dev", "ap", "h100")), min_size=1, max_size=2, unique=True)),
    st.builds(lambda k, op: {"key": k, "operator": op}, st.sampled_from(sorted(LABELS)),
              st.sampled_from(("Exists", "DoesNotExist"))))


@st.composite
def spec_st(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if draw(st.booleans()):
        sel: dict[str, Any] = {"matchLabels": draw(labels_st)}
        if draw(st.booleans()):
            sel["matchExpressions"] = draw(st.lists(expression_st, max_size=2))
        spec["clusterSelector"] = sel
    if draw(st.integers(0, 3)) == 0:
        spec["clusterSelectorCEL"] = draw(st.sampled_from(CEL))
    if draw(st.integers(0, 3)) == 0:
        spec["clusterRefs"] = [{"name": f"c{i}", **({"namespace": ns} if ns else {})}
                               for i, ns in draw(st.lists(st.tuples(
                                   st.integers(0, 7), st.sampled_from(("", *NAMESPACES))),
                                   max_size=2))]
    return spec


profile_st = st.builds(
    lambda kind, i, spec, ns: profile(kind, f"p{i}", spec, ns if kind == "Profile" else ""),
    st.sampled_from(("ClusterProfile", "Profile")), st.integers(0, 5), spec_st(),
    st.sampled_from(NAMESPACES))
op_st = st.one_of(
    st.tuples(st.just("cluster"), cluster_st),
    st.tuples(st.just("profile"), profile_st),
    st.tuples(st.just("drop-cluster"), st.sampled_from(NAMESPACES),
              st.sampled_from([f"c{i}" for i in range(8)])),
    st.tuples(st.just("drop-profile"), st.sampled_from(("ClusterProfile", "Profile")),
              st.sampled_from(("", *NAMESPACES)), st.sampled_from([f"p{i}" for i in range(6)])))


def recompute(body: dict[str, Any], clusters: list[dict[str, Any]]) -> dict[Any, str]:
    """The reference answer: select_clusters over the whole fleet."""
    meta = body["metadata"]
    scope = meta.get("namespace") if body["kind"] == "Profile" else None
    spec = types.ProfileSpec.from_dict(body["spec"])
    return {(s.namespace, s.name): s.reason for s in
            select.select_clusters(spec, clusters, namespace=scope)}


class TestAgreesWithFullRecompute:
    @FAST
    @given(st.lists(op_st, max_size=30))
    def test_every_step(self, ops: list[tuple[Any, ...]]) -> None:
        index = planindex.PlanIndex()
        clusters: dict[tuple[str, str], dict[str, Any]] = {}
        profiles: dict[tuple[str, str, str], dict[str, Any]] = {}
        before: dict[tuple[str, str, str], dict[Any, str]] = {}
        for op in ops:
            if op[0] == "cluster":
                body = op[1]
                clusters[(body["metadata"]["namespace"], body["metadata"]["name"])] = body
                update = index.cluster_changed(copy.deepcopy(body))
            elif op[0] == "profile":
                body = op[1]
                meta = body["metadata"]
                pkey = (body["kind"], meta.get("namespace", ""), meta["name"])
                profiles[pkey] = body
                update = index.profile_changed(body["kind"], body)
            elif op[0] == "drop-cluster":
                clusters.pop((op[1], op[2]), None)
                update = index.cluster_removed(op[1], op[2])
            else:
                profiles.pop((op[1], op[2], op[3]), None)
                update = index.profile_removed(op[1], op[2], op[3])
            now = {}
            for pkey, body in profiles.items():
                now[pkey] = recompute(body, list(clusters.values()))
                assert index.selection(pkey) == now[pkey], (op, pkey)
                # The kept sorted rows are never stale: asked at every step, they follow
                # each cluster and profile change.
                assert index.sorted_selection(pkey) == tuple(sorted(
                    (ns, n, str(r)) for (ns, n), r in now[pkey].items())), (op, pkey)
                rows = index.sorted_rows(pkey)  # and so are the bodies kept beside them
                assert rows.keys == tuple((ns, n) for ns, n, _ in rows.rows)
                assert rows.bodies == [clusters[key] for key in rows.keys], (op, pkey)
            # Whatever changed is reported as changed (it may report more, never less).
            moved = {p for p in now.keys() | before.keys() if now.get(p) != before.get(p)}
            assert moved <= update.changed <= update.touched
            before = now
            for ckey in clusters:
                assert index.selecting(*ckey) == {p for p, sel in now.items() if ckey in sel}


def team_fleet(size: int, teams: int) -> tuple[planindex.PlanIndex, list[dict[str, Any]]]:
    index = planindex.PlanIndex()
    bodies = [cluster(f"c{i}", labels={"team": f"t{i % teams}", "env": "prod"}, gpus=i % 8)
              for i in range(size)]
    for body in bodies:
        index.cluster_changed(body)
    for t in range(teams):
        index.profile_changed("ClusterProfile", profile(
            "ClusterProfile", f"team-{t}", {"clusterSelector": {"matchLabels": {
                "team": f"t{t}", "env": "prod"}}}))
    return index, bodies


class TestWorkProportionalToCandidates:
    def test_label_change_asks_the_old_and_the_new_team_only(self) -> None:
        index, bodies = team_fleet(200, 50)
        moved = copy.deepcopy(bodies[1])  # team t1
        moved["metadata"]["labels"]["team"] = "t2"
        start = index.evaluations
        update = index.cluster_changed(moved)
        assert index.evaluations - start == 2
        assert update.changed == {("ClusterProfile", "", "team-1"),
                                  ("ClusterProfile", "", "team-2")}
        assert ("fleet", "c1") in index.selection(("ClusterProfile", "", "team-2"))
        assert ("fleet", "c1") not in index.selection(("ClusterProfile", "", "team-1"))

    def test_profile_change_asks_only_clusters_with_its_rarest_label(self) -> None:
        index, _ = team_fleet(200, 50)  # env=prod is on all 200, team=t3 on 4
        start = index.evaluations
        index.profile_changed("ClusterProfile", profile("ClusterProfile", "team-3", {
            "clusterSelector": {"matchLabels": {"env": "prod", "team": "t3"}}}))
        assert index.evaluations - start == 4

    def test_status_change_asks_only_cel_profiles(self) -> None:
        index, bodies = team_fleet(200, 50)
        index.profile_changed("ClusterProfile", profile("ClusterProfile", "big-gpu", {
            "clusterSelectorCEL": "cluster.status.facts.gpuTotal >= 4"}))
        grown = copy.deepcopy(bodies[1])
        grown["status"]["facts"]["gpuTotal"] = 7
        start = index.evaluations
        update = index.cluster_changed(grown)
        assert index.evaluations - start == 1
        assert update.changed == update.touched == {("ClusterProfile", "", "big-gpu")}

    def test_readiness_touches_every_profile_selecting_the_cluster(self) -> None:
        index, bodies = team_fleet(200, 50)
        down = copy.deepcopy(bodies[1])
        down["status"]["ready"] = False
        update = index.cluster_changed(down)
        # A rollout reads readiness ("reachable"); the selection is the same.
        assert update == planindex.Update(changed=frozenset(), touched=frozenset(
            {("ClusterProfile", "", "team-1")}))

    def test_labels_touch_profiles_whose_rollout_or_dependents_read_them(self) -> None:
        index, bodies = team_fleet(200, 50)
        staged = {"clusterSelector": {"matchLabels": {"team": "t1"}}, "rollout": {"stages": [
            {"name": "canary", "clusterSelector": {"matchLabels": {"tier": "1"}}},
            {"name": "rest"}]}}
        index.profile_changed("ClusterProfile", profile("ClusterProfile", "staged", staged))
        index.profile_changed("ClusterProfile", profile("ClusterProfile", "follower", {
            "clusterSelector": {"matchLabels": {"env": "prod", "team": "t1"}},
            "dependsOn": ["staged"]}))
        retiered = copy.deepcopy(bodies[1])
        retiered["metadata"]["labels"]["tier"] = "1"
        update = index.cluster_changed(retiered)
        # team-1 ignores labels outside its selector; "staged" picks stages by them, and
        # "follower" depends on "staged", which goes wherever "follower" goes.
        assert update.changed == frozenset()
        assert update.touched == {("ClusterProfile", "", "staged"),
                                  ("ClusterProfile", "", "follower")}

    def test_a_new_resource_version_alone_touches_nobody(self) -> None:
        index, bodies = team_fleet(20, 5)
        again = copy.deepcopy(bodies[3])
        again["metadata"]["resourceVersion"] = "2"
        start = index.evaluations
        assert index.cluster_changed(again) == planindex.Update()
        assert index.evaluations == start


class TestErrorsAndStore:
    def test_cel_that_does_not_compile_is_raised_for_its_profile_only(self) -> None:
        index, _ = team_fleet(10, 2)
        key = ("ClusterProfile", "", "bad")
        index.profile_changed("ClusterProfile", profile("ClusterProfile", "bad", {
            "clusterSelectorCEL": "cluster.metadata.labels.env =="}))
        with pytest.raises(errors.SpecError) as raised:
            index.selection(key)
        assert raised.value.field == "spec.clusterSelectorCEL"
        assert len(index.selection(("ClusterProfile", "", "team-0"))) == 5

    def test_store_collects_the_profiles_a_cluster_change_touched(self) -> None:
        cache = store.Store()
        cache.put("WorkloadCluster", cluster("a", labels={"team": "t1"}))
        cache.put("ClusterProfile", profile("ClusterProfile", "one", {
            "clusterSelector": {"matchLabels": {"team": "t1"}}}))
        cache.put("ClusterProfile", profile("ClusterProfile", "two", {
            "clusterSelector": {"matchLabels": {"team": "t2"}}}))
        cache.take_woken()
        relabelled = cluster("a", labels={"team": "t2"})
        relabelled["metadata"]["resourceVersion"] = "2"
        cache.put("WorkloadCluster", relabelled)
        assert cache.take_woken() == {("ClusterProfile", "", "one"),
                                      ("ClusterProfile", "", "two")}
        assert cache.take_woken() == set()
        cache.drop("WorkloadCluster", "fleet", "a")
        assert cache.take_woken() == {("ClusterProfile", "", "two")}
        assert cache.plan.selection(("ClusterProfile", "", "two")) == {}

    def test_store_finds_a_profiles_summaries_without_a_scan(self) -> None:
        cache = store.Store()

        def summary(name: str, profile_name: str, rv: str = "1") -> dict[str, Any]:
            return {"kind": "ClusterSummary", "metadata": {
                "name": name, "namespace": "fleet", "resourceVersion": rv},
                "spec": {"profileRef": {"kind": "ClusterProfile", "namespace": "",
                                        "name": profile_name}}}

        for name, owner in (("s3", "a"), ("s1", "a"), ("s2", "b")):
            cache.put("ClusterSummary", summary(name, owner))
        assert [s["metadata"]["name"] for s in cache.summaries_of("ClusterProfile", "", "a")] \
            == ["s1", "s3"]
        cache.put("ClusterSummary", summary("s3", "b", rv="2"))  # re-owned (never in practice)
        cache.drop("ClusterSummary", "fleet", "s2")
        assert [s["metadata"]["name"] for s in cache.summaries_of("ClusterProfile", "", "a")] \
            == ["s1"]
        assert [s["metadata"]["name"] for s in cache.summaries_of("ClusterProfile", "", "b")] \
            == ["s3"]
        assert cache.summaries_of("Profile", "", "a") == []
