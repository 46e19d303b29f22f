"""Unit tests for engine.inventory: desired vs recorded, ownership, summary names."""

from __future__ import annotations

import re
from typing import Any

import pytest

from engine import catalog, errors, inventory


def manifest(kind: str, name: str, *, namespace: str = "apps", data: str = "x") -> dict[str, Any]:
    api = "apps/v1" if kind == "Deployment" else "v1"
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "data": {"v": data},
    }


def release(name: str = "kps", version: str = "65.1.0") -> catalog.ReleasePlan:
    return catalog.ReleasePlan(
        name=name,
        release_name=name,
        namespace="monitoring",
        repository_url="https://charts.example",
        chart_name=name,
        chart_version=version,
        values={},
        depends_on=(),
        health_checks=(),
        source="helmChart",
        field="spec.helmCharts[0]",
    )


def recorded(*items: inventory.DesiredItem) -> list[inventory.InventoryEntry]:
    return [inventory.InventoryEntry(key=item.key, hash=item.hash) for item in items]


class TestKeys:
    """Keys identify objects by group/version/kind/namespace/name and releases by name."""

    @pytest.mark.parametrize(
        ("obj", "key"),
        [
            (manifest("Deployment", "web"), ("apps", "v1", "Deployment", "apps", "web")),
            (manifest("ConfigMap", "cm"), ("", "v1", "ConfigMap", "apps", "cm")),
            (
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gpu"}},
                ("", "v1", "Namespace", "", "gpu"),
            ),
        ],
    )
    def test_object_key(self, obj: dict[str, Any], key: inventory.Key) -> None:
        assert inventory.object_key(obj) == key
        assert inventory.DesiredItem.for_object(obj).key == key

    def test_release_item(self) -> None:
        item = inventory.DesiredItem.for_release(release(), values={"a": 1})
        assert item.key == ("helm", "monitoring", "kps") and item.is_release
        assert item.hash != inventory.DesiredItem.for_release(release(), values={"a": 2}).hash
        assert (
            item.hash
            != inventory.DesiredItem.for_release(release(version="66.0.0"), values={"a": 1}).hash
        )

    @pytest.mark.parametrize(
        "entry",
        [
            inventory.InventoryEntry(key=("apps", "v1", "Deployment", "apps", "web"), hash="h1"),
            inventory.InventoryEntry(key=("", "v1", "Namespace", "", "gpu"), hash="h2"),
            inventory.InventoryEntry(key=("helm", "monitoring", "kps"), hash="h3"),
        ],
    )
    def test_inventory_round_trip(self, entry: inventory.InventoryEntry) -> None:
        row = entry.to_dict()
        assert set(row) == {"group", "version", "kind", "namespace", "name", "hash"}
        assert inventory.InventoryEntry.from_dict(row) == entry


class TestPlan:
    """plan() sorts desired items into apply/unchanged and the rest into delete/orphan."""

    WEB = inventory.DesiredItem.for_object(manifest("Deployment", "web"))
    CM = inventory.DesiredItem.for_object(manifest("ConfigMap", "cm"))
    OLD = inventory.DesiredItem.for_object(manifest("ConfigMap", "old"))
    KPS = inventory.DesiredItem.for_release(release(), values={})

    def test_first_deploy_applies_everything_in_order(self) -> None:
        result = inventory.changes([self.KPS, self.WEB, self.CM], [], withdraw=True)
        assert result.apply == [self.KPS, self.WEB, self.CM]
        assert result.unchanged == [] and result.delete == [] and result.changed

    def test_same_hash_is_unchanged(self) -> None:
        result = inventory.changes([self.WEB, self.CM], recorded(self.WEB, self.CM), withdraw=True)
        assert result.apply == [] and result.unchanged == [self.WEB, self.CM]
        assert not result.changed

    def test_changed_hash_is_applied(self) -> None:
        changed = inventory.DesiredItem.for_object(manifest("ConfigMap", "cm", data="y"))
        result = inventory.changes([self.WEB, changed], recorded(self.WEB, self.CM), withdraw=True)
        assert result.apply == [changed] and result.unchanged == [self.WEB]

    @pytest.mark.parametrize("withdraw", [True, False])
    def test_gone_items(self, withdraw: bool) -> None:
        result = inventory.changes([self.WEB], recorded(self.KPS, self.OLD, self.WEB),
                                   withdraw=withdraw)
        gone = [inventory.InventoryEntry(key=i.key, hash=i.hash) for i in (self.OLD, self.KPS)]
        # Reverse recorded order: what was deployed last goes first.
        assert (result.delete, result.orphan) == ((gone, []) if withdraw else ([], gone))
        assert result.changed is withdraw

    def test_duplicate_desired_objects(self) -> None:
        twin = inventory.DesiredItem.for_object(manifest("ConfigMap", "cm", data="other"))
        with pytest.raises(errors.SpecError) as caught:
            inventory.changes([self.CM, twin], [], withdraw=True)
        assert caught.value.reason == "DuplicateObject"
        assert "ConfigMap apps/cm" in caught.value.message


class TestOwnership:
    """Lower tier takes over; on a tie the first owner keeps the object."""

    @pytest.mark.parametrize(
        ("owner", "tier", "my_tier", "expected"),
        [
            (None, None, 100, inventory.Ownership.TAKE),
            ("", None, 100, inventory.Ownership.TAKE),
            ("ClusterProfile//me", 100, 500, inventory.Ownership.TAKE),
            ("ClusterProfile//other", 100, 50, inventory.Ownership.TAKE_OVER),
            ("ClusterProfile//other", 100, 100, inventory.Ownership.CONFLICT),
            ("ClusterProfile//other", 50, 100, inventory.Ownership.CONFLICT),
            ("ClusterProfile//other", None, 99, inventory.Ownership.TAKE_OVER),
            ("ClusterProfile//other", None, 100, inventory.Ownership.CONFLICT),
        ],
    )
    def test_decide(
        self, owner: str | None, tier: int | None, my_tier: int, expected: inventory.Ownership
    ) -> None:
        decision = inventory.decide_ownership(
            current_owner=owner, current_tier=tier, me="ClusterProfile//me", my_tier=my_tier
        )
        assert decision is expected


class TestSummaryName:
    """Summary names are DNS-1123 labels, hashed when cut or sanitised."""

    LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

    @pytest.mark.parametrize(
        ("kind", "profile", "cluster", "expected"),
        [
            ("ClusterProfile", "gpu", "gpu-eu-1", "cp-gpu-gpu-eu-1"),
            ("Profile", "team-a", "c1", "p-team-a-c1"),
        ],
    )
    def test_plain(self, kind: str, profile: str, cluster: str, expected: str) -> None:
        assert inventory.summary_name(kind, profile, cluster) == expected

    @pytest.mark.parametrize(
        ("profile", "cluster"),
        [
            ("p" * 40, "c" * 40),
            ("gpu.operator", "cluster-1"),
            ("GPU", "cluster-1"),
            ("a" * 250, "b" * 250),
            ("x", "y" * 55 + "-"),
        ],
    )
    def test_long_or_odd_names(self, profile: str, cluster: str) -> None:
        name = inventory.summary_name("ClusterProfile", profile, cluster)
        assert len(name) <= 63 and self.LABEL.match(name), name
        assert re.search(r"-[0-9a-f]{8}$", name)
        assert inventory.summary_name("ClusterProfile", profile, cluster) == name

    def test_distinct_inputs_stay_distinct(self) -> None:
        long = "c" * 70
        assert inventory.summary_name("ClusterProfile", "p", long + "1") != inventory.summary_name(
            "ClusterProfile", "p", long + "2"
        )
        assert inventory.summary_name("ClusterProfile", "a.b", "c") != inventory.summary_name(
            "ClusterProfile", "a-b", "c"
        )
        assert inventory.summary_name("Profile", "x", "y") != inventory.summary_name(
            "ClusterProfile", "x", "y"
        )

    def test_unknown_kind(self) -> None:
        with pytest.raises(ValueError):
            inventory.summary_name("Deployment", "x", "y")

