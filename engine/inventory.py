"""The inventory: desired vs recorded state, and what a ClusterSummary reconcile must do.

Used by the ClusterSummary reconciler, the deployers and `flotilla plan`: it hashes what
it wants deployed (`DesiredItem`s), compares with the inventory recorded in
the summary's status (`InventoryEntry`s) and gets back which items to apply,
which are unchanged and which to delete or orphan. Also the ownership rule
for objects and releases another profile may hold, and ClusterSummary
naming. Pure: no cluster is read here; the caller brings both sides.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from engine import errors, render
from engine.catalog import ReleasePlan

# (group, version, kind, namespace, name) for objects, ("helm", namespace,
# release) for Helm releases, ("kustomize", group, version, kind, namespace, name)
# for objects a kustomizationRef built. Plain tuples so they serialise and sort.
Key = tuple[str, ...]

HELM = "helm"
KUSTOMIZE = "kustomize"
OBJECT = "object"  # the kind of every key that is neither of the above
# The status.inventory row's `feature` for kustomize keys (Sveltos' feature name).
_KUSTOMIZE_FEATURE = "Kustomize"
# The ClusterSummary inventory only has object-shaped rows; a release is
# recorded as kind HelmRelease with no group/version, which no real API has.
_HELM_KIND = "HelmRelease"
_DNS_INVALID = re.compile(r"[^a-z0-9-]+")
_MAX_NAME = 63


def object_key(obj: Mapping[str, Any]) -> Key:
    """The inventory key of a manifest ("apps/v1" → group "apps", "v1" → group "")."""
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    metadata = obj.get("metadata") or {}
    return (
        group,
        version,
        str(obj.get("kind", "")),
        str(metadata.get("namespace") or ""),
        str(metadata.get("name") or ""),
    )


def kind_of(key: Key) -> str:
    """HELM, KUSTOMIZE or OBJECT: which deployer handles the key."""
    if key[0] == HELM and len(key) == 3:
        return HELM
    return KUSTOMIZE if key[0] == KUSTOMIZE and len(key) == 6 else OBJECT


def object_part(key: Key) -> Key:
    """(group, version, kind, namespace, name) of an object or kustomize key."""
    return key[1:] if kind_of(key) == KUSTOMIZE else key


def release_key(release: ReleasePlan) -> Key:
    return (HELM, release.namespace, release.release_name)


@dataclasses.dataclass(frozen=True, slots=True)
class DesiredItem:
    """Something to deploy: a manifest or a Helm release, with its content hash."""

    key: Key
    hash: str
    body: Mapping[str, Any] | ReleasePlan
    # policyRefs' skipNamespaceCreation: the object's namespace must already exist.
    create_namespace: bool = True

    @classmethod
    def for_object(cls, obj: Mapping[str, Any], *, create_namespace: bool = True) -> DesiredItem:
        return cls(key=object_key(obj), hash=render.object_hash(obj), body=obj,
                   create_namespace=create_namespace)

    @classmethod
    def for_release(cls, release: ReleasePlan, *, values: Mapping[str, Any]) -> DesiredItem:
        """A release, hashed over its chart, its final (rendered) values and its post-render."""
        parts: list[Any] = [release.repository_url, release.chart_name, release.chart_version,
                            release.uninstall, values]
        if release.post_render:  # absent from older hashes: no redeploy without a change
            parts.append(release.post_render)
        return cls(key=release_key(release), hash=render.stable_hash(*parts), body=release)

    @classmethod
    def for_kustomized(cls, obj: Mapping[str, Any]) -> DesiredItem:
        """An object a kustomizationRef built: deployed like a manifest, keyed apart."""
        return cls(key=(KUSTOMIZE, *object_key(obj)), hash=render.object_hash(obj), body=obj)

    @property
    def is_release(self) -> bool:
        return kind_of(self.key) == HELM


@dataclasses.dataclass(frozen=True, slots=True)
class InventoryEntry:
    """What a previous reconcile deployed, as recorded in ClusterSummary status."""

    key: Key
    hash: str

    def to_dict(self) -> dict[str, str]:
        """The `status.inventory[]` row: {group, version, kind, namespace, name, hash}."""
        if self.key[0] == HELM and len(self.key) == 3:
            group, version, kind, namespace, name = "", "", _HELM_KIND, self.key[1], self.key[2]
        else:
            group, version, kind, namespace, name = object_part(self.key)
        row = {
            "group": group,
            "version": version,
            "kind": kind,
            "namespace": namespace,
            "name": name,
            "hash": self.hash,
        }
        if kind_of(self.key) == KUSTOMIZE:
            row["feature"] = _KUSTOMIZE_FEATURE
        return row

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> InventoryEntry:
        def get(name: str) -> str:
            return str(row.get(name) or "")

        if get("kind") == _HELM_KIND and not get("group") and not get("version"):
            return cls(key=(HELM, get("namespace"), get("name")), hash=get("hash"))
        key: Key = (get("group"), get("version"), get("kind"), get("namespace"), get("name"))
        if get("feature") == _KUSTOMIZE_FEATURE:
            key = (KUSTOMIZE, *key)
        return cls(key=key, hash=get("hash"))


@dataclasses.dataclass(frozen=True, slots=True)
class Changes:
    """The actions of one reconcile; `apply` keeps the desired (dependency) order."""

    apply: list[DesiredItem]
    unchanged: list[DesiredItem]
    delete: list[InventoryEntry]
    orphan: list[InventoryEntry]

    @property
    def changed(self) -> bool:
        return bool(self.apply or self.delete)


def changes(
    desired: Sequence[DesiredItem], recorded: Sequence[InventoryEntry], *, withdraw: bool
) -> Changes:
    """Compare desired items with the recorded inventory.

    Items no longer desired are deleted when `withdraw` is set
    (stopMatchingBehavior WithdrawPolicies, or the profile is gone), else
    orphaned: left in place and dropped from the inventory. Deletions come
    in reverse recorded order, so dependents go before what they depend on.
    """
    seen: dict[Key, DesiredItem] = {}
    for item in desired:
        if item.key in seen:
            raise errors.SpecError(
                f"{_describe(item.key)} is defined twice", field="spec", reason="DuplicateObject"
            )
        seen[item.key] = item
    recorded_hashes = {entry.key: entry.hash for entry in recorded}
    apply = [item for item in desired if recorded_hashes.get(item.key) != item.hash]
    unchanged = [item for item in desired if recorded_hashes.get(item.key) == item.hash]
    gone = [entry for entry in reversed(recorded) if entry.key not in seen]
    return Changes(
        apply=apply,
        unchanged=unchanged,
        delete=gone if withdraw else [],
        orphan=[] if withdraw else gone,
    )


def _describe(key: Key) -> str:
    if key[0] == HELM and len(key) == 3:
        return f"Helm release {key[1]}/{key[2]}"
    group, version, kind, namespace, name = object_part(key)
    api = f"{group}/{version}" if group else version
    return f"{kind} {namespace + '/' if namespace else ''}{name} ({api})"


class Ownership(enum.StrEnum):
    TAKE = "Take"  # nobody owns it, or we already do
    TAKE_OVER = "TakeOver"  # another profile owns it, but we have a lower tier
    CONFLICT = "Conflict"  # another profile keeps it


DEFAULT_TIER = 100


def decide_ownership(
    *, current_owner: str | None, current_tier: int | None, me: str, my_tier: int
) -> Ownership:
    """Who gets an object or release that `current_owner` may already hold.

    Lower tier wins; on a tie the first owner keeps it, so the outcome does
    not depend on reconcile order. An owner mark without a tier counts as
    the default tier.
    """
    if not current_owner or current_owner == me:
        return Ownership.TAKE
    if my_tier < (DEFAULT_TIER if current_tier is None else current_tier):
        return Ownership.TAKE_OVER
    return Ownership.CONFLICT


def summary_name(profile_kind: str, profile_name: str, cluster_name: str) -> str:
    """The ClusterSummary name: `cp-<profile>-<cluster>` or `p-<profile>-<cluster>`.

    The result is a DNS-1123 label (≤63 chars, lowercase alphanumerics and
    '-'). When the plain name does not fit or had to be sanitised, it is cut
    and suffixed with 8 hex digits of a hash of the full name, so distinct
    (profile, cluster) pairs keep distinct names.
    """
    prefix = {"ClusterProfile": "cp", "Profile": "p"}.get(profile_kind)
    if prefix is None:
        raise ValueError(f"profile kind must be ClusterProfile or Profile, not {profile_kind!r}")
    full = f"{prefix}-{profile_name}-{cluster_name}"
    clean = _DNS_INVALID.sub("-", full.lower()).strip("-")
    if clean == full and len(full) <= _MAX_NAME:
        return full
    suffix = hashlib.sha256(full.encode("utf-8")).hexdigest()[:8]
    return f"{clean[: _MAX_NAME - len(suffix) - 1].rstrip('-')}-{suffix}"
