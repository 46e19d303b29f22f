"""Build what one (profile, cluster) pair should have: releases with final values, manifests.

Used by the ClusterSummary reconciler (and `flotilla plan`). Reads the
catalog, ConfigMaps and Secrets from the controller's store or the
management API, and calls the pure modules: `catalog.resolve` for services
and charts, `render` for Jinja2 values over the cluster and for manifests,
`plan.DesiredItem` for content hashes. Anything unusable raises SpecError
naming the field, before a single write happens.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import yaml

from engine import catalog, errors, plan, render
from engine.controller import context, profiles
from engine.model import types


@dataclass
class Desired:
    items: list[plan.DesiredItem]
    values: dict[plan.Key, dict[str, Any]] = field(default_factory=dict)
    releases: dict[str, catalog.ReleasePlan] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        return render.stable_hash([(list(i.key), i.hash) for i in self.items])


async def _ref_data(ctx: context.Context, kind: str, namespace: str, name: str, *,
                    optional: bool, field_path: str) -> dict[str, str] | None:
    if kind == "ConfigMap":
        body = ctx.store.get("ConfigMap", namespace, name)
        if body is None:  # the store only holds ConfigMaps we were told about; ask once
            body = await ctx.mgmt.get("v1", "ConfigMap", namespace, name)
        data = dict((body or {}).get("data") or {}) if body else None
    else:
        body = await ctx.mgmt.get("v1", "Secret", namespace, name)
        data = {k: base64.b64decode(v).decode() for k, v in (body.get("data") or {}).items()} \
            if body else None
    if data is None and not optional:
        raise errors.SpecError(f"{kind} {namespace}/{name} not found", field=field_path,
                               reason="ReferenceNotFound")
    return data


def _ref_namespace(profile: dict[str, Any], given: str) -> str:
    # A Profile may only read references in its own namespace (tenant scope).
    if profile["kind"] == "Profile":
        return str(profile["metadata"]["namespace"])
    return given


async def build(ctx: context.Context, profile: dict[str, Any], spec: types.ProfileSpec,
                cluster: dict[str, Any]) -> Desired:
    template_ctx = {"cluster": cluster}
    releases = catalog.resolve(spec, profiles.catalog_specs(ctx))
    desired = Desired(items=[])
    for rel in releases:
        values: Any = dict(rel.values)
        if rel.values_template:
            templated = render.template_yaml(rel.values_template, template_ctx, field=rel.field +
                                             ".values")
            values = render.deep_merge(values, templated or {})
        values = render.template_values(values, template_ctx, field=rel.field + ".values")
        for i, ref in enumerate(rel.values_from):
            where = f"{rel.field}.valuesFrom[{i}]"
            data = await _ref_data(ctx, str(ref.kind), _ref_namespace(profile, ref.namespace),
                                   ref.name, optional=ref.optional, field_path=where)
            for key in sorted(data or {}):
                try:
                    extra = yaml.safe_load(render.template_values(
                        (data or {})[key], template_ctx, field=where))
                except yaml.YAMLError as exc:
                    raise errors.SpecError(f"{key} is not YAML: {exc}", field=where,
                                           reason="InvalidValues") from exc
                if isinstance(extra, dict):
                    values = render.deep_merge(values, extra)
        item = plan.DesiredItem.for_release(rel, values=values)
        desired.items.append(item)
        desired.values[item.key] = values
        desired.releases[rel.release_name] = rel
    for i, ref in enumerate(spec.policy_refs):
        where = f"spec.policyRefs[{i}]"
        data = await _ref_data(ctx, str(ref.kind), _ref_namespace(profile, ref.namespace),
                               ref.name, optional=ref.optional, field_path=where)
        for obj in render.load_manifests(data or {}, field=where):
            desired.items.append(plan.DesiredItem.for_object(obj))
    return desired
