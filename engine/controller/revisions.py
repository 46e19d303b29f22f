"""Numbered revisions of a profile's resolved content, kept as ControllerRevisions.

Used by the profile reconciler (build the snapshot of what the profile
deploys now; record it as the next revision when it changed), the summary
and drift reconcilers (deploy and compare exactly the snapshot of the
revision a cluster was assigned, never live ConfigMaps or catalog entries)
and `flotilla rollout history|undo`.

A revision is an `engine.snapshot.Snapshot`: the content part of the spec
(selection and rollout controls are left out, so relabelling or pausing
never makes a revision), the data of every referenced ConfigMap and Secret,
and the catalog entries used. Secret data lives in a Secret owned by the
ControllerRevision, never in the revision itself. Identical content reuses
its number. History is bounded to KEEP plus any revision still in use.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Sequence
from typing import Any

from engine import api, errors, kustomize, snapshot, templaterefs
from engine.adapters import kube
from engine.controller import context
from engine.model import types

KEEP = 10
SECRET_SUFFIX = "-secrets"


def namespace_for(profile: dict[str, Any]) -> str:
    return str(profile["metadata"].get("namespace") or api.SYSTEM_NAMESPACE)


def _prefix(profile: dict[str, Any]) -> str:
    prefix = "cp-" if profile["kind"] == api.CLUSTER_PROFILE else "p-"
    return prefix + str(profile["metadata"]["name"])


def history(ctx: context.Context, profile: dict[str, Any]) -> list[dict[str, Any]]:
    """This profile's ControllerRevisions, oldest first."""
    ns, kind, name = namespace_for(profile), profile["kind"], profile["metadata"]["name"]
    found = [r for r in ctx.store.all("ControllerRevision", ns)
             if (r["metadata"].get("labels") or {}).get(api.PROFILE_KIND_LABEL) == kind
             and r["metadata"]["labels"].get(api.PROFILE_NAME_LABEL) == name]
    return sorted(found, key=lambda r: int(r.get("revision", 0)))


def hashes(ctx: context.Context, profile: dict[str, Any]) -> dict[int, str]:
    """Content digest of every recorded revision."""
    return {int(rev.get("revision", 0)): str((rev["metadata"].get("annotations") or {})
                                             .get(api.HASH_ANNOTATION, ""))
            for rev in history(ctx, profile)}


# -- building the snapshot of the profile's content now -------------------------------------

async def read_reference(ctx: context.Context, ref: snapshot.Reference) -> snapshot.RefData:
    """The data of one referenced ConfigMap or Secret (decoded); None when optional and absent."""
    if ref.kind == "ConfigMap":
        body = ctx.store.get("ConfigMap", ref.namespace, ref.name)
        if body is None:  # the store only holds ConfigMaps we were told about; ask once
            body = await ctx.mgmt.get("v1", "ConfigMap", ref.namespace, ref.name)
        data = {str(k): str(v) for k, v in (body.get("data") or {}).items()} if body else None
        if body and ref.binary:  # already base64 in the API; kept so, under a marked key
            data = {**(data or {}), **{kustomize.BINARY_PREFIX + str(k): str(v)
                                       for k, v in (body.get("binaryData") or {}).items()}}
    else:
        body = await ctx.mgmt.get("v1", "Secret", ref.namespace, ref.name)
        data = None if not body else {
            k: v for k, v in (_secret_entry(str(k), str(v), ref.binary)
                              for k, v in (body.get("data") or {}).items())}
    annotations = ((body or {}).get("metadata") or {}).get("annotations") or {}
    if data is not None and ref.manifests and any(a in annotations
                                                  for a in api.TEMPLATE_ANNOTATIONS):
        data = {**data, snapshot.TEMPLATE_MARK: "true"}
    if data is None and not ref.optional:
        raise errors.SpecError(f"{ref.kind} {ref.namespace}/{ref.name} not found",
                               field=ref.field, reason="ReferenceNotFound")
    return data


def _secret_entry(key: str, encoded: str, binary: bool) -> tuple[str, str]:
    """A Secret key decoded to text; for a kustomization, bytes that are not UTF-8 (a
    tarball) stay base64 under a marked key."""
    raw = base64.b64decode(encoded)
    try:
        return key, raw.decode()
    except UnicodeDecodeError:
        if not binary:
            raise
        return kustomize.BINARY_PREFIX + key, encoded


async def read_resource(ctx: context.Context,
                        ref: templaterefs.Resolved) -> snapshot.RefData:
    """A templateResourceRefs object as a snapshot keeps it; None when optional and absent."""
    try:
        namespaced = (await ctx.mgmt.resource(ref.api_version, ref.kind)).namespaced
    except errors.FlotillaError as exc:
        raise errors.SpecError(f"{ref.api_version} {ref.kind} is not served by the management "
                               f"cluster: {exc}", field=ref.field,
                               reason="ReferenceNotFound") from exc
    if not namespaced:
        ref = ref.cluster_scoped()
    obj = None
    if ref.kind == "ConfigMap" and ref.api_version == "v1":
        obj = ctx.store.get("ConfigMap", ref.namespace, ref.name)
    if obj is None:
        obj = await ctx.mgmt.get(ref.api_version, ref.kind, ref.namespace or None, ref.name)
    if obj is None and not ref.optional:
        where = f"{ref.namespace}/{ref.name}" if ref.namespace else ref.name
        raise errors.SpecError(f"{ref.kind} {where} not found", field=ref.field,
                               reason="ReferenceNotFound")
    return templaterefs.capture(obj, ref)


async def build(ctx: context.Context, profile: dict[str, Any], spec: types.ProfileSpec,
                clusters: Sequence[dict[str, Any]] = ()) -> snapshot.Snapshot:
    """One snapshot of what the profile deploys now (built once per change, not per cluster).

    `clusters` are those it selects: templateResourceRefs are resolved for each.
    """
    catalog = {c["metadata"]["name"]: c.get("spec") or {}
               for c in ctx.store.all("CatalogService")}
    meta = profile["metadata"]
    configmaps: dict[str, snapshot.RefData] = {}
    secrets: dict[str, snapshot.RefData] = {}
    for ref in snapshot.references(spec, profile_kind=profile["kind"],
                                   profile_namespace=meta.get("namespace") or ""):
        target = secrets if ref.kind == "Secret" else configmaps
        # A kustomizationRef's read keeps binaryData, a policyRef's the template mark.
        if ref.key not in target or ref.binary or ref.manifests:
            target[ref.key] = await read_reference(ctx, ref)
    for cluster in clusters if spec.template_resource_refs else ():
        for res in templaterefs.resolve(spec.template_resource_refs, cluster,
                                        profile_kind=profile["kind"],
                                        profile_namespace=meta.get("namespace") or ""):
            target = secrets if res.secret else configmaps
            if res.key not in target:
                target[res.key] = await read_resource(ctx, res)
    return snapshot.Snapshot(spec=snapshot.content_of(profile.get("spec") or {}),
                             configmaps=configmaps, secrets=secrets,
                             catalog=snapshot.catalog_used(spec, catalog))


# -- recording and reading revisions --------------------------------------------------------

async def target(ctx: context.Context, profile: dict[str, Any], snap: snapshot.Snapshot, *,
                 in_use: set[int]) -> tuple[int, snapshot.Snapshot, str]:
    """The revision the profile should roll out now, its snapshot, and a note for status.

    Normally `snap` (recorded when new). After an undo to N, N itself while the
    spec still equals N's: the references may hold newer data, and undo promised N.
    """
    wanted = (profile["metadata"].get("annotations") or {}).get(api.RESTORE_REVISION_ANNOTATION, "")
    if wanted.isdigit():
        old = await at(ctx, profile, int(wanted))
        if old is not None and dict(old.spec) == dict(snap.spec):
            note = ""
            if old.complete and old.digest() != snap.digest():
                moved = snapshot.changes(old, snap)
                note = (f"restored revision {wanted} (undo); the references have changed since "
                        f"({'; '.join(moved[:3])}): remove annotation "
                        f"{api.RESTORE_REVISION_ANNOTATION} to roll that out")
            return int(wanted), old, note
    return await ensure(ctx, profile, snap, in_use=in_use), snap, ""


async def ensure(ctx: context.Context, profile: dict[str, Any], snap: snapshot.Snapshot, *,
                 in_use: set[int]) -> int:
    """The revision number of this snapshot, recording it when new."""
    digest = snap.digest()
    revs: list[dict[str, Any]] = []
    for attempt in ("cache", "api"):
        revs = history(ctx, profile)
        for rev in revs:
            if (rev["metadata"].get("annotations") or {}).get(api.HASH_ANNOTATION) == digest:
                await _ensure_secret(ctx, rev, snap)
                return int(rev["revision"])
        if attempt == "cache":
            # New content, or a cache still filling after a restart: ask the API before
            # numbering a revision (ControllerRevisions are immutable).
            for rev in await ctx.mgmt.list("apps/v1", "ControllerRevision",
                                           namespace=namespace_for(profile),
                                           label_selector=f"{api.PROFILE_NAME_LABEL}="
                                                          f"{profile['metadata']['name']}"):
                ctx.store.put("ControllerRevision", rev)
    number = max([int(r.get("revision", 0)) for r in revs] + [0]) + 1
    public, _ = snapshot.split(snap)
    meta = profile["metadata"]
    body = {
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": f"{_prefix(profile)}-r{number}", "namespace": namespace_for(profile),
                     "labels": {api.PROFILE_KIND_LABEL: profile["kind"],
                                api.PROFILE_NAME_LABEL: meta["name"]},
                     "annotations": {api.HASH_ANNOTATION: digest}},
        "revision": number,
        "data": public,
    }
    created = await ctx.mgmt.apply(body)
    await _ensure_secret(ctx, created, snap)
    ctx.store.put("ControllerRevision", created)  # visible before the watch event arrives
    await _prune(ctx, revs, keep=in_use | {number})
    return number


async def _ensure_secret(ctx: context.Context, rev: dict[str, Any],
                         snap: snapshot.Snapshot) -> None:
    """The Secret holding a revision's Secret data, owned by it (so it goes with it)."""
    if not snap.secrets:
        return
    meta = rev["metadata"]
    name = meta["name"] + SECRET_SUFFIX
    if meta.get("uid") in ctx.revision_secrets:
        return
    if await ctx.mgmt.get("v1", "Secret", meta["namespace"], name) is None:
        _, data = snapshot.split(snap)
        await ctx.mgmt.apply({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": meta["namespace"],
                         "labels": dict(meta.get("labels") or {}),
                         "ownerReferences": [{"apiVersion": "apps/v1",
                                              "kind": "ControllerRevision",
                                              "name": meta["name"], "uid": meta["uid"]}]},
            "stringData": data,
        })
    ctx.revision_secrets.add(meta.get("uid", ""))


async def _prune(ctx: context.Context, revs: list[dict[str, Any]], keep: set[int]) -> None:
    """Keep the newest KEEP revisions and any revision a cluster still runs."""
    excess = len(revs) + 1 - KEEP
    for rev in revs:
        if excess <= 0:
            break
        if int(rev.get("revision", 0)) in keep:
            continue
        meta = rev["metadata"]
        with contextlib.suppress(kube.NotFound):
            await ctx.mgmt.delete("apps/v1", "ControllerRevision", meta["namespace"],
                                  meta["name"])
        ctx.store.drop("ControllerRevision", meta["namespace"], meta["name"])
        ctx.snapshots.pop(meta.get("uid", ""), None)
        excess -= 1


async def at(ctx: context.Context, profile: dict[str, Any],
             number: int) -> snapshot.Snapshot | None:
    """The snapshot revision `number` recorded (cached: revisions never change)."""
    rev = next((r for r in history(ctx, profile) if int(r.get("revision", 0)) == number), None)
    if rev is None:
        return None
    meta = rev["metadata"]
    uid = str(meta.get("uid", ""))
    if uid in ctx.snapshots:
        return ctx.snapshots[uid]
    data: dict[str, Any] = rev.get("data") or {}
    secret: dict[str, str] | None = None
    if data.get("secretRefs"):
        body = await ctx.mgmt.get("v1", "Secret", meta["namespace"], meta["name"] + SECRET_SUFFIX)
        secret = {k: base64.b64decode(v).decode()
                  for k, v in ((body or {}).get("data") or {}).items()} if body else None
    snap = snapshot.join(data, secret)
    ctx.snapshots[uid] = snap
    return snap


def spec_at(profile: dict[str, Any], snap: snapshot.Snapshot) -> dict[str, Any]:
    """The profile spec with its content replaced by a snapshot's."""
    spec = {k: v for k, v in (profile.get("spec") or {}).items() if k in snapshot.NOT_CONTENT}
    spec.update(snap.spec)
    return spec


async def assigned(ctx: context.Context, profile: dict[str, Any], number: int,
                   ) -> tuple[types.ProfileSpec, snapshot.Snapshot | None]:
    """The parsed spec and the snapshot of revision `number` (the one a summary was assigned).

    Used by the summary and drift reconcilers, so both work on the same content.
    """
    snap = await at(ctx, profile, number)
    if snap is None:
        return types.ProfileSpec.from_dict(profile.get("spec") or {}), None
    return types.ProfileSpec.from_dict(spec_at(profile, snap)), snap
