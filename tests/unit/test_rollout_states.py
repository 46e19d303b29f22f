"""Unit tests for engine.controller.rollout_states: cluster states, and a cache never stale.

A kept state is reused only for the very bodies (or the same resourceVersions)
and failed revision it was built from; any new version of the cluster or its
summary gives a new state, and so a new decision.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.controller import rollout_states
from engine.rollout import decide
from engine.rollout.policy import ClusterState, RolloutPolicy, StagePolicy

NS = "fleet"


def cluster(name: str, version: int, *, tier: str = "2", ready: bool = True) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": NS, "resourceVersion": str(version),
                         "labels": {"tier": tier}},
            "status": {"ready": ready}}


def summary(name: str, version: int, *, revision: int = 1, healthy: bool = True,
            phase: str = "Provisioned") -> dict[str, Any]:
    return {"metadata": {"name": f"p-{name}", "namespace": NS,
                         "resourceVersion": str(version)},
            "spec": {"revision": revision, "assignedAt": "2026-12-01T10:00:00Z"},
            "status": {"phase": phase, "revision": revision, "healthy": healthy,
                       "healthySince": "2026-12-01T10:01:00Z"}}


class Fleet:
    """Three clusters and their summaries, as the store would hold them."""

    def __init__(self) -> None:
        self.clusters = {n: cluster(n, 10 + i) for i, n in enumerate(("a", "b", "c"))}
        self.summaries = {n: summary(n, 20 + i) for i, n in enumerate(("a", "b", "c"))}

    def states(self, cache: rollout_states.StateCache, owner: str = "p",
               failed: dict[str, int] | None = None, order: list[str] | None = None,
               ) -> list[ClusterState]:
        names = order or sorted(self.clusters)
        return cache.states(owner, [(NS, n) for n in names],
                            [self.summaries.get(n) for n in names],
                            [self.clusters.get(n) for n in names], failed or {})


# Canary: tier 1 first, one at a time; a re-plan towards revision 2 from 1.
POLICY = RolloutPolicy(max_update=1, stages=(
    StagePolicy(name="canary", selector_labels={"tier": "1"}),))


def plan(cache: rollout_states.StateCache, fleet: Fleet, failed: dict[str, int] | None = None
         ) -> decide.Decision:
    states = fleet.states(cache, "profile", failed)
    return decide.decide(POLICY, revision=2, last_good=1, clusters=states, now=1e10)


def test_unchanged_rows_reuse_their_states() -> None:
    cache, fleet = rollout_states.StateCache(), Fleet()
    first = fleet.states(cache)
    assert cache.built == 3
    again = fleet.states(cache)
    assert cache.built == 3
    assert all(x is y for x, y in zip(first, again, strict=True))


def test_a_relabelled_cluster_changes_the_decision() -> None:
    cache, fleet = rollout_states.StateCache(), Fleet()
    assert plan(cache, fleet).moves == {f"{NS}/a": 2}  # no canary: the first in key order
    fleet.clusters["c"] = cluster("c", 99, tier="1")  # a new version: now the canary
    decision = plan(cache, fleet)
    assert decision.moves == {f"{NS}/c": 2}
    assert decision.stages[0].clusters == (f"{NS}/c",)


def test_a_cluster_turning_unready_changes_the_decision() -> None:
    cache, fleet = rollout_states.StateCache(), Fleet()
    plan(cache, fleet)
    fleet.clusters["a"] = cluster("a", 98, ready=False)
    assert plan(cache, fleet).moves == {f"{NS}/b": 2}  # reachable clusters go first


def test_a_new_summary_version_changes_the_state() -> None:
    cache, fleet = rollout_states.StateCache(), Fleet()
    plan(cache, fleet)
    fleet.summaries["a"] = summary("a", 97, revision=2)  # a now runs revision 2, healthy
    decision = plan(cache, fleet)
    assert decision.moves == {f"{NS}/b": 2}
    assert decision.stages[-1].done == 1


def test_the_same_resource_version_in_a_new_body_is_reused() -> None:
    cache, fleet = rollout_states.StateCache(), Fleet()
    first = fleet.states(cache)
    fleet.clusters["a"] = cluster("a", 10)  # a re-list: a copy of the same version
    assert fleet.states(cache)[0] is first[0]
    assert cache.built == 3


def test_a_failed_revision_is_part_of_the_key() -> None:
    cache, fleet = rollout_states.StateCache(), Fleet()
    plan(cache, fleet)
    decision = plan(cache, fleet, failed={f"{NS}/a": 2})
    assert decision.failed == {f"{NS}/a": "failed at revision 2 earlier"}
    assert plan(cache, fleet).failed == {}


def test_bodies_without_a_resource_version_are_never_reused() -> None:
    cache, fleet = rollout_states.StateCache(), Fleet()
    for body in fleet.clusters.values():
        del body["metadata"]["resourceVersion"]
    fleet.states(cache)
    fleet.clusters["b"]["metadata"]["labels"]["tier"] = "1"  # edited in place, as a test might
    decision = plan(cache, fleet)
    assert cache.built == 6
    assert decision.moves == {f"{NS}/b": 2}


def test_missing_summaries_and_clusters_and_profiles_apart() -> None:
    cache, fleet = rollout_states.StateCache(profiles=1), Fleet()
    del fleet.summaries["a"]
    states = fleet.states(cache)
    assert (states[0].current_revision, states[0].target_revision) == (None, None)
    fleet.summaries["a"] = summary("a", 30)
    assert fleet.states(cache)[0].current_revision == 1
    fleet.states(cache, "q")  # evicts p: one profile kept
    built = cache.built
    fleet.states(cache)
    assert cache.built == built + 3


def test_a_new_order_or_a_new_cluster_rebuilds_only_what_changed() -> None:
    cache, fleet = rollout_states.StateCache(), Fleet()
    first = fleet.states(cache)
    backwards = fleet.states(cache, order=["c", "b", "a"])
    assert [s.key for s in backwards] == [f"{NS}/c", f"{NS}/b", f"{NS}/a"]
    assert backwards[0] is first[2] and cache.built == 3
    fleet.clusters["d"], fleet.summaries["d"] = cluster("d", 40, tier="1"), summary("d", 41)
    fleet.clusters["a"] = cluster("a", 42, tier="1")
    states = fleet.states(cache)
    assert cache.built == 5
    assert [s.labels["tier"] for s in states] == ["1", "2", "2", "1"]


def test_rows_must_line_up() -> None:
    with pytest.raises(ValueError, match="as long"):
        rollout_states.StateCache().states("p", [(NS, "a")], [], [], {})
