"""Ownership-aware writes to one workload cluster: objects, release claims, namespaces.

Used by the ClusterSummary reconciler. Every object we apply carries its
owning profile and tier (labels + annotations, see docs/api.md); a Helm
release is claimed through an owner-record ConfigMap `flotilla-owner.<release>`
in the release namespace, because releases cannot carry our marks. Whether a
profile may take something is decided by the pure `plan.decide_ownership`;
this module only reads the marks and writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine import errors, plan
from engine.adapters import kube

MANAGED_BY = "flotilla.dev/managed-by"
PROFILE_KIND = "flotilla.dev/profile-kind"
PROFILE_NAME = "flotilla.dev/profile-name"
PROFILE_NAMESPACE = "flotilla.dev/profile-namespace"
OWNER = "flotilla.dev/owner"
TIER = "flotilla.dev/tier"
HASH = "flotilla.dev/hash"
RELEASE_RECORD_PREFIX = "flotilla-owner."


@dataclass(frozen=True)
class Owner:
    """The profile that deploys something, and the tier it claims it with."""

    kind: str
    namespace: str
    name: str
    tier: int

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"

    def labels(self) -> dict[str, str]:
        labels = {MANAGED_BY: "flotilla", PROFILE_KIND: self.kind, PROFILE_NAME: self.name}
        if self.namespace:
            labels[PROFILE_NAMESPACE] = self.namespace
        return labels

    def selector(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(self.labels().items()))


def marked(obj: Mapping[str, Any], owner: Owner, obj_hash: str) -> dict[str, Any]:
    """A copy of obj carrying the owner marks."""
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), **owner.labels()}
    meta["annotations"] = {**(meta.get("annotations") or {}),
                           OWNER: owner.ref, TIER: str(owner.tier), HASH: obj_hash}
    out["metadata"] = meta
    return out


def owner_of(obj: Mapping[str, Any] | None) -> tuple[str | None, int | None]:
    annotations = ((obj or {}).get("metadata") or {}).get("annotations") or {}
    tier = annotations.get(TIER)
    return annotations.get(OWNER), int(str(tier)) if str(tier or "").isdigit() else None


def _api_version(key: plan.Key) -> str:
    group, version = key[0], key[1]
    return f"{group}/{version}" if group else version


class Workload:
    """One workload cluster, seen through the ownership rules."""

    def __init__(self, client: kube.Client) -> None:
        self.client = client

    async def claim(self, current: Mapping[str, Any] | None, owner: Owner, what: str) -> None:
        holder, tier = owner_of(current)
        decision = plan.decide_ownership(current_owner=holder, current_tier=tier,
                                         me=owner.ref, my_tier=owner.tier)
        if decision is plan.Ownership.CONFLICT:
            raise errors.ConflictError(
                f"{what} is owned by {holder} (tier {tier if tier is not None else 100}); "
                f"tier {owner.tier} does not win", winner=str(holder), delay=30)

    async def apply(self, obj: Mapping[str, Any], owner: Owner, obj_hash: str, *,
                    dry_run: bool = False) -> dict[str, Any]:
        meta = obj["metadata"]
        current = await self.client.get(obj["apiVersion"], obj["kind"], meta.get("namespace"),
                                        meta["name"])
        await self.claim(current, owner, f"{obj['kind']} {meta.get('namespace', '')}/"
                                         f"{meta['name']}".replace(" /", " "))
        if meta.get("namespace"):
            await self.ensure_namespace(meta["namespace"])
        return await self.client.apply(marked(obj, owner, obj_hash), dry_run=dry_run)

    async def delete(self, key: plan.Key, owner: Owner) -> bool:
        """Delete an object only while it is still ours; False when gone or not ours."""
        _, _, kind, namespace, name = key
        current = await self.client.get(_api_version(key), kind, namespace or None, name)
        if current is None or owner_of(current)[0] != owner.ref:
            return False
        return await self.client.delete(_api_version(key), kind, namespace or None, name)

    async def ensure_namespace(self, name: str) -> None:
        # Namespaces we create are never deleted by a withdrawal: they may hold
        # objects nobody asked us to manage.
        if await self.client.get("v1", "Namespace", None, name) is None:
            try:
                await self.client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {
                    "name": name, "labels": {"flotilla.dev/created-by": "flotilla"}}})
            except kube.ApiError as exc:
                if exc.status != 409:
                    raise

    async def claim_release(self, release: str, namespace: str, owner: Owner) -> None:
        """Take (or confirm) ownership of a release before helm touches it."""
        await self.ensure_namespace(namespace)
        record = await self.client.get("v1", "ConfigMap", namespace,
                                       RELEASE_RECORD_PREFIX + release)
        await self.claim(record, owner, f"Helm release {namespace}/{release}")
        if owner_of(record) == (owner.ref, owner.tier):
            return  # hash-gated: an unchanged claim is not rewritten
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": RELEASE_RECORD_PREFIX + release, "namespace": namespace},
                "data": {"release": release, "owner": owner.ref}}
        await self.client.apply(marked(body, owner, "release-claim"))

    async def release_owner(self, release: str, namespace: str) -> str | None:
        record = await self.client.get("v1", "ConfigMap", namespace,
                                       RELEASE_RECORD_PREFIX + release)
        return owner_of(record)[0]

    async def drop_release_claim(self, release: str, namespace: str, owner: Owner) -> None:
        if await self.release_owner(release, namespace) == owner.ref:
            await self.client.delete("v1", "ConfigMap", namespace, RELEASE_RECORD_PREFIX + release)

    async def objects_for(self, *, api_version: str, kind: str, namespace: str | None,
                          name: str | None, label_selector: str | None) -> list[dict[str, Any]]:
        """Live objects a health check looks at."""
        if name:
            found = await self.client.get(api_version, kind, namespace, name)
            return [found] if found else []
        return await self.client.list(api_version, kind, namespace=namespace,
                                      label_selector=label_selector)
