"""Tenant limits on namespaced Profiles: what the platform team allows a namespace.

Used by the profile reconciler (`check_profile`, before anything is selected
or stored) and the deployment step (`cluster_scoped_refusal`, before a
tenant's objects reach a workload cluster). Pure: the Namespace object and the
objects' scopes come in as data; each refusal is a `SpecError` naming the
field at fault. A ClusterProfile is the platform team's own and is never
limited here (see docs/tenancy.md).

The platform team sets the limits as annotations on the Profile's Namespace
in the management cluster:

* `flotilla.dev/min-tier: "<n>"` — the lowest `spec.tier` a Profile there
  may claim. A lower tier wins a conflict, so without a floor a tenant could
  take over any object or release of the fleet by writing `tier: 1`.
* `flotilla.dev/allow-cluster-scoped: "true"` — Profiles there may deploy
  cluster-scoped objects (ClusterRoles, CRDs, Namespaces, webhooks…);
  without it every object must be namespaced.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from engine import errors
from engine.model import types

MIN_TIER_ANNOTATION = "flotilla.dev/min-tier"
ALLOW_CLUSTER_SCOPED_ANNOTATION = "flotilla.dev/allow-cluster-scoped"


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """What a namespace's Profiles may do; the defaults are a namespace with no annotations."""

    namespace: str
    min_tier: int | None = None
    allow_cluster_scoped: bool = False


def limits_of(namespace: str, namespace_obj: Mapping[str, Any] | None) -> Limits:
    """The limits the Namespace's annotations set (a missing Namespace sets none)."""
    notes: Mapping[str, Any] = ((namespace_obj or {}).get("metadata") or {}).get(
        "annotations") or {}
    floor = notes.get(MIN_TIER_ANNOTATION)
    min_tier: int | None = None
    if floor is not None:
        try:
            min_tier = int(str(floor).strip())
        except ValueError:
            # A typo by the platform team must not lift the limit: refuse until fixed.
            raise errors.SpecError(
                f"the annotation {MIN_TIER_ANNOTATION} of Namespace {namespace} is "
                f"{str(floor)[:40]!r}, not an integer; fix it", field="spec.tier",
                reason="TenantLimitInvalid") from None
    allowed = str(notes.get(ALLOW_CLUSTER_SCOPED_ANNOTATION, "")).strip().lower() == "true"
    return Limits(namespace=namespace, min_tier=min_tier, allow_cluster_scoped=allowed)


def check_profile(spec: types.ProfileSpec, limits: Limits) -> None:
    """Raise SpecError when a Profile's spec reaches past its namespace's limits."""
    for i, ref in enumerate(spec.cluster_refs):
        if ref.namespace and ref.namespace != limits.namespace:
            raise errors.SpecError(
                f"a Profile in {limits.namespace} may name only clusters in {limits.namespace};"
                f" {ref.namespace}/{ref.name} is in another namespace (use a ClusterProfile)",
                field=f"spec.clusterRefs[{i}].namespace", reason="CrossNamespaceRef")
    if limits.min_tier is not None and spec.tier < limits.min_tier:
        raise errors.SpecError(
            f"tier {spec.tier} is below the floor {limits.min_tier} that Namespace "
            f"{limits.namespace} sets ({MIN_TIER_ANNOTATION}); a lower tier would win "
            "conflicts over other profiles' objects", field="spec.tier",
            reason="TierAboveLimit")


def cluster_scoped_refusal(objects: Iterable[tuple[str, str, str]], limits: Limits,
                           *, field: str) -> None:
    """Raise SpecError for the first cluster-scoped object when the namespace allows none.

    `objects` are (apiVersion, kind, name) of the objects found cluster-scoped
    (or of unknown scope: a kind the workload cluster does not serve yet may
    be a cluster-scoped custom resource, so it counts as one).
    """
    if limits.allow_cluster_scoped:
        return
    for api_version, kind, name in objects:
        raise errors.SpecError(
            f"{kind} {name} ({api_version}) is cluster-scoped; Profiles in Namespace "
            f"{limits.namespace} may deploy only namespaced objects (the platform team "
            f"allows more with the annotation {ALLOW_CLUSTER_SCOPED_ANNOTATION}: \"true\")",
            field=field, reason="ClusterScopedRefused")
