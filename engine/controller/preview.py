"""`flotilla plan PROFILE`: the per-cluster diff a profile would make now, changing nothing.

Used by the CLI. Loads what the controller would read (catalog, clusters,
the profile) into a private store, selects clusters and builds the desired
state exactly as the controller does, then compares it with what is live
on each cluster: objects field by field (the pure `drift.diff`), releases
by chart and values. Only reads; never a write. For a DryRun profile the
report the controller recorded is printed the same way.
"""

from __future__ import annotations

from typing import Any

from engine import drift, errors, plan, select
from engine.adapters import connections, helm, kube, kubeconfig, workload
from engine.catalog import ReleasePlan
from engine.controller import context, deploy, desired, helmrun, reporting, revisions, store
from engine.model import types

API = context.API_VERSION
MIRROR_CONFIGMAP = ("flotilla-system", "flotilla-chart-mirrors")


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


async def _object_line(conn: connections.Connection, item: plan.DesiredItem,
                       owner: workload.Owner) -> str:
    body = item.body
    assert not isinstance(body, ReleasePlan)
    meta = body["metadata"]
    what = f"{body['kind']} {meta.get('namespace') + '/' if meta.get('namespace') else ''}" \
           f"{meta['name']}"
    verb, detail = await deploy.object_change(conn, item, owner)
    if verb == "conflict":
        return f"conflict {what}: owned by {detail}"
    return f"{verb} {what}" + (f": {detail}" if detail else "")


async def _release_line(ctx: context.Context, conn: connections.Connection,
                        item: plan.DesiredItem, values: dict[str, Any]) -> str:
    rel = item.body
    assert isinstance(rel, ReleasePlan)
    what = f"HelmRelease {rel.namespace}/{rel.release_name} ({rel.chart_name} {rel.chart_version})"
    releases = conn.releases()
    current = await releases.revision(release=rel.release_name, namespace=rel.namespace)
    if rel.uninstall:
        return f"uninstall {what}" if current is not None else f"unchanged {what} (absent)"
    if current is None:
        return f"install {what}"
    live_values = await releases.values(release=rel.release_name, namespace=rel.namespace)
    chart = await releases.chart(release=rel.release_name, namespace=rel.namespace)
    changes = [] if chart == f"{rel.chart_name}-{rel.chart_version}" else [f"chart {chart}"]
    report = drift.diff({"values": values}, {"values": live_values})
    changes += list(report.paths)
    if report.drifted and not changes:
        changes = ["values"]
    if not changes:
        return f"unchanged {what}"
    # Only a real upgrade can drop a CRD (a server-side dry run, so lookups see the cluster).
    crds = await helmrun.removed_crds(conn, rel, await deploy.chart_dir(ctx, rel), values)
    return f"upgrade {what}: {', '.join(changes)}" + (f"; {crds}" if crds else "")


async def render_plan(kc: str, ref: str) -> str:
    kind, ns, name = ("Profile", *ref.split("/", 1)) if "/" in ref else (
        "ClusterProfile", None, ref)
    mgmt = kube.Client(kubeconfig.load(kc), name="management")
    conns = connections.Connections(context.workdir() / "plan")
    ctx = context.Context(mgmt=mgmt, store=store.Store(), connections=conns,
                          charts=helm.ChartCache(context.workdir() / "charts", helm_path(), {}),
                          recorder=reporting.Recorder(mgmt))
    lines: list[str] = []
    try:
        profile = await _load(ctx, kind, ns, name)
        ctx.store.put(kind, profile)
        spec = types.ProfileSpec.from_dict(profile.get("spec") or {})
        clusters = ctx.store.all("WorkloadCluster", ns if kind == "Profile" else None)
        chosen = select.select_clusters(spec, clusters, namespace=ns)
        owner = workload.Owner(kind=kind, namespace=ns or "", name=name, tier=spec.tier)
        summaries = {s["spec"]["clusterRef"]["name"]: s for s in await mgmt.list(
            API, "ClusterSummary", label_selector=f"flotilla.dev/profile-name={name}")}
        lines.append(f"{kind} {ref}: {len(chosen)} clusters selected ({spec.sync_mode})")
        # What the profile would deploy now: its spec with today's references and catalog.
        snap = await revisions.build(ctx, profile, spec)
        for sel in chosen:
            cluster = ctx.store.get("WorkloadCluster", sel.namespace, sel.name) or {}
            lines.append(f"\n{sel.namespace}/{sel.name} ({sel.reason}):")
            recorded = (summaries.get(sel.name) or {}).get("status") or {}
            if spec.sync_mode == types.SyncMode.DRY_RUN:
                for row in recorded.get("services") or []:
                    lines.append(f"  {row['name']}: {row.get('message', '')}")
                continue
            try:
                want = await desired.build(ctx, profile, spec, cluster, snap)
                conn = await ctx.connection(cluster)
                for item in want.items:
                    line = (await _release_line(ctx, conn, item, want.values[item.key])
                            if item.is_release else await _object_line(conn, item, owner))
                    lines.append(f"  {line}")
                wanted = {i.key for i in want.items}
                for row in recorded.get("inventory") or []:
                    entry = plan.InventoryEntry.from_dict(row)
                    if entry.key not in wanted:
                        lines.append(f"  delete {row['kind']} {row['namespace']}/{row['name']}")
            except errors.FlotillaError as exc:
                lines.append(f"  error: {exc}")
    finally:
        await conns.close()
        await mgmt.close()
    return "\n".join(lines)


def helm_path() -> Any:
    from engine.devfleet import testbin

    return testbin.path() / "helm"
