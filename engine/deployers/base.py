"""The one interface every kind of deployed thing implements, and what a deployer is given.

Used by the summary reconciler's deployment step, drift detection and
`flotilla plan`: they hold an `inventory.DesiredItem` and ask the deployer
for its kind (`deployers.for_item`) — to apply it, remove it, judge its
health, say what applying it would do, list the live objects to watch for
drift and re-apply it when they drift. A new kind of thing (Kustomize, say)
is one new module implementing `Deployer`, and one row in the table of
`deployers/__init__.py`; no reconciler grows an `if kind == …` branch.

A deployer is handed a `Target` — the cluster connection, the owner and the
profile spec, and the two services it may need from the controller (chart
fetching and progress publishing) — never the controller's whole context.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from engine import errors, health, inventory, tenancy
from engine.adapters import connections, kube, workload
from engine.catalog import ReleasePlan
from engine.drift import fights
from engine.model import types
from engine.model.helmopts import HelmOptions

FetchChart = Callable[[ReleasePlan], Awaitable[Path]]
Publish = Callable[[str], Awaitable[None]]


@dataclass
class Target:
    """One (profile, cluster) pair as the deployers see it."""

    conn: connections.Connection
    owner: workload.Owner
    pspec: types.ProfileSpec
    fetch_chart: FetchChart
    # The helm options a recorded release is removed with (withdrawal has only its key).
    release_options: Callable[[str, str], HelmOptions | None] = lambda ns, name: None
    # Owners we took something over from (a lower tier wins); the caller tells them.
    taken: list[str] = field(default_factory=list)
    # A Profile's namespace limits (None for a ClusterProfile, which is not limited).
    limits: tenancy.Limits | None = None


@dataclass(frozen=True)
class Row:
    """How a desired item is named in the summary's status."""

    name: str
    kind: str  # "HelmRelease" | "Manifests"
    version: str = ""


class Deployer(Protocol):
    """What the reconcilers need of one kind of deployed thing."""

    watch_selector: str  # label selector drift watches use for the objects it deploys

    def row(self, item: inventory.DesiredItem) -> Row: ...

    def depends_on(self, item: inventory.DesiredItem) -> tuple[str, ...]:
        """Names (rows) that must be healthy before this item is applied."""
        ...

    async def apply(self, target: Target, item: inventory.DesiredItem,
                    values: Mapping[str, Any], publish: Publish | None) -> None: ...

    async def still_ours(self, target: Target, item: inventory.DesiredItem) -> None:
        """Raise ConflictError when a lower tier has taken the item over since."""
        ...

    async def remove(self, target: Target, key: inventory.Key) -> None: ...

    async def health(self, target: Target, item: inventory.DesiredItem) -> tuple[bool, str]: ...

    async def would(self, target: Target, item: inventory.DesiredItem,
                    values: Mapping[str, Any]) -> str:
        """What applying would do now (DryRun and `flotilla plan`), changing nothing."""
        ...

    async def plan_line(self, target: Target, item: inventory.DesiredItem,
                        values: Mapping[str, Any]) -> str:
        """One line of `flotilla plan`: install/upgrade/create/update … with what changes."""
        ...

    async def watched(self, target: Target,
                      item: inventory.DesiredItem) -> list[dict[str, Any]]:
        """The objects drift detection compares for this item, as they should be live."""
        ...

    def unit(self, item: inventory.DesiredItem, obj_key: tuple[str, str, str, str],
             ) -> fights.Unit:
        """What one correction of a drifted object re-applies (the fight back-off key)."""
        ...

    async def correct(self, target: Target, item: inventory.DesiredItem,
                      values: Mapping[str, Any]) -> None: ...


async def check(conn: connections.Connection, check: types.HealthCheck,
                default_ns: str | None, where: str) -> health.HealthResult:
    """One health check over the live objects it selects (catalog checks, validateHealths)."""
    if check.job_check is not None:  # names no objects; evaluate() says it is not supported
        return health.evaluate(check, [], field=where)
    api_version = f"{check.group}/{check.version}" if check.group else check.version
    try:
        objects = await conn.workload.objects_for(
            api_version=api_version, kind=check.kind, namespace=check.namespace or default_ns,
            name=check.object_name, label_selector=check.list_selector)
    except kube.NotFound as exc:  # the kind is not served (yet): not healthy, not an error
        return health.HealthResult(False, str(exc))
    if check.script:
        # A Lua script may take up to its time limit per object: off the event loop.
        return await asyncio.to_thread(health.evaluate, check, objects, field=where)
    return health.evaluate(check, objects, field=where)


async def refuse_cluster_scoped(target: Target, objects: Sequence[Mapping[str, Any]],
                                *, field: str) -> None:
    """SpecError when a tenant (a Profile whose namespace does not allow it) would deploy a
    cluster-scoped object; asks the workload cluster's discovery for each kind's scope."""
    if target.limits is None or target.limits.allow_cluster_scoped:
        return
    found: list[tuple[str, str, str]] = []
    for obj in objects:
        api_version, kind = str(obj.get("apiVersion") or ""), str(obj.get("kind") or "")
        try:
            namespaced = (await target.conn.client.resource(api_version, kind)).namespaced
        except errors.FlotillaError:
            namespaced = False  # not served: may be a cluster-scoped custom resource
        if not namespaced:
            found.append((api_version, kind, str((obj.get("metadata") or {}).get("name"))))
    tenancy.cluster_scoped_refusal(found, target.limits, field=field)
