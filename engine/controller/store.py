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

Parsing is kept with the bodies: a profile's `types.ProfileSpec` (`profile_spec`),
the parsed catalog (`catalog_specs`) and whether a profile's services resolve
against it (`check_releases`) are reused while the very same body objects are
held, so re-planning a profile whose spec and catalog did not change parses and
resolves nothing again (at 10,000 clusters that was ~1 ms of a re-plan's CPU per
profile). An entry is correct by construction: it remembers the spec dict it was
parsed from (kept alive by the entry, so no other object can take its identity)
and the catalog's version, and is used only for that same object and version.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from engine import api, catalog, errors, planindex
from engine.model import types

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
        # Parsed from the very spec dict kept beside it (see the module doc).
        self._specs: dict[Key, tuple[Any, types.ProfileSpec]] = {}
        self._catalog: dict[str, types.CatalogServiceSpec] | None = None
        self._catalog_version = 0  # bumped whenever a CatalogService is put or dropped
        self._resolved: dict[Key, tuple[types.ProfileSpec, int]] = {}

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
        elif kind == api.CATALOG_SERVICE:
            self._catalog, self._catalog_version = None, self._catalog_version + 1

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
            self._specs.pop((kind, namespace, name), None)
            self._resolved.pop((kind, namespace, name), None)
        elif kind == api.CATALOG_SERVICE:
            self._catalog, self._catalog_version = None, self._catalog_version + 1

    def profile_spec(self, kind: str, body: Body) -> types.ProfileSpec:
        """`types.ProfileSpec.from_dict(body["spec"])`, parsed once per spec object.

        Raises what parsing raises (errors are not kept: they are parsed again).
        """
        raw = body.get("spec") or {}
        key = key_of(kind, body)
        held = self._specs.get(key)
        if held is not None and held[0] is raw:
            return held[1]
        spec = types.ProfileSpec.from_dict(raw)
        if raw:  # an absent spec parses from a fresh {} each time: nothing to key on
            self._specs[key] = (raw, spec)
        return spec

    def catalog_specs(self) -> dict[str, types.CatalogServiceSpec]:
        """Every CatalogService entry that parses, by name (a copy: callers may edit it)."""
        if self._catalog is None:
            parsed = {}
            for body in self.all(api.CATALOG_SERVICE):
                name = body["metadata"]["name"]
                try:
                    parsed[name] = types.CatalogServiceSpec.from_dict(body.get("spec") or {},
                                                                      name=name)
                except errors.SpecError:
                    continue  # a broken entry only fails the profiles that use it
            self._catalog = parsed
        return dict(self._catalog)

    def check_releases(self, kind: str, body: Body, spec: types.ProfileSpec) -> None:
        """`catalog.resolve(spec, catalog_specs())` for what it raises, once per spec and
        catalog version (`spec` is the one `profile_spec` returned for `body`)."""
        key = key_of(kind, body)
        held = self._resolved.get(key)
        if held is not None and held[0] is spec and held[1] == self._catalog_version:
            return  # resolve is a function of the two; errors are not kept (raised again)
        catalog.resolve(spec, self.catalog_specs())
        self._resolved[key] = (spec, self._catalog_version)

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

    def bodies(self, kind: str, keys: Iterable[tuple[str, str]]) -> list[Body | None]:
        """`get(kind, *key)` for every key, in order (one dict lookup per key)."""
        held = self._objects.get(kind, {})
        return [held.get(key) for key in keys]

    def all(self, kind: str, namespace: str | None = None) -> list[Body]:
        items = self._objects.get(kind, {})
        return [b for (ns, _), b in sorted(items.items()) if namespace is None or ns == namespace]

    def keys(self, kind: str) -> Iterator[tuple[str, str]]:
        return iter(sorted(self._objects.get(kind, {})))
