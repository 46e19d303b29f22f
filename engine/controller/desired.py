"""Build what one (profile, cluster) pair should have: releases with final values, manifests.

Used by the ClusterSummary and drift reconcilers (and `flotilla plan`). Works
on the snapshot of the revision the cluster was assigned (catalog entries,
ConfigMap and Secret data as they were when it was recorded), and calls the
pure modules: `catalog.resolve` for services
and charts, `render` for Jinja2 values over the cluster and for manifests,
`inventory.DesiredItem` for content hashes. Anything unusable raises SpecError
naming the field, before a single write happens.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from engine import (
    catalog,
    deployers,
    errors,
    inventory,
    patches,
    render,
    snapshot,
    templaterefs,
)
from engine.controller import context, kustomized, profiles, revisions
from engine.model import types
from engine.model.helmopts import HelmOptions


@dataclass
class Desired:
    items: list[inventory.DesiredItem]
    values: dict[inventory.Key, dict[str, Any]] = field(default_factory=dict)
    releases: dict[str, catalog.ReleasePlan] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        return render.stable_hash([(list(i.key), i.hash) for i in self.items])


async def _ref_data(ctx: context.Context, snap: snapshot.Snapshot,
                    ref: snapshot.Reference, *, marked: bool = False) -> snapshot.RefData:
    """A reference's data from the snapshot; with `marked`, with its template mark."""
    if snap.has(ref.key):
        data = snap.data(ref.key)
    else:  # a revision recorded before snapshots existed: its references are read live
        data = await revisions.read_reference(ctx, ref)
    return data if marked else snapshot.without_mark(data)


def _policy_data(data: snapshot.RefData, template_ctx: Mapping[str, Any],
                 where: str) -> dict[str, str]:
    """A policyRef's manifests, rendered for this cluster when the object is a template."""
    own = snapshot.without_mark(data) or {}
    if not snapshot.templated(data):
        return dict(own)
    return {key: str(render.template_values(text, template_ctx, field=f"{where} key {key}"))
            for key, text in own.items()}


async def _resources(ctx: context.Context, profile: dict[str, Any], spec: types.ProfileSpec,
                     cluster: dict[str, Any], snap: snapshot.Snapshot) -> Callable[[str], Any]:
    """getResource() for this cluster's templates: the snapshot's objects (read live when
    the revision predates the cluster's match, or snapshots)."""
    found: dict[str, Any] = {}
    for res in templaterefs.resolve(spec.template_resource_refs, cluster,
                                    profile_kind=profile["kind"],
                                    profile_namespace=profile["metadata"].get("namespace") or ""):
        kept = snap.secrets if res.secret else snap.configmaps
        data = kept[res.key] if res.key in kept else await revisions.read_resource(ctx, res)
        found[res.identifier] = templaterefs.release(data)
    return templaterefs.getter(found)


def _catalog(ctx: context.Context, snap: snapshot.Snapshot) -> dict[str, types.CatalogServiceSpec]:
    if not snap.complete:
        return profiles.catalog_specs(ctx)
    out = {}
    for name, raw in snap.catalog.items():
        out[name] = types.CatalogServiceSpec.from_dict(raw, name=name)
    return out


async def build(ctx: context.Context, profile: dict[str, Any], spec: types.ProfileSpec,
                cluster: dict[str, Any], snap: snapshot.Snapshot) -> Desired:
    """What `snap` (the revision the cluster was assigned) puts on this cluster."""
    template_ctx = {"cluster": cluster,
                    "getResource": await _resources(ctx, profile, spec, cluster, snap)}
    refs = {r.field: r for r in snapshot.references(
        spec, profile_kind=profile["kind"], profile_namespace=profile["metadata"].get(
            "namespace") or "")}
    releases = catalog.resolve(spec, _catalog(ctx, snap))
    transform = await _transform(ctx, snap, spec, refs, template_ctx)
    desired = Desired(items=[])
    for rel in releases:
        values: Any = dict(rel.values)
        if rel.values_template:
            templated = render.template_yaml(rel.values_template, template_ctx, field=rel.field +
                                             ".values")
            values = render.deep_merge(values, templated or {})
        values = render.template_values(values, template_ctx, field=rel.field + ".values")
        for i in range(len(rel.values_from)):
            where = f"{rel.field}.valuesFrom[{i}]"
            data = await _ref_data(ctx, snap, refs[where])
            for key in sorted(data or {}):
                try:
                    extra = yaml.safe_load(render.template_values(
                        (data or {})[key], template_ctx, field=where))
                except yaml.YAMLError as exc:
                    raise errors.SpecError(f"{key} is not YAML: {exc}", field=where,
                                           reason="InvalidValues") from exc
                if isinstance(extra, dict):
                    values = render.deep_merge(values, extra)
        if not transform.empty:
            rel = dataclasses.replace(rel, post_render=transform.to_json())
        item = inventory.DesiredItem.for_release(rel, values=values)
        desired.items.append(item)
        desired.values[item.key] = values
        desired.releases[rel.release_name] = rel
    chosen: dict[inventory.Key, tuple[int, inventory.DesiredItem]] = {}
    for i, policy in enumerate(spec.policy_refs):
        if policy.deployment_type is types.DeploymentType.LOCAL:
            continue  # not supported: the profile's Unsupported condition says so
        where = f"spec.policyRefs[{i}]"
        data = _policy_data(await _ref_data(ctx, snap, refs[where], marked=True),
                            template_ctx, where)
        objects = transform.apply(render.load_manifests(data, field=where))
        for obj in objects:
            item = inventory.DesiredItem.for_object(
                obj, create_namespace=not policy.skip_namespace_creation)
            # Two refs holding one object: the lower policyRef tier's copy is deployed (a tie
            # is left to inventory.changes, which reports the object as defined twice).
            held = chosen.get(item.key)
            if held is not None and held[0] < policy.tier:
                continue
            if held is not None and held[0] > policy.tier:
                desired.items.remove(held[1])
            chosen[item.key] = (policy.tier, item)
            desired.items.append(item)
    placed = {item.key for item in desired.items}
    for item in await kustomized.items(spec, refs, lambda ref: _ref_data(ctx, snap, ref),
                                       template_ctx, transform.apply):
        if inventory.object_part(item.key) in placed:  # one live object, two features
            raise errors.SpecError(f"{deployers.for_item(item).row(item).name} is in a "
                                   "policyRef and a kustomization", field="spec",
                                   reason="DuplicateObject")
        desired.items.append(item)
    return desired


async def _transform(ctx: context.Context, snap: snapshot.Snapshot, spec: types.ProfileSpec,
                     refs: Mapping[str, snapshot.Reference],
                     template_ctx: Mapping[str, Any]) -> patches.Transform:
    """The profile's patches (templated for this cluster), extraLabels and extraAnnotations."""
    found: list[patches.Patch] = []
    for i, p in enumerate(spec.patches):
        where = f"spec.patches[{i}]"
        text = render.template_values(p.patch, template_ctx, field=f"{where}.patch")
        target = None if p.target is None else patches.Target(
            group=p.target.group, version=p.target.version, kind=p.target.kind,
            name=p.target.name, namespace=p.target.namespace,
            label_selector=p.target.label_selector,
            annotation_selector=p.target.annotation_selector)
        found.append(patches.Patch(patch=str(text), target=target, field=where))
    for i in range(len(spec.patches_from)):
        where = f"spec.patchesFrom[{i}]"
        data = await _ref_data(ctx, snap, refs[where]) or {}
        for key in sorted(data):
            text = render.template_values(data[key], template_ctx, field=f"{where} key {key}")
            for entry in patches.parse_patches(str(text), field=f"{where} key {key}"):
                target = entry.get("target")
                found.append(patches.Patch(
                    patch=str(entry["patch"]), field=f"{where} key {key}",
                    target=None if target is None else patches.Target.from_json(target)))
    transform = patches.Transform(patches=tuple(found), labels=dict(spec.extra_labels),
                                  annotations=dict(spec.extra_annotations))
    transform.check()  # a bad patch is a spec error here, not a failed helm run later
    return transform


def release_options(ctx: context.Context, summary: Mapping[str, Any], namespace: str,
                    release: str) -> HelmOptions:
    """The helm options the summary's profile gives a release it withdraws (else defaults).

    Withdrawal has only the inventory; the options come from the profile as it
    is now, as Sveltos does. A profile that no longer resolves gives defaults.
    """
    ref = (summary.get("spec") or {}).get("profileRef") or {}
    profile = ctx.store.get(ref.get("kind", ""), ref.get("namespace") or "", ref.get("name", ""))
    if profile is None:
        return HelmOptions()
    try:
        spec = types.ProfileSpec.from_dict(profile.get("spec") or {})
        plans = catalog.resolve(spec, profiles.catalog_specs(ctx))
    except errors.FlotillaError:
        return HelmOptions()
    for plan in plans:
        if plan.release_name == release and plan.namespace == namespace:
            return plan.options
    return HelmOptions()
