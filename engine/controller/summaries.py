"""ClusterSummary reconcile: deploy one profile to one cluster, record it, judge its health.

The unit of work (as in Sveltos). Hash-gated: when the desired content hash
equals the recorded one and the summary is Provisioned and healthy, nothing
is read from or written to the workload cluster. Otherwise the pure planner
(`inventory.plan`) says which items changed; only those are applied, in
dependency order, and a release waits until the releases it depends on are
healthy on the live cluster. Withdrawal (the summary deleted) removes only
what this profile still owns, then drops the finalizer.
"""

from __future__ import annotations

import contextlib
import datetime
import time
from typing import Any

from engine import api, deployers, errors, inventory, retry, tenancy
from engine.adapters import kube, workload
from engine.controller import context, deployment, desired, gates, reporting, revisions
from engine.model import conditions, types


def owner_of(summary: dict[str, Any], tier: int = inventory.DEFAULT_TIER) -> workload.Owner:
    ref = summary["spec"]["profileRef"]
    return workload.Owner(kind=ref["kind"], namespace=ref.get("namespace") or "",
                          name=ref["name"], tier=tier)


async def reconcile(ctx: context.Context, namespace: str, name: str) -> float | None:
    summary = ctx.store.get("ClusterSummary", namespace, name)
    if summary is None:
        return None
    spec = summary.get("spec") or {}
    pref, cref = spec.get("profileRef", {}), spec.get("clusterRef", {})
    cluster = ctx.store.get("WorkloadCluster", cref.get("namespace", ""), cref.get("name", ""))
    if summary["metadata"].get("deletionTimestamp"):
        ctx.unwritten.pop((namespace, name), None)
        return await withdraw(ctx, summary, cluster)
    if (namespace, name) in ctx.unwritten:
        # The last deploy's outcome never reached the API: record it before deciding
        # anything, or the hash gate would see the old status and deploy again.
        if not await _write_unwritten(ctx, summary):
            return 5.0
        summary = ctx.store.get("ClusterSummary", namespace, name) or summary
    profile = ctx.store.get(pref.get("kind", ""), pref.get("namespace") or "",
                            pref.get("name", ""))
    if profile is None:
        # Orphaned (its profile went without our finalizer running, say): withdraw. The
        # cache is complete here, preloaded before any reconcile ran.
        with contextlib.suppress(kube.NotFound):
            await ctx.mgmt.delete(summary["apiVersion"], "ClusterSummary", namespace, name)
        return None
    status = dict(summary.get("status") or {})
    if cluster is None or (cluster.get("spec") or {}).get("paused"):
        why = "not registered" if cluster is None else "paused (spec.paused)"
        await _phase(ctx, summary, status, "Provisioning", "ClusterUnavailable",
                     f"cluster {cref.get('namespace')}/{cref.get('name')} is {why}")
        return None
    status = await _mark_reachability(ctx, summary, status, cluster)
    try:
        pspec, snap = await revisions.assigned(ctx, profile, int(spec.get("revision") or 0))
    except errors.FlotillaError as exc:
        reason, message, retriable = reporting.describe(exc)
        await _phase(ctx, summary, status, "Failed", reason, message)
        return 5.0 if retriable else None
    if snap is None:
        await _phase(ctx, summary, status, "Provisioning", "RevisionNotFound",
                     f"revision {spec.get('revision')} of the profile is not recorded (yet)")
        return 10.0
    if pspec.sync_mode == types.SyncMode.ONE_TIME and status.get("phase") == "Provisioned":
        return None  # OneTime: served once, later profile edits do not reach this cluster
    waiting = _waiting_profiles(ctx, summary, pspec)
    if waiting:
        await _phase(ctx, summary, status, "Provisioning", "WaitingForDependencies",
                     f"waiting for profile(s) {', '.join(waiting)} to be provisioned and "
                     "healthy first")
        return ctx.settings.health_poll
    try:
        want = await desired.build(ctx, profile, pspec, cluster, snap)
    except errors.FlotillaError as exc:
        reason, message, retriable = reporting.describe(exc)
        await _phase(ctx, summary, status, "Failed", reason, message, event_on=profile)
        return 10.0 if retriable else None
    token = (summary["metadata"].get("annotations") or {}).get(api.RETRY_ANNOTATION, "")
    retry_now = bool(token) and token != status.get("retryHandled")
    if not retry_now and status.get("phase") == "Failed" and status.get("failedHash") == want.hash:
        # The same input failed last time: only its backoff timer brings the next attempt,
        # not whatever unrelated event woke this summary.
        wait = _until(status.get("nextRetryTime"))
        if wait > 0:
            return wait
    verify = (namespace, name) in ctx.verify
    ctx.verify.discard((namespace, name))
    gated = (status.get("hash") == want.hash and status.get("phase") == "Provisioned"
             and status.get("revision") == spec.get("revision") and not verify)
    try:
        conn = await ctx.connection(cluster)
        if gated and status.get("healthy"):
            # Nothing to deploy; make sure drift is watched (after a restart, say).
            if ctx.drift is not None and (namespace, name) not in ctx.drift.tracked:
                await ctx.drift.track(summary, conn, want, pspec)
            return None
        if not gated and pspec.pre_deploy_checks \
                and pspec.sync_mode != types.SyncMode.DRY_RUN:
            held = await gates.first_failing(conn, pspec.pre_deploy_checks,
                                             "spec.preDeployChecks")
            if held:
                await _phase(ctx, summary, status, "Provisioning", "PreDeployChecks",
                             f"waiting for preDeployChecks {held}")
                return ctx.settings.health_poll
        owner = owner_of(summary, pspec.tier)
        target = deployment.target(ctx, conn, owner, pspec, summary)
        if owner.kind == api.PROFILE:
            target.limits = tenancy.limits_of(owner.namespace, await ctx.mgmt.get(
                "v1", "Namespace", None, owner.namespace))
        run = deployment.Deployment(ctx, target, summary, want,
                                    write_status=lambda st: _write(ctx, summary, st),
                                    retry_now=retry_now)
        if gated:
            result = await run.check_health()
        elif pspec.sync_mode == types.SyncMode.DRY_RUN:
            result = await run.dry_run()
        else:
            result = await run.apply()
        if result.phase == "Provisioned" and ctx.drift is not None:
            await ctx.drift.track(summary, conn, want, pspec)
        _notify_losers(ctx, summary, target.taken)
        if (cluster.get("status") or {}).get("ready") is False:
            # It answered us: probe it now rather than at the end of its backoff (up to
            # a minute), which also clears ClusterUnreachable on its summaries.
            ctx.enqueue(("cluster", cref.get("namespace", ""), cref.get("name", "")))
    except errors.FlotillaError as exc:
        reason, message, retriable = reporting.describe(exc)
        await _phase(ctx, summary, status, "Failed", reason, message, event_on=profile)
        return 5.0 if retriable else None
    try:
        requeue = await _record(ctx, summary, profile, status, result, want)
    except kube.NotFound:
        return None
    except (kube.ApiError, kube.Unreachable) as exc:  # kept in ctx.unwritten, retried first
        reporting.log.warning("writing the status of ClusterSummary %s/%s: %s", namespace, name,
                              reporting.describe(exc)[1])
        return 5.0
    if result.phase == "Provisioned":
        ctx.enqueue(("drift", namespace, name))  # compare once against what is live now
    return requeue


async def report_error(ctx: context.Context, namespace: str, name: str,
                       exc: BaseException) -> None:
    """A failure no step handled, on the summary (and its profile) instead of only in the log."""
    summary = ctx.store.get("ClusterSummary", namespace, name)
    if summary is None:
        return
    ref = summary["spec"]["profileRef"]
    profile = ctx.store.get(ref["kind"], ref.get("namespace") or "", ref["name"])
    reason, message, _ = reporting.describe(exc)
    await _phase(ctx, summary, dict(summary.get("status") or {}), "Failed", reason, message,
                 event_on=profile)


async def _mark_reachability(ctx: context.Context, summary: dict[str, Any],
                             status: dict[str, Any], cluster: dict[str, Any]) -> dict[str, Any]:
    """ClusterUnreachable=True while the cluster's probe fails; False once it answers again.

    What is deployed there cannot be seen meanwhile, so phase and health keep
    their last known values and this condition says why they may be stale.
    The cluster reconcile wakes the summaries whenever its status changes.
    """
    cstatus = cluster.get("status") or {}
    old = status.get("conditions") or []
    if cstatus.get("ready") is False and \
            (cstatus.get("connection") or {}).get("state") == "Unreachable":
        ready = conditions.get_condition(cstatus.get("conditions"), "Ready") or {}
        meta = cluster["metadata"]
        conds = conditions.set_condition(
            old, type=UNREACHABLE, status=True, reason=ready.get("reason") or "Unreachable",
            message=f"cluster {meta['namespace']}/{meta['name']} does not answer since "
                    f"{ready.get('lastTransitionTime', '?')}: {ready.get('message', '')}; phase "
                    f"and health are as last seen",
            observed_generation=summary["metadata"].get("generation"), now=reporting.now())
    elif conditions.is_true(old, UNREACHABLE):
        # False rather than removed: a removal alone is no change to reporting.apply_status
        # (it compares only the condition types it is given), so it would never be written.
        meta = cluster["metadata"]
        conds = conditions.set_condition(
            old, type=UNREACHABLE, status=False, reason="Reachable",
            message=f"cluster {meta['namespace']}/{meta['name']} answers again",
            observed_generation=summary["metadata"].get("generation"), now=reporting.now())
    else:
        return status
    if conds == old:
        return status
    status = {**status, "conditions": conds}
    with contextlib.suppress(kube.NotFound, kube.ApiError, kube.Unreachable):
        await _write(ctx, summary, status)  # a failed write is kept in ctx.unwritten
    return status


def _notify_losers(ctx: context.Context, summary: dict[str, Any], taken: list[str]) -> None:
    """Profiles we took something over from must re-check what they still own here."""
    cluster = summary["spec"]["clusterRef"]["name"]
    for ref in set(taken):
        kind, _, name = ref.split("/", 2)
        key = (summary["metadata"]["namespace"], inventory.summary_name(kind, name, cluster))
        ctx.verify.add(key)
        ctx.enqueue(("summary", *key))


def _waiting_profiles(ctx: context.Context, summary: dict[str, Any],
                      pspec: types.ProfileSpec) -> list[str]:
    ref = summary["spec"]["profileRef"]
    cluster = summary["spec"]["clusterRef"]["name"]
    out = []
    for dep in pspec.depends_on:
        other = ctx.store.get("ClusterSummary", summary["metadata"]["namespace"],
                              inventory.summary_name(ref["kind"], dep, cluster))
        st = (other or {}).get("status") or {}
        # Provisioned and healthy, as Sveltos counts a prerequisite deployed only once its
        # validateHealths pass ("not only deployed but also functional").
        if st.get("phase") != "Provisioned" or not st.get("healthy"):
            out.append(dep)
    return out


async def _record(ctx: context.Context, summary: dict[str, Any], profile: dict[str, Any],
                  status: dict[str, Any], result: deployment.Result, want: desired.Desired,
                  ) -> float | None:
    spec = summary["spec"]
    gen = summary["metadata"].get("generation")
    status["services"] = result.services
    status["inventory"] = [inventory.InventoryEntry(key=k, hash=h).to_dict()
                           for k, h in result.inventory.items()]
    status["healthy"] = result.healthy
    status["phase"] = result.phase
    status["message"] = result.message
    token = (summary["metadata"].get("annotations") or {}).get(api.RETRY_ANNOTATION)
    if token:
        status["retryHandled"] = token
    if result.phase == "Failed" and result.requeue_after is not None:
        status["failedHash"] = want.hash
        status["nextRetryTime"] = reporting.after(result.requeue_after)
    else:
        status.pop("failedHash", None)
        status.pop("nextRetryTime", None)
    if result.phase == "Provisioned":
        if status.get("revision") != spec.get("revision") or not result.healthy:
            status.pop("healthySince", None)
        status["hash"], status["revision"] = want.hash, spec.get("revision")
        if result.healthy:
            status.setdefault("healthySince", reporting.now_precise())
    else:
        status.pop("healthySince", None)
    now = reporting.now()
    cond = conditions.set_condition(
        status.get("conditions"), type="Ready",
        status=result.phase == "Provisioned" and result.healthy,
        reason=result.reason, message=result.message, observed_generation=gen, now=now)
    cond = conditions.set_condition(
        cond, type="Conflict", status=result.phase == "Conflict",
        reason="Conflict" if result.phase == "Conflict" else "NoConflict",
        message=result.message if result.phase == "Conflict" else "",
        observed_generation=gen, now=now)
    status["conditions"] = cond
    before = (summary.get("status") or {}).get("phase")
    if await _write(ctx, summary, status) and before != result.phase:
        kind = "Warning" if result.phase in ("Failed", "Conflict") else "Normal"
        await ctx.recorder.event(summary, type=kind, reason=result.reason, message=result.message)
        if kind == "Warning":
            await ctx.recorder.event(profile, type=kind, reason=result.reason,
                                     message=f"{spec['clusterRef']['name']}: {result.message}")
    return result.requeue_after


# While the summary's cluster does not answer its probe (see _mark_reachability).
UNREACHABLE = "ClusterUnreachable"
# Status fields and condition types the drift engine owns (see reporting.apply_status).
DRIFT_FIELDS = ("drift",)
DRIFT_CONDITIONS = ("Drifted", "DriftFight")


async def _write(ctx: context.Context, summary: dict[str, Any], status: dict[str, Any]) -> bool:
    fields = {k: v for k, v in status.items() if k not in DRIFT_FIELDS}
    fields["conditions"] = [c for c in status.get("conditions") or []
                            if c["type"] not in DRIFT_CONDITIONS]
    key = (summary["metadata"]["namespace"], summary["metadata"]["name"])
    try:
        written = await reporting.apply_status(ctx.mgmt, summary, fields, manager="flotilla",
                                               cache=ctx.store)
    except kube.NotFound:
        raise
    except (kube.ApiError, kube.Unreachable):
        ctx.unwritten[key] = fields
        raise
    ctx.unwritten.pop(key, None)
    if written:
        status_changed(ctx, summary)
    return written


async def _write_unwritten(ctx: context.Context, summary: dict[str, Any]) -> bool:
    """Retry the write of a deploy's outcome that failed; True once it is in the API."""
    key = (summary["metadata"]["namespace"], summary["metadata"]["name"])
    try:
        await _write(ctx, summary, ctx.unwritten[key])
    except kube.NotFound:
        ctx.unwritten.pop(key, None)
    except (kube.ApiError, kube.Unreachable) as exc:
        reporting.log.warning("status of ClusterSummary %s/%s still not written: %s",
                              *key, reporting.describe(exc)[1])
        return False
    return True


def status_changed(ctx: context.Context, summary: dict[str, Any]) -> None:
    """Wake who depends on a summary's status (the watch event finds the cache current)."""
    ref = summary["spec"]["profileRef"]
    ctx.enqueue(("profile", ref["kind"], ref.get("namespace") or "", ref["name"]))
    cluster = summary["spec"]["clusterRef"]["name"]
    for other in ctx.store.all("ClusterSummary", summary["metadata"]["namespace"]):
        # Profiles that depend on this one wait for its summary on the same cluster.
        if other["spec"]["clusterRef"]["name"] == cluster \
                and other["metadata"]["name"] != summary["metadata"]["name"]:
            ctx.enqueue(("summary", other["metadata"]["namespace"], other["metadata"]["name"]))


async def _phase(ctx: context.Context, summary: dict[str, Any], status: dict[str, Any],
                 phase: str, reason: str, message: str,
                 event_on: dict[str, Any] | None = None) -> None:
    status = dict(status)
    status["phase"], status["message"] = phase, message
    status["conditions"] = conditions.set_condition(
        status.get("conditions"), type="Ready", status=False, reason=reason, message=message,
        observed_generation=summary["metadata"].get("generation"), now=reporting.now())
    try:
        written = await _write(ctx, summary, status)
    except kube.NotFound:
        return
    if written and phase == "Failed":
        await ctx.recorder.event(summary, type="Warning", reason=reason, message=message)
        if event_on is not None:
            await ctx.recorder.event(event_on, type="Warning", reason=reason,
                                     message=f"{summary['spec']['clusterRef']['name']}: {message}")


async def withdraw(ctx: context.Context, summary: dict[str, Any],
                   cluster: dict[str, Any] | None) -> float | None:
    """Remove what this profile still owns from the cluster, then release the finalizer."""
    meta = summary["metadata"]
    if ctx.drift is not None:
        ctx.drift.untrack((meta["namespace"], meta["name"]))
    leave = (meta.get("annotations") or {}).get(api.LEAVE_POLICIES_ANNOTATION) == "true"
    if not leave and cluster is not None:
        status = dict(summary.get("status") or {})
        recorded = [inventory.InventoryEntry.from_dict(r) for r in status.get("inventory") or []]
        try:
            conn = await ctx.connection(cluster)
            pspec = await _withdrawn_spec(ctx, summary)
            if recorded and pspec.pre_delete_checks:
                held = await gates.first_failing(conn, pspec.pre_delete_checks,
                                                 "spec.preDeleteChecks")
                if held:
                    await _phase(ctx, summary, status, "Removing", "PreDeleteChecks",
                                 f"withdrawal waits for preDeleteChecks {held}")
                    return ctx.settings.health_poll
            target = deployment.target(ctx, conn, owner_of(summary), types.ProfileSpec(),
                                       summary)
            for entry in reversed(recorded):
                await deployers.for_key(entry.key).remove(target, entry.key)
            if pspec.post_delete_checks:
                held = await gates.first_failing(conn, pspec.post_delete_checks,
                                                 "spec.postDeleteChecks")
                if held:
                    # Removed: the next look runs only these checks (preDeleteChecks
                    # guard removal, and nothing is left to remove).
                    await _phase(ctx, summary, {**status, "inventory": []}, "Removing",
                                 "PostDeleteChecks",
                                 f"withdrawn; waiting for postDeleteChecks {held}")
                    return ctx.settings.health_poll
        except errors.FlotillaError as exc:
            return await _withdraw_failed(ctx, summary, exc)
    elif not leave and (summary.get("status") or {}).get("inventory"):
        # The WorkloadCluster is gone: nobody can reach what was deployed there.
        await _abandon(ctx, summary, "the cluster is no longer registered")
    ctx.withdraw_attempts.pop((meta["namespace"], meta["name"]), None)
    await _release(ctx, summary)
    return None


async def _withdrawn_spec(ctx: context.Context, summary: dict[str, Any]) -> types.ProfileSpec:
    """The profile content this summary was assigned, for its delete checks (none if gone)."""
    ref = summary["spec"]["profileRef"]
    profile = ctx.store.get(ref["kind"], ref.get("namespace") or "", ref["name"])
    if profile is None:
        return types.ProfileSpec()
    pspec, _ = await revisions.assigned(ctx, profile, int(summary["spec"].get("revision") or 0))
    return pspec


async def _withdraw_failed(ctx: context.Context, summary: dict[str, Any],
                           exc: errors.FlotillaError) -> float | None:
    """Report the failed attempt and back off; past --withdraw-timeout, let the summary go."""
    meta = summary["metadata"]
    key = (meta["namespace"], meta["name"])
    attempts = ctx.withdraw_attempts.get(key, 0) + 1
    ctx.withdraw_attempts[key] = attempts
    _, message, _ = reporting.describe(exc)
    waited = time.time() - _seconds(meta.get("deletionTimestamp"))
    left = ctx.settings.withdraw_timeout - waited
    if left > 0:
        wait = min(retry.delay(attempts, asked=float(getattr(exc, "delay", 0.0))), left)
        await _phase(ctx, summary, dict(summary.get("status") or {}), "Removing",
                     "WithdrawPending",
                     f"withdrawing failed (attempt {attempts}): {message}; next attempt in "
                     f"{wait:.0f}s, giving up in {left:.0f}s (--withdraw-timeout)")
        return wait
    await _abandon(ctx, summary, f"withdrawing failed for {waited:.0f}s ({attempts} attempts): "
                                 f"{message}")
    ctx.withdraw_attempts.pop(key, None)
    await _release(ctx, summary)
    return None


async def _abandon(ctx: context.Context, summary: dict[str, Any], why: str) -> None:
    """Warn, on the summary and its profile, what may remain on the cluster."""
    entries = [inventory.InventoryEntry.from_dict(r)
               for r in (summary.get("status") or {}).get("inventory") or []]
    left = ", ".join(_entry_name(e) for e in entries) or "nothing recorded"
    cluster = summary["spec"]["clusterRef"]["name"]
    message = f"gave up withdrawing from {cluster}: {why}; may remain there: {left}"
    await ctx.recorder.event(summary, type="Warning", reason="WithdrawAbandoned", message=message)
    ref = summary["spec"]["profileRef"]
    profile = ctx.store.get(ref["kind"], ref.get("namespace") or "", ref["name"])
    if profile is not None:
        await ctx.recorder.event(profile, type="Warning", reason="WithdrawAbandoned",
                                 message=message)


def _entry_name(entry: inventory.InventoryEntry) -> str:
    if entry.key[0] == inventory.HELM and len(entry.key) == 3:
        return f"helm release {entry.key[1]}/{entry.key[2]}"
    _group, _version, kind, ns, name = inventory.object_part(entry.key)
    return f"{kind} {ns + '/' if ns else ''}{name}"


def _until(stamp: str | None) -> float:
    """Seconds from now until an RFC 3339 time (0 when absent or past)."""
    return max(_seconds(stamp) - time.time(), 0.0) if stamp else 0.0


def _seconds(stamp: str | None) -> float:
    if not stamp:
        return time.time()
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


async def _release(ctx: context.Context, summary: dict[str, Any]) -> None:
    meta = summary["metadata"]
    finalizers = [f for f in meta.get("finalizers") or [] if f != api.SUMMARY_FINALIZER]
    with contextlib.suppress(kube.NotFound):
        await ctx.mgmt.patch(summary["apiVersion"], "ClusterSummary", meta["namespace"],
                             meta["name"], {"metadata": {"finalizers": finalizers}})

