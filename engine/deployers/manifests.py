"""Plain objects (policyRefs): server-side applied with our field manager and owner marks.

One of the deployers (see `base.Deployer`). An object is its own unit: it is
applied, checked for a takeover, removed, watched and corrected alone, and
`driftExclusions` are stripped before every apply so an excluded path keeps
whatever another actor (an HPA, say) set there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine import api, drift, inventory
from engine.adapters import workload
from engine.deployers import base
from engine.drift import fights


def _body(item: inventory.DesiredItem) -> Mapping[str, Any]:
    assert not item.is_release
    body: Mapping[str, Any] = item.body  # type: ignore[assignment]
    return body


class Manifests:
    # Drift watches select these objects by the label our field manager puts on them.
    watch_selector = f"{api.MANAGED_BY_LABEL}={api.MANAGED_BY}"

    def row(self, item: inventory.DesiredItem) -> base.Row:
        _group, _version, kind, ns, name = item.key
        return base.Row(name=f"{kind}/{ns + '/' if ns else ''}{name}", kind="Manifests")

    def depends_on(self, item: inventory.DesiredItem) -> tuple[str, ...]:
        return ()

    async def apply(self, target: base.Target, item: inventory.DesiredItem,
                    values: Mapping[str, Any], publish: base.Publish | None) -> None:
        body = _body(item)
        await base.refuse_cluster_scoped(target, [body], field="spec.policyRefs")
        await target.conn.workload.apply(
            body, target.owner, item.hash, exclusions=drift.exclusions_for(target.pspec, body),
            taken=target.taken, create_namespace=item.create_namespace)

    async def still_ours(self, target: base.Target, item: inventory.DesiredItem) -> None:
        await target.conn.workload.still_ours(item.key, target.owner)

    async def remove(self, target: base.Target, key: inventory.Key) -> None:
        await target.conn.workload.delete(key, target.owner)

    async def health(self, target: base.Target,
                     item: inventory.DesiredItem) -> tuple[bool, str]:
        return True, ""  # applied is healthy; validateHealths judge objects beyond that

    async def would(self, target: base.Target, item: inventory.DesiredItem,
                    values: Mapping[str, Any]) -> str:
        verb, detail = await change(target, item)
        return {"create": "would create", "conflict": f"would conflict with {detail}",
                "update": f"would update: {detail}"}.get(verb, "would do nothing")

    async def plan_line(self, target: base.Target, item: inventory.DesiredItem,
                        values: Mapping[str, Any]) -> str:
        meta = _body(item)["metadata"]
        what = f"{_body(item)['kind']} " \
               f"{meta.get('namespace') + '/' if meta.get('namespace') else ''}{meta['name']}"
        verb, detail = await change(target, item)
        if verb == "conflict":
            return f"conflict {what}: owned by {detail}"
        return f"{verb} {what}" + (f": {detail}" if detail else "")

    async def watched(self, target: base.Target,
                      item: inventory.DesiredItem) -> list[dict[str, Any]]:
        return [workload.marked(_body(item), target.owner, item.hash)]

    def unit(self, item: inventory.DesiredItem, obj_key: tuple[str, str, str, str],
             ) -> fights.Unit:
        return fights.object_unit(*obj_key)

    async def correct(self, target: base.Target, item: inventory.DesiredItem,
                      values: Mapping[str, Any]) -> None:
        body = _body(item)
        await target.conn.workload.apply(body, target.owner, item.hash,
                                         exclusions=drift.exclusions_for(target.pspec, body),
                                         create_namespace=item.create_namespace)


async def change(target: base.Target, item: inventory.DesiredItem) -> tuple[str, str]:
    """What applying the object would do now: (create|conflict|update|unchanged, detail).

    The detail is the winning owner of a conflict or the changed JSON pointers of an update.
    """
    body = _body(item)
    meta = body["metadata"]
    live = await target.conn.client.get(body["apiVersion"], body["kind"], meta.get("namespace"),
                                        meta["name"])
    if live is None:
        return "create", ""
    holder, tier = workload.owner_of(live)
    if inventory.decide_ownership(current_owner=holder, current_tier=tier, me=target.owner.ref,
                                  my_tier=target.owner.tier) is inventory.Ownership.CONFLICT:
        return "conflict", str(holder)
    report = drift.diff(workload.marked(body, target.owner, item.hash), live)
    return ("update", ", ".join(report.paths)) if report.drifted else ("unchanged", "")
