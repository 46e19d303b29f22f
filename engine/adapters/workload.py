"""Ownership-aware writes to one workload cluster: objects, release claims, namespaces.

Used by the ClusterSummary reconciler. Every object we apply carries its
owning profile and tier (labels + annotations, see docs/api.md); a Helm
release is claimed through an owner-record ConfigMap `flotilla-owner.<release>`
in the release namespace, because releases cannot carry our marks. Whether a
profile may take something is decided by the pure `inventory.decide_ownership`;
this module only reads the marks and writes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine import api, drift, errors, inventory
from engine.adapters import kube

RELEASE_RECORD_PREFIX = "flotilla-owner."
# Field manager of drift-check dry runs: neither ours nor Helm's, so dry runs stand
# apart in audit logs and in the managedFields of their (never persisted) results.
DRIFT_CHECK_MANAGER = "flotilla-drift-check"
_CLAIM_ATTEMPTS = 3


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
        labels = {api.MANAGED_BY_LABEL: api.MANAGED_BY, api.PROFILE_KIND_LABEL: self.kind,
                  api.PROFILE_NAME_LABEL: self.name}
        if self.namespace:
            labels[api.PROFILE_NAMESPACE_LABEL] = self.namespace
        return labels

    def selector(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(self.labels().items()))


def marked(obj: Mapping[str, Any], owner: Owner, obj_hash: str) -> dict[str, Any]:
    """A copy of obj carrying the owner marks."""
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), **owner.labels()}
    meta["annotations"] = {**(meta.get("annotations") or {}),
                           api.OWNER_ANNOTATION: owner.ref, api.TIER_ANNOTATION: str(owner.tier),
                           api.HASH_ANNOTATION: obj_hash}
    out["metadata"] = meta
    return out


def owner_of(obj: Mapping[str, Any] | None) -> tuple[str | None, int | None]:
    annotations = ((obj or {}).get("metadata") or {}).get("annotations") or {}
    tier = annotations.get(api.TIER_ANNOTATION)
    owner = annotations.get(api.OWNER_ANNOTATION)
    return owner, int(str(tier)) if str(tier or "").isdigit() else None


def _api_version(key: inventory.Key) -> str:
    group, version = key[0], key[1]
    return f"{group}/{version}" if group else version


UNDECLARED_ROUNDS = 5


def undeclared_fields(message: str) -> list[str]:
    """JSON pointers of the fields an API error calls "field not declared in schema"."""
    found = re.findall(r"(\.[\w.-]+): field not declared in schema", message)
    return ["/" + path.lstrip(".").replace("~", "~0").replace("/", "~1").replace(".", "/")
            for path in found]


class Workload:
    """One workload cluster, seen through the ownership rules."""

    def __init__(self, client: kube.Client,
                 owner_gone: Callable[[str], bool] = lambda ref: False) -> None:
        self.client = client
        # Whether the profile an owner mark names no longer exists (the controller knows):
        # its claims are stale — left by a profile deleted while no controller ran — and
        # must not block the living forever.
        self.owner_gone = owner_gone
        self._namespaces: set[str] = set()

    async def claim(self, current: Mapping[str, Any] | None, owner: Owner, what: str,
                    taken: list[str] | None = None) -> None:
        """Raise ConflictError unless `owner` may have it; note a takeover in `taken`."""
        holder, tier = owner_of(current)
        decision = inventory.decide_ownership(current_owner=holder, current_tier=tier,
                                         me=owner.ref, my_tier=owner.tier)
        if decision is inventory.Ownership.CONFLICT and holder and self.owner_gone(holder):
            decision = inventory.Ownership.TAKE_OVER
        if decision is inventory.Ownership.CONFLICT:
            raise errors.ConflictError(
                f"{what} is owned by {holder} (tier {tier if tier is not None else 100}); "
                f"tier {owner.tier} does not win", winner=str(holder), delay=30)
        if decision is inventory.Ownership.TAKE_OVER and taken is not None and holder:
            taken.append(holder)

    async def apply(self, obj: Mapping[str, Any], owner: Owner, obj_hash: str, *,
                    dry_run: bool = False, exclusions: Sequence[str] = (),
                    taken: list[str] | None = None,
                    create_namespace: bool = True) -> dict[str, Any]:
        meta = obj["metadata"]
        if meta.get("namespace") and not dry_run and create_namespace:
            await self.ensure_namespace(meta["namespace"])
        what = f"{obj['kind']} {meta.get('namespace', '')}/{meta['name']}".replace(" /", " ")
        for _ in range(_CLAIM_ATTEMPTS):
            current = await self.client.get(obj["apiVersion"], obj["kind"],
                                            meta.get("namespace"), meta["name"])
            await self.claim(current, owner, what, taken)
            body = marked(obj, owner, obj_hash)
            if current is None:
                try:
                    return await self._create(body, dry_run)
                except kube.ApiError as exc:
                    if exc.status == 404 and meta.get("namespace"):
                        # Its namespace went away since we looked, or was never ours to
                        # create (skipNamespaceCreation): it may exist later, so retry.
                        self._namespaces.discard(meta["namespace"])
                        raise errors.RetriableError(
                            f"{what}: namespace {meta['namespace']} does not exist" +
                            ("" if create_namespace else " (skipNamespaceCreation)"),
                            reason="NamespaceNotFound", delay=5) from exc
                    if exc.status != 409:
                        raise
                    continue  # someone created it meanwhile: judge its owner again
            if exclusions:
                # Excluded paths are set on creation only; whoever changes them keeps them.
                body = drift.strip_excluded(body, list(exclusions))
            # The resourceVersion makes the apply conditional: if another profile claimed
            # the object between our read and our write, the API server refuses (409).
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            try:
                return await self.client.apply(body, dry_run=dry_run)
            except kube.ApiError as exc:
                if exc.status != 409:
                    raise
        raise errors.RetriableError(f"{what} keeps changing under us", reason="Contended",
                                    delay=2)

    async def would_keep(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """The object as the API server would keep it if `obj` were applied now. Writes nothing.

        A server-side-apply dry run (`dryRun=All`, so admission runs but nothing is
        persisted) under its own field manager, forced so that fields other managers own
        (Helm's, a hand edit's) take the desired values, as a correction would. No
        resourceVersion is sent: the answer is about the object as it is now.
        """
        body = dict(obj)
        body["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items()
                            if k != "resourceVersion"}
        # Server-side apply refuses fields the CRD's schema does not declare, where an
        # update (what helm sends) prunes them: the server would keep the object without
        # them. Seen with a chart newer than its CRDs (a CRD-upgrade hook not run yet).
        # The server names a few such fields per answer, so this may take some rounds.
        unknown: list[str] = []
        for _ in range(UNDECLARED_ROUNDS):
            try:
                return await self.client.apply(drift.strip_excluded(body, unknown),
                                               field_manager=DRIFT_CHECK_MANAGER, force=True,
                                               dry_run=True)
            except kube.ApiError as exc:
                more = [p for p in undeclared_fields(str(exc)) if p not in unknown]
                if not more:
                    raise
                unknown += more
        raise errors.RetriableError(f"the dry run still names undeclared fields after "
                                    f"{UNDECLARED_ROUNDS} rounds", reason="DryRunFailed")

    async def _create(self, body: dict[str, Any], dry_run: bool) -> dict[str, Any]:
        body["metadata"].pop("resourceVersion", None)
        if dry_run:
            return await self.client.apply(body, dry_run=True)
        # POST, not apply: two profiles creating the same object must not both succeed.
        created = await self.client.create(body, field_manager=kube.FIELD_MANAGER)
        # The same fields again as an apply, so later applies may also remove them; still
        # conditional on nobody having touched the object since we created it.
        body["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
        try:
            applied = await self.client.apply(body)
        except kube.ApiError as exc:
            if exc.status != 409:
                raise
            return created
        return await self._drop_create_entry(applied)

    async def _drop_create_entry(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Forget the create's own field ownership, so only our apply owns the fields.

        The POST leaves an `Update` entry for our manager beside the apply's: it would
        keep owning every field it created, so a key later removed from the manifest
        would stay on the live object forever. Conditional like the rest: if anyone
        wrote in between, the entry stays (and the next change is theirs to judge).
        """
        meta = obj.get("metadata") or {}
        entries = meta.get("managedFields") or []
        kept = [e for e in entries if not (e.get("manager") == kube.FIELD_MANAGER
                                           and e.get("operation") == "Update")]
        if len(kept) == len(entries) or not kept:
            return obj
        try:
            patched: dict[str, Any] = await self.client.patch(
                obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"],
                {"metadata": {"resourceVersion": meta["resourceVersion"], "managedFields": kept}})
        except kube.ApiError as exc:
            if exc.status != 409:
                raise
            return obj
        return patched

    async def delete(self, key: inventory.Key, owner: Owner) -> bool:
        """Delete an object only while it is still ours; False when gone or not ours."""
        _, _, kind, namespace, name = key
        current = await self.client.get(_api_version(key), kind, namespace or None, name)
        if current is None or owner_of(current)[0] != owner.ref:
            return False
        return await self.client.delete(_api_version(key), kind, namespace or None, name)

    async def ensure_namespace(self, name: str) -> None:
        # Namespaces we create are never deleted by a withdrawal: they may hold
        # objects nobody asked us to manage. Known ones are remembered, so applying
        # many objects into one namespace costs one read, not one per object.
        if name in self._namespaces:
            return
        try:
            found = await self.client.get("v1", "Namespace", None, name)
        except kube.ApiError as exc:
            if exc.status != 403:
                raise
            # An identity limited to its namespace may not read Namespaces: assume it
            # exists (it is usually the one it may work in) and let the apply tell.
            self._namespaces.add(name)
            return
        if found is None:
            try:
                await self.client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {
                    "name": name, "labels": {api.CREATED_BY_LABEL: api.MANAGED_BY}}})
            except kube.ApiError as exc:
                if exc.status != 409:
                    raise
        self._namespaces.add(name)

    async def claim_release(self, release: str, namespace: str, owner: Owner,
                            taken: list[str] | None = None) -> None:
        """Take (or confirm) ownership of a release before helm touches it."""
        record = await self.client.get("v1", "ConfigMap", namespace,
                                       RELEASE_RECORD_PREFIX + release)
        if owner_of(record) == (owner.ref, owner.tier):
            return  # an unchanged claim is not rewritten
        # apply() judges the record's owner (ConflictError) and writes it atomically.
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": RELEASE_RECORD_PREFIX + release, "namespace": namespace},
                "data": {"release": release, "owner": owner.ref}}
        await self.apply(body, owner, "release-claim", taken=taken)

    async def release_owner(self, release: str, namespace: str) -> str | None:
        record = await self.client.get("v1", "ConfigMap", namespace,
                                       RELEASE_RECORD_PREFIX + release)
        return owner_of(record)[0]

    async def drop_release_claim(self, release: str, namespace: str, owner: Owner) -> None:
        if await self.release_owner(release, namespace) == owner.ref:
            await self.client.delete("v1", "ConfigMap", namespace, RELEASE_RECORD_PREFIX + release)

    async def still_ours(self, key: inventory.Key, owner: Owner) -> None:
        """Raise ConflictError when another profile has taken this item over since."""
        if key[0] == inventory.HELM and len(key) == 3:
            record = await self.client.get("v1", "ConfigMap", key[1],
                                           RELEASE_RECORD_PREFIX + key[2])
            what = f"Helm release {key[1]}/{key[2]}"
        else:
            record = await self.client.get(_api_version(key), key[2], key[3] or None, key[4])
            what = f"{key[2]} {key[3] + '/' if key[3] else ''}{key[4]}"
        await self.claim(record, owner, what)

    async def objects_for(self, *, api_version: str, kind: str, namespace: str | None,
                          name: str | None, label_selector: str | None) -> list[dict[str, Any]]:
        """Live objects a health check looks at."""
        if name:
            found = await self.client.get(api_version, kind, namespace, name)
            return [found] if found else []
        return await self.client.list(api_version, kind, namespace=namespace,
                                      label_selector=label_selector)
