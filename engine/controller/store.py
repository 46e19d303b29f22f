"""An in-memory cache of the management-cluster objects the controller reads.

Filled by the kopf event handlers (`handlers`), read by the reconcilers, so a
reconcile never lists the API server. Keys are (kind, namespace, name) with
namespace "" for cluster-scoped kinds. Bodies are plain dicts, as delivered.

It also keeps every profile's cluster selection current (`plan`, an
`engine.planindex.PlanIndex` fed by each WorkloadCluster and profile put or
dropped here), so selections never disagree with the cached objects, and
collects the profiles a cluster change touched until `take_woken` hands them
to whoever wakes them (`profiles.wake`). ClusterSummaries are also indexed
by the profile they belong to (`summaries_of`), so a profile's reconcile does
not scan every summary of the fleet.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from engine import api, planindex

Key = tuple[str, str, str]
Body = dict[str, Any]


def _version(body: Body) -> int:
    # resourceVersions are opaque strings; etcd-backed servers use increasing integers.
    rv = str(body.get("metadata", {}).get("resourceVersion", ""))
    return int(rv) if rv.isdigit() else -1


def key_of(kind: str, body: dict[str, Any]) -> Key:
    meta = body.get("metadata", {})
    return kind, meta.get("namespace") or "", meta.get("name", "")


def _owner(summary: Body) -> planindex.ProfileKey:
    ref = (summary.get("spec") or {}).get("profileRef") or {}
    return str(ref.get("kind")), str(ref.get("namespace") or ""), str(ref.get("name"))


class Store:
    def __init__(self) -> None:
        self._objects: dict[str, dict[tuple[str, str], Body]] = {}
        self.plan = planindex.PlanIndex()
        self._woken: set[planindex.ProfileKey] = set()
        self._summaries: dict[planindex.ProfileKey, set[tuple[str, str]]] = {}

    def put(self, kind: str, body: Body) -> None:
        """Remember body unless what we hold is newer.

        The reconcilers put what their own writes return, ahead of the watch
        event for them; an older event arriving afterwards must not roll the
        cache back, or decisions (how many clusters are in flight) go stale.
        """
        _, ns, name = key_of(kind, body)
        held = self._objects.get(kind, {}).get((ns, name))
        if held is not None and _version(held) > _version(body):
            return
        self._objects.setdefault(kind, {})[(ns, name)] = body
        if kind == api.CLUSTER_SUMMARY:
            if held is not None:
                self._unindex_summary(held, ns, name)
            self._summaries.setdefault(_owner(body), set()).add((ns, name))
        elif kind == api.WORKLOAD_CLUSTER:
            self._woken |= self.plan.cluster_changed(body).touched
        elif kind in api.PROFILE_KINDS:
            self.plan.profile_changed(kind, body)

    def drop(self, kind: str, namespace: str, name: str) -> None:
        held = self._objects.get(kind, {}).pop((namespace, name), None)
        if held is None:
            return
        if kind == api.CLUSTER_SUMMARY:
            self._unindex_summary(held, namespace, name)
        elif kind == api.WORKLOAD_CLUSTER:
            self._woken |= self.plan.cluster_removed(namespace, name).touched
        elif kind in api.PROFILE_KINDS:
            self.plan.profile_removed(kind, namespace, name)

    def summaries_of(self, kind: str, namespace: str, name: str) -> list[Body]:
        """The ClusterSummaries whose spec.profileRef names this profile, by (namespace, name)."""
        found = self._summaries.get((kind, namespace, name), ())
        held = self._objects.get(api.CLUSTER_SUMMARY, {})
        return [held[key] for key in sorted(found)]

    def _unindex_summary(self, body: Body, namespace: str, name: str) -> None:
        owner = _owner(body)
        members = self._summaries.get(owner)
        if members is not None:
            members.discard((namespace, name))
            if not members:
                del self._summaries[owner]

    def take_woken(self) -> set[planindex.ProfileKey]:
        """The profiles cluster changes touched since the last call (see PlanIndex.Update)."""
        woken, self._woken = self._woken, set()
        return woken

    def get(self, kind: str, namespace: str, name: str) -> Body | None:
        return self._objects.get(kind, {}).get((namespace, name))

    def all(self, kind: str, namespace: str | None = None) -> list[Body]:
        items = self._objects.get(kind, {})
        return [b for (ns, _), b in sorted(items.items()) if namespace is None or ns == namespace]

    def keys(self, kind: str) -> Iterator[tuple[str, str]]:
        return iter(sorted(self._objects.get(kind, {})))
