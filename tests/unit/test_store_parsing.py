"""Unit tests for what the controller's store keeps between re-plans (engine.controller.store,
engine.controller.profiles._selections): the parsed profile spec, the parsed catalog, the
catalog check, the sorted selection and the clusters read per row are reused only while
what they came from is unchanged; a changed profile, catalog entry or cluster gives the
changed answer."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import pytest

from engine import errors
from engine.controller import profiles, rollout_step, store


def cluster(name: str, rv: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "flotilla.dev/v1alpha1", "kind": "WorkloadCluster",
            "metadata": {"name": name, "namespace": "fleet", "labels": labels,
                         "resourceVersion": rv}, "spec": {}, "status": {"ready": True}}


def profile(name: str, spec: dict[str, Any], rv: str = "1") -> dict[str, Any]:
    return {"apiVersion": "flotilla.dev/v1alpha1", "kind": "ClusterProfile",
            "metadata": {"name": name, "resourceVersion": rv}, "spec": spec}


def entry(name: str, versions: tuple[str, ...], rv: str = "1") -> dict[str, Any]:
    return {"apiVersion": "flotilla.dev/v1alpha1", "kind": "CatalogService",
            "metadata": {"name": name, "resourceVersion": rv}, "spec": {
                "releaseNamespace": f"{name}-system",
                "versions": [{"version": v, "chart": {
                    "repositoryURL": f"https://charts.example/{name}", "chartName": name,
                    "chartVersion": v}} for v in versions]}}


def uses(*services: tuple[str, str]) -> dict[str, Any]:
    return {"clusterSelector": {"matchLabels": {"env": "prod"}},
            "services": [{"name": s, "version": v} for s, v in services]}


class TestProfileSpec:
    def test_same_body_is_parsed_once_a_changed_one_again(self) -> None:
        cache = store.Store()
        body = profile("p", uses(("istio", "1.0.0")))
        cache.put("ClusterProfile", body)
        first = cache.profile_spec("ClusterProfile", body)
        assert cache.profile_spec("ClusterProfile", body) is first
        edited = profile("p", uses(("istio", "1.1.0")), rv="2")
        cache.put("ClusterProfile", edited)
        assert cache.profile_spec("ClusterProfile", edited).services[0].version == "1.1.0"
        # The old body (what a reconcile started with) still gives its own spec.
        assert cache.profile_spec("ClusterProfile", body).services[0].version == "1.0.0"

    def test_an_equal_spec_in_a_new_object_is_parsed_from_that_object(self) -> None:
        cache = store.Store()
        body = profile("p", uses(("istio", "1.0.0")))
        first = cache.profile_spec("ClusterProfile", body)
        again = copy.deepcopy(body)
        assert cache.profile_spec("ClusterProfile", again) == first

    def test_a_spec_error_is_raised_every_time(self) -> None:
        cache = store.Store()
        body = profile("p", {"services": "not a list"})
        for _ in range(2):
            with pytest.raises(errors.SpecError):
                cache.profile_spec("ClusterProfile", body)


class TestCatalog:
    def test_catalog_follows_every_put_and_drop(self) -> None:
        cache = store.Store()
        cache.put("CatalogService", entry("istio", ("1.0.0",)))
        assert set(cache.catalog_specs()) == {"istio"}
        cache.put("CatalogService", entry("kserve", ("0.1.0",)))
        assert set(cache.catalog_specs()) == {"istio", "kserve"}
        cache.put("CatalogService", entry("istio", ("1.0.0", "1.1.0"), rv="2"))
        assert [v.version for v in cache.catalog_specs()["istio"].versions] == ["1.0.0", "1.1.0"]
        cache.drop("CatalogService", "", "kserve")
        assert set(cache.catalog_specs()) == {"istio"}

    def test_callers_get_a_copy(self) -> None:
        cache = store.Store()
        cache.put("CatalogService", entry("istio", ("1.0.0",)))
        cache.catalog_specs().clear()
        assert set(cache.catalog_specs()) == {"istio"}

    def test_a_broken_entry_is_left_out(self) -> None:
        cache = store.Store()
        broken = entry("istio", ("1.0.0",))
        broken["spec"]["versions"] = "nope"
        cache.put("CatalogService", broken)
        assert cache.catalog_specs() == {}


class TestCheckReleases:
    def test_a_catalog_change_is_checked_again(self) -> None:
        cache = store.Store()
        cache.put("CatalogService", entry("istio", ("1.0.0", "1.1.0")))
        body = profile("p", uses(("istio", "1.1.0")))
        cache.put("ClusterProfile", body)
        spec = cache.profile_spec("ClusterProfile", body)
        cache.check_releases("ClusterProfile", body, spec)
        cache.check_releases("ClusterProfile", body, spec)  # kept: nothing changed
        cache.put("CatalogService", entry("istio", ("1.0.0",), rv="2"))  # 1.1.0 withdrawn
        with pytest.raises(errors.FlotillaError):
            cache.check_releases("ClusterProfile", body, spec)
        cache.put("CatalogService", entry("istio", ("1.0.0", "1.1.0"), rv="3"))
        cache.check_releases("ClusterProfile", body, spec)
        cache.drop("CatalogService", "", "istio")
        with pytest.raises(errors.FlotillaError):
            cache.check_releases("ClusterProfile", body, spec)

    def test_a_profile_change_is_checked_again(self) -> None:
        cache = store.Store()
        cache.put("CatalogService", entry("istio", ("1.0.0",)))
        body = profile("p", uses(("istio", "1.0.0")))
        cache.put("ClusterProfile", body)
        cache.check_releases("ClusterProfile", body, cache.profile_spec("ClusterProfile", body))
        edited = profile("p", uses(("kserve", "0.1.0")), rv="2")
        cache.put("ClusterProfile", edited)
        with pytest.raises(errors.FlotillaError):
            cache.check_releases("ClusterProfile", edited,
                                 cache.profile_spec("ClusterProfile", edited))
        # Errors are not kept: once the catalog has it, the same spec passes.
        cache.put("CatalogService", entry("kserve", ("0.1.0",)))
        cache.check_releases("ClusterProfile", edited,
                             cache.profile_spec("ClusterProfile", edited))


def fleet() -> store.Store:
    cache = store.Store()
    for i, env in enumerate(("prod", "prod", "dev", "prod")):
        cache.put("WorkloadCluster", cluster(f"c{3 - i}", "1", {"env": env}))
    cache.put("ClusterProfile", profile("p", uses()))
    return cache


class TestSelections:
    def test_rows_are_sorted_and_follow_cluster_changes(self) -> None:
        cache = fleet()
        ctx: Any = SimpleNamespace(store=cache)
        rows = [("fleet", "c0", "Selector"), ("fleet", "c2", "Selector"),
                ("fleet", "c3", "Selector")]
        assert profiles._selections(ctx, "ClusterProfile", "", "p") == rows
        cache.put("WorkloadCluster", cluster("c1", "2", {"env": "prod"}))  # was dev
        assert profiles._selections(ctx, "ClusterProfile", "", "p") == sorted(
            [*rows, ("fleet", "c1", "Selector")])
        cache.drop("WorkloadCluster", "fleet", "c0")
        assert profiles._selections(ctx, "ClusterProfile", "", "p") == [
            ("fleet", "c1", "Selector"), ("fleet", "c2", "Selector"),
            ("fleet", "c3", "Selector")]

    def test_rows_follow_a_profile_change_and_dependents(self) -> None:
        cache = fleet()
        ctx: Any = SimpleNamespace(store=cache)
        profiles._selections(ctx, "ClusterProfile", "", "p")
        cache.put("ClusterProfile", profile("p", {"clusterSelector": {"matchLabels": {
            "env": "dev"}}}, rv="2"))
        assert profiles._selections(ctx, "ClusterProfile", "", "p") == [
            ("fleet", "c1", "Selector")]
        cache.put("ClusterProfile", profile("q", {"clusterSelector": {"matchLabels": {
            "env": "prod"}}, "dependsOn": ["p"]}))
        assert profiles._selections(ctx, "ClusterProfile", "", "p") == [
            ("fleet", "c0", "DependsOn"), ("fleet", "c1", "Selector"),
            ("fleet", "c2", "DependsOn"), ("fleet", "c3", "DependsOn")]
        cache.drop("ClusterProfile", "", "q")
        assert profiles._selections(ctx, "ClusterProfile", "", "p") == [
            ("fleet", "c1", "Selector")]

    def test_callers_cannot_edit_the_kept_rows(self) -> None:
        cache = fleet()
        ctx: Any = SimpleNamespace(store=cache)
        profiles._selections(ctx, "ClusterProfile", "", "p").clear()
        assert len(profiles._selections(ctx, "ClusterProfile", "", "p")) == 3


class TestBodies:
    def test_bodies_are_the_newest_held(self) -> None:
        cache = fleet()
        newer = cluster("c2", "5", {"env": "prod", "tier": "1"})
        cache.put("WorkloadCluster", newer)
        got = cache.bodies("WorkloadCluster", [("fleet", "c2"), ("fleet", "gone"),
                                               ("fleet", "c3")])
        assert got[0] is newer and got[1] is None
        assert got[2] is cache.get("WorkloadCluster", "fleet", "c3")


class TestClusterRows:
    def test_a_changed_cluster_is_read_as_it_is_now(self) -> None:
        cache = fleet()
        ctx: Any = SimpleNamespace(store=cache)
        key = ("ClusterProfile", "", "p")
        rows = profiles._selections(ctx, *key)
        keys, bodies = rollout_step.cluster_rows(cache, key, tuple(rows))
        assert list(keys) == [("fleet", "c0"), ("fleet", "c2"), ("fleet", "c3")]
        assert list(bodies) == [cache.get("WorkloadCluster", *k) for k in keys]
        retiered = cluster("c2", "7", {"env": "prod", "tier": "1"})  # still selected
        cache.put("WorkloadCluster", retiered)
        keys, bodies = rollout_step.cluster_rows(cache, key, tuple(
            profiles._selections(ctx, *key)))
        assert bodies[1] is retiered
        assert list(bodies) == [cache.get("WorkloadCluster", *k) for k in keys]
        cache.put("WorkloadCluster", cluster("c3", "8", {"env": "dev"}))  # leaves
        keys, bodies = rollout_step.cluster_rows(cache, key, tuple(
            profiles._selections(ctx, *key)))
        assert list(keys) == [("fleet", "c0"), ("fleet", "c2")]
        assert list(bodies) == [cache.get("WorkloadCluster", *k) for k in keys]

    def test_rows_other_than_the_selection_are_looked_up(self) -> None:
        cache = fleet()
        cache.put("ClusterProfile", profile("q", {"clusterSelector": {"matchLabels": {
            "env": "dev"}}, "dependsOn": ["p"]}))
        ctx: Any = SimpleNamespace(store=cache)
        rows = profiles._selections(ctx, "ClusterProfile", "", "p")  # c1 by DependsOn
        keys, bodies = rollout_step.cluster_rows(cache, ("ClusterProfile", "", "p"),
                                                 tuple(rows))
        assert list(keys) == [("fleet", f"c{i}") for i in range(4)]
        assert list(bodies) == [cache.get("WorkloadCluster", *k) for k in keys]
        keys, bodies = rollout_step.cluster_rows(cache, ("ClusterProfile", "", "gone"),
                                                 (("fleet", "c1", "ClusterRefs"),))
        assert list(bodies) == [cache.get("WorkloadCluster", "fleet", "c1")]
