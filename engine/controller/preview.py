"""`flotilla plan PROFILE`: the per-cluster diff a profile would make now, changing nothing.

Used by the CLI. Loads what the controller would read (catalog, clusters,
the profile) into a private store, selects clusters and builds the desired
state exactly as the controller does, then asks each item's deployer what
applying it would change on each cluster (`plan_line`: objects field by
field, releases by chart and values). Only reads; never a write. For a DryRun profile the
report the controller recorded is printed the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine import api, deployers, errors, inventory, select
from engine.adapters import connections, kube, kubeconfig, workload
from engine.adapters import helm as helm_adapter
from engine.controller import context, deployment, desired, reporting, revisions, store
from engine.model import types

API = api.API_VERSION
MIRROR_CONFIGMAP = (api.SYSTEM_NAMESPACE, api.MIRROR_CONFIGMAP)


async def _load(ctx: context.Context, kind: str, ns: str | None, name: str) -> dict[str, Any]:
    for body in await ctx.mgmt.list(API, "CatalogService"):
        ctx.store.put("CatalogService", body)
    for body in await ctx.mgmt.list(API, "WorkloadCluster"):
        ctx.store.put("WorkloadCluster", body)
    # The controller's default mirror map ConfigMap: a dry-run upgrade needs the chart.
    mirrors = await ctx.mgmt.get("v1", "ConfigMap", *MIRROR_CONFIGMAP)
    if mirrors is not None:
        ctx.store.put("MirrorConfigMap", mirrors)
    profile = await ctx.mgmt.get(API, kind, ns, name)
    if profile is None:
        raise errors.NonRetriableError(f"{kind} {name} not found", reason="NotFound")
    return profile


async def render_plan(kc: str | kubeconfig.KubeConfig, ref: str, *, helm: Path,
                      workdir: Path) -> str:
    """The plan as text; `kc` is a kubeconfig file or connection facts already read."""
    return text(await plan(kc, ref, helm=helm, workdir=workdir))


def text(found: dict[str, Any]) -> str:
    lines = [f"{found['kind']} {found['name']}: {len(found['clusters'])} clusters selected "
             f"({found['syncMode']})"]
    for entry in found["clusters"]:
        lines.append(f"\n{entry['cluster']} ({entry['reason']}):")
        lines.extend(f"  {change}" for change in entry["changes"])
        if entry.get("error"):
            lines.append(f"  error: {entry['error']}")
    return "\n".join(lines)


async def plan(kc: str | kubeconfig.KubeConfig, ref: str, *, helm: Path,
               workdir: Path) -> dict[str, Any]:
    """The plan as data: per selected cluster, one line per change (`flotilla plan -o`)."""
    kind, ns, name = ("Profile", *ref.split("/", 1)) if "/" in ref else (
        api.CLUSTER_PROFILE, None, ref)
    mgmt = kube.Client(kc if isinstance(kc, kubeconfig.KubeConfig) else kubeconfig.load(kc),
                       name="management")
    conns = connections.Connections(workdir / "plan", helm)
    ctx = context.Context(mgmt=mgmt, store=store.Store(), connections=conns,
                          charts=helm_adapter.ChartCache(workdir / "charts", helm, {}),
                          recorder=reporting.Recorder(mgmt))
    out: dict[str, Any] = {"kind": kind, "name": ref, "clusters": []}
    try:
        profile = await _load(ctx, kind, ns, name)
        ctx.store.put(kind, profile)
        spec = types.ProfileSpec.from_dict(profile.get("spec") or {})
        clusters = ctx.store.all("WorkloadCluster", ns if kind == "Profile" else None)
        chosen = select.select_clusters(spec, clusters, namespace=ns)
        owner = workload.Owner(kind=kind, namespace=ns or "", name=name, tier=spec.tier)
        summaries = {s["spec"]["clusterRef"]["name"]: s for s in await mgmt.list(
            API, "ClusterSummary", label_selector=f"{api.PROFILE_NAME_LABEL}={name}")}
        out["syncMode"] = str(spec.sync_mode)
        # What the profile would deploy now: its spec with today's references and catalog.
        snap = await revisions.build(ctx, profile, spec)
        for sel in chosen:
            cluster = ctx.store.get("WorkloadCluster", sel.namespace, sel.name) or {}
            changes: list[str] = []
            entry: dict[str, Any] = {"cluster": f"{sel.namespace}/{sel.name}",
                                     "reason": sel.reason, "changes": changes}
            out["clusters"].append(entry)
            recorded = (summaries.get(sel.name) or {}).get("status") or {}
            if spec.sync_mode == types.SyncMode.DRY_RUN:
                for row in recorded.get("services") or []:
                    changes.append(f"{row['name']}: {row.get('message', '')}")
                continue
            try:
                want = await desired.build(ctx, profile, spec, cluster, snap)
                target = deployment.target(ctx, await ctx.connection(cluster), owner, spec)
                for item in want.items:
                    changes.append(await deployers.for_item(item).plan_line(
                        target, item, want.values.get(item.key, {})))
                wanted = {i.key for i in want.items}
                for row in recorded.get("inventory") or []:
                    entry_ = inventory.InventoryEntry.from_dict(row)
                    if entry_.key not in wanted:
                        changes.append(f"delete {row['kind']} {row['namespace']}/{row['name']}")
            except errors.FlotillaError as exc:
                entry["error"] = str(exc)
    finally:
        await conns.close()
        await mgmt.close()
    return out
