"""ClusterProfile / Profile reconcile: select clusters, write ClusterSummaries, roll up status.

The profile reconciler never touches workload clusters. It decides which
(profile, cluster) pairs exist — each one a ClusterSummary carrying the
reason it exists — and sums their states into the profile's status and
printer columns. Input it cannot honour (CEL that does not compile, an
unknown catalog service, a version that resolves to nothing) becomes a
condition naming the field, and the existing summaries are left exactly as
they are: a bad profile never deletes what a good one deployed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from engine import api, drift, errors, inventory, tenancy, unsupported
from engine.adapters import kube
from engine.controller import context, reporting, revisions, rollout_step, store
from engine.model import conditions, types

log = logging.getLogger("flotilla.controller")


def summaries_of(ctx: context.Context, kind: str, namespace: str,
                 name: str) -> list[dict[str, Any]]:
    # The store indexes summaries by profile: no scan of the fleet's summaries.
    return ctx.store.summaries_of(kind, namespace, name)


def gone(cache: store.Store, ref: str) -> bool:
    """Whether the profile an owner mark names ("Kind/namespace/name") no longer exists.

    The cache is complete (preloaded before any reconcile), so absent means deleted —
    for example while no controller ran to withdraw it. Marks of any other shape are
    never judged stale.
    """
    kind, _, rest = ref.partition("/")
    namespace, _, name = rest.partition("/")
    if kind not in api.PROFILE_KINDS or not name:
        return False
    return cache.get(kind, namespace, name) is None


def catalog_specs(ctx: context.Context) -> dict[str, types.CatalogServiceSpec]:
    """Every catalog entry that parses; a broken entry only fails profiles that use it.

    Parsed once per catalog change (the store keeps it until a CatalogService changes).
    """
    return ctx.store.catalog_specs()


def _selections(ctx: context.Context, kind: str, namespace: str,
                name: str) -> list[tuple[str, str, str]]:
    """The (namespace, name, reason) rows a profile deploys to, sorted.

    The store's plan index holds every profile's selection (select.select_clusters'
    rules, kept current per change, parsed from the same cached body), already sorted
    and kept until it changes; it raises this profile's CEL compile error.
    """
    scope = namespace if kind == api.PROFILE else None
    own = ctx.store.plan.sorted_selection((kind, namespace, name))
    chosen: dict[tuple[str, str], str] | None = None
    # Sveltos semantics: a profile others depend on also goes wherever they go.
    for other in ctx.store.all(kind):
        if name not in ((other.get("spec") or {}).get("dependsOn") or []):
            continue
        meta = other["metadata"]
        try:
            found = ctx.store.plan.selection((kind, meta.get("namespace") or "", meta["name"]))
        except errors.FlotillaError:
            continue
        if chosen is None:
            chosen = {(ns, n): reason for ns, n, reason in own}
        for key in found:
            if scope is None or key[0] == scope:
                chosen.setdefault(key, "DependsOn")
    if chosen is None:
        return list(own)  # no dependent: the index's rows as they are
    return sorted((ns, n, reason) for (ns, n), reason in chosen.items())


def wake(ctx: context.Context) -> None:
    """Queue the profiles cluster changes touched (the store's plan index knows which),
    and the profiles each of them depends on, which go wherever it goes."""
    for kind, namespace, name in sorted(ctx.store.take_woken()):
        ctx.enqueue(("profile", kind, namespace, name))
        body = ctx.store.get(kind, namespace, name) or {}
        for dep in (body.get("spec") or {}).get("dependsOn") or []:
            if isinstance(dep, str):
                ctx.enqueue(("profile", kind, namespace, dep))


def dependency_cycle(name: str, depends_on: Callable[[str], Sequence[str]]) -> list[str]:
    """The dependsOn path from `name` back to itself ([] when there is none).

    Without this check a profile that depends (through others) on itself waited for
    itself forever, reporting only "waiting for" and never the field at fault.
    """
    stack: list[tuple[str, list[str]]] = [(name, [name])]
    seen: set[str] = set()
    while stack:
        current, path = stack.pop()
        for dep in depends_on(current):
            if dep == name:
                return [*path, dep]
            if dep not in seen:
                seen.add(dep)
                stack.append((dep, [*path, dep]))
    return []


def _check_depends_on(ctx: context.Context, kind: str, namespace: str, name: str,
                      spec: types.ProfileSpec) -> None:
    def edges(profile: str) -> Sequence[str]:
        if profile == name:
            return spec.depends_on
        body = ctx.store.get(kind, namespace, profile)
        deps = ((body or {}).get("spec") or {}).get("dependsOn") or []
        return [str(d) for d in deps if isinstance(d, str)]
    cycle = dependency_cycle(name, edges)
    if cycle:
        first = spec.depends_on.index(cycle[1])
        raise errors.SpecError(f"dependsOn forms a cycle: {' -> '.join(cycle)}",
                               field=f"spec.dependsOn[{first}]", reason="DependencyCycle")


def _check_pointers(spec: types.ProfileSpec) -> None:
    for i, exclusion in enumerate(spec.drift_exclusions):
        for j, pointer in enumerate(exclusion.paths):
            try:
                drift.parse_pointer(pointer)
            except ValueError as exc:
                raise errors.SpecError(str(exc), field=f"spec.driftExclusions[{i}].paths[{j}]",
                                       reason="InvalidPointer") from exc


async def reconcile(ctx: context.Context, kind: str, namespace: str, name: str) -> float | None:
    body = ctx.store.get(kind, namespace, name)
    if body is None:
        return None
    meta = body["metadata"]
    existing = summaries_of(ctx, kind, namespace, name)
    if meta.get("deletionTimestamp"):
        return await _finalize(ctx, body, existing)
    if api.PROFILE_FINALIZER not in (meta.get("finalizers") or []):
        await ctx.mgmt.patch(body["apiVersion"], kind, namespace or None, name, {"metadata": {
            "finalizers": [*(meta.get("finalizers") or []), api.PROFILE_FINALIZER]}})
    try:
        spec = ctx.store.profile_spec(kind, body)
        _check_pointers(spec)
        _check_depends_on(ctx, kind, namespace, name, spec)
        if kind == api.PROFILE:
            tenancy.check_profile(spec, await tenant_limits(ctx, namespace))
        chosen = _selections(ctx, kind, namespace, name)
        ctx.store.check_releases(kind, body, spec)  # surfaces unknown services/versions here
        snap = await revisions.build(ctx, body, spec, clusters=[
            c for c in (ctx.store.get("WorkloadCluster", cns, cname) for cns, cname, _ in chosen)
            if c is not None])
    except errors.FlotillaError as exc:
        await report_error(ctx, body, exc)
        return None
    in_use = {int((s.get("status") or {}).get("revision") or 0) for s in existing}
    revision, snap, note = await revisions.target(ctx, body, snap, in_use=in_use)
    spec_hash = snap.digest()
    wanted = {inventory.summary_name(kind, name, cname): (cns, cname, reason)
              for cns, cname, reason in chosen}
    outcome = await rollout_step.assign(ctx, body, spec, revision, wanted, existing)
    if note:
        outcome.status["message"] = f"{outcome.status.get('message') or ''} ({note})".strip()
    for sname, (cns, cname, reason) in wanted.items():
        if sname in outcome.assigned:
            rev, rev_hash = outcome.assigned[sname]
            try:
                await _ensure_summary(ctx, body, sname, cns, cname, reason, rev, rev_hash)
            except kube.ApiError as exc:
                # A cluster whose namespace is being deleted takes no new summary; it must
                # not hold up (and fail, over and over) the profile's other clusters.
                if exc.status != 403 or "being terminated" not in str(exc):
                    raise
                log.info("%s %s: skipping %s/%s, its namespace is being deleted", kind,
                         name, cns, cname)
    for type_, reason, message in outcome.events:
        await ctx.recorder.event(body, type=type_, reason=reason, message=message)
    leave = spec.stop_matching_behavior == types.StopMatchingBehavior.LEAVE_POLICIES
    for summary in existing:
        smeta = summary["metadata"]
        if smeta["name"] in wanted or smeta.get("deletionTimestamp"):
            continue
        if leave:
            await ctx.mgmt.patch(summary["apiVersion"], "ClusterSummary", smeta["namespace"],
                                 smeta["name"], {"metadata": {"annotations": {
                                     api.LEAVE_POLICIES_ANNOTATION: "true"}}})
        await ctx.mgmt.delete(summary["apiVersion"], "ClusterSummary", smeta["namespace"],
                              smeta["name"])
        await ctx.recorder.event(body, type="Normal", reason="ClusterUnmatched",
                                 message=f"{smeta['namespace']}/{summary['spec']['clusterRef']['name']}"
                                 f" no longer matches: {'leaving' if leave else 'withdrawing'}"
                                 " its services")
    await _rollup(ctx, body, spec_hash, revision, chosen, summaries_of(ctx, kind, namespace, name),
                  outcome)
    if snap.secrets or spec.template_resource_refs:
        # Secrets (and templateResourceRefs' objects of other kinds) are not watched (a
        # cluster-wide watch costs more than it saves): re-read the referenced ones now and
        # then, so an edit becomes a revision.
        resync = ctx.settings.secret_resync
        return resync if outcome.requeue_after is None else min(outcome.requeue_after, resync)
    return outcome.requeue_after


async def tenant_limits(ctx: context.Context, namespace: str) -> tenancy.Limits:
    """What the platform team allows Profiles in `namespace` (its Namespace's annotations)."""
    return tenancy.limits_of(namespace, await ctx.mgmt.get("v1", "Namespace", None, namespace))


async def report_error(ctx: context.Context, body: dict[str, Any], exc: BaseException) -> None:
    """A failure of this profile's reconcile, as Ready=False naming the cause, plus an Event."""
    reason, message, _ = reporting.describe(exc)
    status = dict(body.get("status") or {})
    status["phase"] = "Failed"
    status["conditions"] = conditions.set_condition(
        status.get("conditions"), type="Ready", status=False, reason=reason, message=message,
        observed_generation=body["metadata"].get("generation"), now=reporting.now())
    if await reporting.patch_status(ctx.mgmt, body, status, cache=ctx.store):
        await ctx.recorder.event(body, type="Warning", reason=reason, message=message)


async def _ensure_summary(ctx: context.Context, profile: dict[str, Any], sname: str, cns: str,
                          cname: str, reason: str, revision: int, spec_hash: str) -> None:
    pmeta = profile["metadata"]
    spec = {
        "profileRef": {"kind": profile["kind"], "namespace": pmeta.get("namespace") or "",
                       "name": pmeta["name"]},
        "clusterRef": {"namespace": cns, "name": cname},
        "reason": reason, "revision": revision, "hash": spec_hash,
    }
    current = ctx.store.get("ClusterSummary", cns, sname)
    old_spec = dict((current or {}).get("spec") or {})
    if current is not None and {k: v for k, v in old_spec.items() if k != "assignedAt"} == spec \
            and not current["metadata"].get("deletionTimestamp"):
        return  # nothing changed: no management write either
    # The progress deadline counts from the moment a cluster is told to move.
    moved = old_spec.get("revision") != revision or not old_spec.get("assignedAt")
    spec["assignedAt"] = reporting.now_precise() if moved else old_spec["assignedAt"]
    labels = {api.PROFILE_KIND_LABEL: profile["kind"], api.PROFILE_NAME_LABEL: pmeta["name"],
              api.CLUSTER_NAME_LABEL: cname}
    if pmeta.get("namespace"):
        labels[api.PROFILE_NAMESPACE_LABEL] = pmeta["namespace"]
    body = {"apiVersion": api.API_VERSION, "kind": api.CLUSTER_SUMMARY,
            "metadata": {"name": sname, "namespace": cns, "labels": labels,
                         "finalizers": [api.SUMMARY_FINALIZER]},
            "spec": spec}
    if current is not None and current["metadata"].get("deletionTimestamp"):
        return  # being withdrawn; it is recreated once the old one is gone
    written = await ctx.mgmt.apply(body)
    # Cached now, so the next decision sees this move; and queued now, because the watch
    # event will find the cache already up to date and trigger nothing.
    ctx.store.put("ClusterSummary", written)
    ctx.enqueue(("summary", cns, sname))
    if current is None:
        await ctx.recorder.event(profile, type="Normal", reason="ClusterMatched",
                                 message=f"{cns}/{cname} matches ({reason})")


async def _finalize(ctx: context.Context, body: dict[str, Any],
                    existing: list[dict[str, Any]]) -> float | None:
    """Profile deleted: withdraw from every cluster, then let the profile go."""
    for summary in existing:
        smeta = summary["metadata"]
        if not smeta.get("deletionTimestamp"):
            await ctx.mgmt.delete(summary["apiVersion"], "ClusterSummary", smeta["namespace"],
                                  smeta["name"])
    if existing:
        return 1.0  # come back when the summaries have withdrawn and gone
    meta = body["metadata"]
    # The profile's kept rollout states go with it (owner as rollout_step.assign names it).
    rollout_step.STATES.forget((body.get("kind"), meta.get("namespace") or "", meta["name"],
                                meta.get("uid")))
    finalizers = [f for f in meta.get("finalizers") or [] if f != api.PROFILE_FINALIZER]
    with contextlib.suppress(kube.NotFound):
        await ctx.mgmt.patch(body["apiVersion"], body["kind"], meta.get("namespace") or None,
                             meta["name"], {"metadata": {"finalizers": finalizers}})
    return None


async def _rollup(ctx: context.Context, body: dict[str, Any], spec_hash: str, revision: int,
                  chosen: list[tuple[str, str, str]], summaries: list[dict[str, Any]],
                  outcome: rollout_step.Outcome) -> None:
    gen = body["metadata"].get("generation")
    current = [s for s in summaries if not s["metadata"].get("deletionTimestamp")]
    sts = [s.get("status") or {} for s in current]
    updated = sum(1 for st in sts if st.get("phase") == "Provisioned"
                  and st.get("revision") == revision)
    ready = sum(1 for st in sts if st.get("phase") == "Provisioned" and st.get("healthy")
                and st.get("revision") == revision)
    failed = sum(1 for st in sts if st.get("phase") in ("Failed", "Conflict"))
    drifted = sum(1 for st in sts if st.get("drift"))
    conflicts = [s for s in current if (s.get("status") or {}).get("phase") == "Conflict"]
    matched = len(chosen)
    rollout_phase = rollout_step.phase_for(outcome.status)
    if rollout_phase in ("Paused", "RollingBack", "Failed"):
        phase = rollout_phase
    elif failed:
        phase = "Degraded"
    elif matched == 0:
        phase = "Pending"
    elif ready == matched:
        phase = "Ready"
    else:
        phase = "Progressing"
    status = dict(body.get("status") or {})
    status.update(
        matchingClusters=[{"namespace": ns, "name": n} for ns, n, _ in chosen],
        matched=matched, updated=updated, ready=ready, failed=failed, drifted=drifted,
        phase=phase, revision=revision, specHash=spec_hash, observedGeneration=gen,
        rollout=outcome.status)
    now = reporting.now()
    cond = status.get("conditions")
    cond = conditions.set_condition(
        cond, type="Ready", status=phase == "Ready", reason=phase,
        message=f"{ready}/{matched} clusters ready" + (f", {failed} failed" if failed else ""),
        observed_generation=gen, now=now)
    cond = conditions.set_condition(
        cond, type="Paused", status=phase == "Paused", reason=str(outcome.status.get("phase")),
        message=str(outcome.status.get("message", "")), observed_generation=gen, now=now)
    cond = conditions.set_condition(
        cond, type="Progressing", status=phase in ("Progressing", "RollingBack"), reason=phase,
        message=f"{updated}/{matched} clusters at revision {revision}",
        observed_generation=gen, now=now)
    failing = [f"{s['spec']['clusterRef']['name']}: {(s.get('status') or {}).get('message', '')}"
               for s in current if (s.get("status") or {}).get("phase") == "Failed"]
    cond = conditions.set_condition(
        cond, type="Degraded", status=bool(failing), reason="Failed" if failing else "AsExpected",
        message="; ".join(failing)[:900], observed_generation=gen, now=now)
    cond = conditions.set_condition(
        cond, type="Conflict", status=bool(conflicts),
        reason="Conflict" if conflicts else "NoConflict",
        message="; ".join((s.get("status") or {}).get("message", "") for s in conflicts)[:900],
        observed_generation=gen, now=now)
    cond = conditions.set_condition(
        cond, type="Drifted", status=bool(drifted), reason="Drifted" if drifted else "InSync",
        message=f"{drifted} clusters drifted", observed_generation=gen, now=now)
    # Sveltos fields accepted but not honoured are said, never silently ignored.
    found = unsupported.fields(body.get("spec") or {})
    was = conditions.get_condition(status.get("conditions"), "Unsupported") or {}
    cond = conditions.set_condition(
        cond, type="Unsupported", status=bool(found),
        reason=unsupported.REASON if found else "AllSupported",
        message=unsupported.message(found)[:900], observed_generation=gen, now=now)
    status["conditions"] = cond
    written = await reporting.patch_status(ctx.mgmt, body, status, cache=ctx.store)
    if written and found and (was.get("status") != "True" or was.get("message") !=
                              unsupported.message(found)[:900]):
        await ctx.recorder.event(body, type="Warning", reason=unsupported.REASON,
                                 message=unsupported.message(found)[:900])
    if written and phase == "Ready" and (body.get("status") or {}).get("phase") != "Ready":
        await ctx.recorder.event(body, type="Normal", reason="Ready",
                                 message=f"all {matched} clusters ready at revision {revision}")
