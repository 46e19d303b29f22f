"""Objects a kustomizationRef built (`kubectl kustomize`): applied and watched like manifests.

One of the deployers (see `base.Deployer`). The objects are built by the
summary reconciler (`controller.desired`, through `adapters.kustomizebin`)
and reach here as desired items keyed ("kustomize", group, version, kind,
namespace, name), so the summary's rows say `Kustomize` — what
`validateHealths[].featureID: Kustomize` follows — and its inventory records
which feature deployed each object. Everything else is the manifests
deployer's: server-side apply with our field manager and owner marks, the
takeover check, removal, drift watches and one-object corrections. The item
is handed over with its key stripped to the object's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from engine import inventory
from engine.deployers import base, manifests
from engine.drift import fights


def _as_object(item: inventory.DesiredItem) -> inventory.DesiredItem:
    return dataclasses.replace(item, key=inventory.object_part(item.key))


class Kustomize:
    watch_selector = manifests.Manifests.watch_selector

    def __init__(self) -> None:
        self._objects = manifests.Manifests()

    def row(self, item: inventory.DesiredItem) -> base.Row:
        return dataclasses.replace(self._objects.row(_as_object(item)), kind="Kustomize")

    def depends_on(self, item: inventory.DesiredItem) -> tuple[str, ...]:
        return ()

    async def apply(self, target: base.Target, item: inventory.DesiredItem,
                    values: Mapping[str, Any], publish: base.Publish | None) -> None:
        await base.refuse_cluster_scoped(target, [_as_object(item).body],  # type: ignore[list-item]
                                         field="spec.kustomizationRefs")
        await self._objects.apply(target, _as_object(item), values, publish)

    async def still_ours(self, target: base.Target, item: inventory.DesiredItem) -> None:
        await self._objects.still_ours(target, _as_object(item))

    async def remove(self, target: base.Target, key: inventory.Key) -> None:
        await self._objects.remove(target, inventory.object_part(key))

    async def health(self, target: base.Target,
                     item: inventory.DesiredItem) -> tuple[bool, str]:
        return await self._objects.health(target, _as_object(item))

    async def would(self, target: base.Target, item: inventory.DesiredItem,
                    values: Mapping[str, Any]) -> str:
        return await self._objects.would(target, _as_object(item), values)

    async def plan_line(self, target: base.Target, item: inventory.DesiredItem,
                        values: Mapping[str, Any]) -> str:
        return "kustomize: " + await self._objects.plan_line(target, _as_object(item), values)

    async def watched(self, target: base.Target,
                      item: inventory.DesiredItem) -> list[dict[str, Any]]:
        return await self._objects.watched(target, _as_object(item))

    def unit(self, item: inventory.DesiredItem, obj_key: tuple[str, str, str, str],
             ) -> fights.Unit:
        return self._objects.unit(_as_object(item), obj_key)

    async def correct(self, target: base.Target, item: inventory.DesiredItem,
                      values: Mapping[str, Any]) -> None:
        await self._objects.correct(target, _as_object(item), values)
