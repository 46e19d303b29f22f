"""What a profile's kustomizationRefs put on one cluster: built objects, as desired items.

Used by `controller.desired.build` for every (profile, cluster) pair. Reads
each referenced ConfigMap/Secret from the revision's snapshot (binary
content included), unpacks it (`engine.kustomize`), builds it with
`kubectl kustomize` (`adapters.kustomizebin`, cached by content), renders
the output with the ref's `values` when it has any, applies the profile's
patches and extra labels, and returns items keyed for the Kustomize
deployer. Refs Flotilla does not build (Flux sources, `deploymentType:
Local`) are skipped here; the profile's Unsupported condition names them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from engine import inventory, kustomize, render, snapshot
from engine.adapters import kustomizebin
from engine.model import types

ReadRef = Callable[[snapshot.Reference], Awaitable[snapshot.RefData]]
# The profile's patches, extraLabels and extraAnnotations over a list of objects.
Transform = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


async def items(spec: types.ProfileSpec, refs: Mapping[str, snapshot.Reference],
                read: ReadRef, template_ctx: Mapping[str, Any],
                transform: Transform | None) -> list[inventory.DesiredItem]:
    """The objects every buildable kustomizationRef yields, in ref order."""
    out: list[inventory.DesiredItem] = []
    for i, kust in enumerate(spec.kustomization_refs):
        if not kust.supported:
            continue
        where = f"spec.kustomizationRefs[{i}]"
        ref = refs[where]
        data = await read(ref) or {}
        files = kustomize.tree(data, field=where)
        tree, directory = kustomize.build_dir(files, path=kust.path,
                                              target_namespace=kust.target_namespace,
                                              field=where)
        text = await kustomizebin.build(
            tree, directory, digest=kustomize.digest(data, kust.path, kust.target_namespace),
            field=where, secret=ref.kind == "Secret")
        variables = await _variables(kust, refs, read, template_ctx, where)
        if variables:
            text = str(render.template_values(text, {**template_ctx, **variables},
                                              field=f"{where} (kustomize output)"))
        objects = kustomize.objects(text, field=where)
        if transform is not None:
            objects = transform(objects)
        out.extend(inventory.DesiredItem.for_kustomized(obj) for obj in objects)
    return out


async def _variables(kust: types.KustomizationRef, refs: Mapping[str, snapshot.Reference],
                     read: ReadRef, template_ctx: Mapping[str, Any],
                     where: str) -> dict[str, Any]:
    """`values`, then each `valuesFrom` object's keys, each rendered over the cluster."""
    found: dict[str, Any] = {}
    for key, value in sorted(kust.values.items()):
        found[key] = render.template_values(value, template_ctx, field=f"{where}.values.{key}")
    for j in range(len(kust.values_from)):
        at = f"{where}.valuesFrom[{j}]"
        for key, value in sorted((await read(refs[at]) or {}).items()):
            found[key] = render.template_values(value, template_ctx, field=f"{at} key {key}")
    return found
