"""WorkloadCluster reconcile: connect, report health, version and facts; back off when down.

The probe is not a poll: each API server (URL and identity) is followed by
one watch (`engine.adapters.clusterwatch`, decision in docs/architecture.md),
and this reconcile reports what that watch knows — it makes no request of
its own, and runs when the watch has news, the cluster or its kubeconfig
Secret changed, or a deploy reached a cluster marked unreachable (which cuts
the watch's backoff short). An unreachable cluster waits out its own backoff
and never holds up the others. Facts (node count, GPU products and counts)
come from node labels and capacity (`engine.facts`); an identity that may not
read Nodes is Ready with no facts and a message saying so. A change in facts
or readiness re-queues the profiles, since CEL selectors may read them.
Status is written only when something other than the probe time changed.

A kubeconfig the controller cannot use, or an API server that refuses it,
shows as Ready=False with a reason naming the cause (InvalidKubeconfig,
ExecPluginNotFound/Failed/BadOutput, Unauthorized, CredentialsExpired,
TLSVerifyFailed, Unreachable; see docs/kubeconfigs.md). A kubeconfig that
turns TLS verification off is used, with a warning condition `InsecureTLS`.
"""

from __future__ import annotations

from typing import Any

from engine import errors, facts
from engine.adapters import clusterwatch, kube
from engine.controller import context, profiles, reporting
from engine.model import conditions

INSECURE_TLS = "InsecureTLS"
INSECURE_MESSAGE = ("the kubeconfig sets insecure-skip-tls-verify: the API server's certificate is "
                    "not verified; give certificate-authority-data instead")


def facts_from_nodes(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    return facts.facts(facts.digest(node) for node in nodes)


async def reconcile(ctx: context.Context, namespace: str, name: str) -> float | None:
    try:
        return await _reconcile(ctx, namespace, name)
    except (kube.ApiError, kube.Unreachable) as exc:
        # Only the management API gets here (the probe's own failures are reported in
        # status): it restarts or is out of reach, which is no bug, so no traceback.
        reporting.log.warning("status of WorkloadCluster %s/%s not written: %s", namespace,
                              name, reporting.describe(exc)[1])
        return WRITE_RETRY


# Seconds before a probe whose status could not be written runs again.
WRITE_RETRY = 5.0


async def _reconcile(ctx: context.Context, namespace: str, name: str) -> float | None:
    cluster = ctx.store.get("WorkloadCluster", namespace, name)
    if cluster is None:
        await ctx.connections.forget(namespace, name)
        ctx.prune_kubeconfigs()
        return None
    old = cluster.get("status") or {}
    status: dict[str, Any] = {k: v for k, v in old.items()}
    gen = cluster["metadata"].get("generation")
    failures = int((old.get("connection") or {}).get("failures", 0))
    if cluster.get("spec", {}).get("paused"):
        status["conditions"] = conditions.set_condition(
            old.get("conditions"), type="Ready", status=bool(old.get("ready")), reason="Paused",
            message="spec.paused is true: not probed, nothing deployed", observed_generation=gen,
            now=reporting.now())
        await ctx.connections.forget(namespace, name)  # its watch stops too
        await _write(ctx, cluster, status)
        return None
    insecure: bool | None = None  # unknown until the kubeconfig parsed
    probed: clusterwatch.State | None = None
    try:
        conn = await ctx.connection(cluster)
        insecure = conn.config.insecure
        conn.watch.start()
        probed = conn.watch.state
        if probed is None:
            return None  # the watch tells us (notify) once its first attempt is over
        if probed.error is not None:
            conn.watch.poke()  # no sooner than its last attempt allows
            raise probed.error
    except errors.FlotillaError as exc:
        # From the watch: its own count of attempts; before it (kubeconfig): ours.
        failures = probed.failures if probed is not None else failures + 1
        reason, message, _ = reporting.describe(exc)
        status.update(ready=False, connection={
            "state": "Unreachable", "failures": failures, "message": message,
            "lastProbeTime": reporting.now()})
        status["conditions"] = _tls_condition(conditions.set_condition(
            old.get("conditions"), type="Ready", status=False, reason=reason, message=message,
            observed_generation=gen, now=reporting.now()), insecure, gen)
        if await _write(ctx, cluster, status):
            await ctx.recorder.event(cluster, type="Warning", reason=reason, message=message)
            await _warn_insecure(ctx, cluster, old, insecure)
        if probed is not None:
            return None  # the watch retries on its own backoff and tells us
        # Exponential backoff per cluster: 2, 4, 8 … seconds, capped.
        return min(2.0 ** min(failures, 6), ctx.settings.max_backoff)
    version, found = probed.version, probed.facts()
    # A merge patch keeps the keys it does not name: what went away is named as null.
    if found is None:
        # Unknown, not zero: a has() guard in CEL tells them apart.
        status["facts"] = None
        if "facts" not in old:
            del status["facts"]
        summary = f"{version}, {probed.nodes_message}"
    else:
        status["facts"] = _gone_as_null(old.get("facts"), found)
        summary = f"{version}, {found['nodes']} nodes, {found['gpuTotal']} GPUs"
    status.update(ready=True, version=version, connection={
        "state": "Healthy", "failures": 0, "message": "", "lastProbeTime": reporting.now()})
    status["observedGeneration"] = gen
    status["conditions"] = _tls_condition(conditions.set_condition(
        old.get("conditions"), type="Ready", status=True, reason="Connected",
        message=summary, observed_generation=gen, now=reporting.now()), insecure, gen)
    became_ready = not old.get("ready")
    if await _write(ctx, cluster, status):
        if became_ready:
            await ctx.recorder.event(cluster, type="Normal", reason="Connected",
                                     message=f"connected: {version}")
        await _warn_insecure(ctx, cluster, old, insecure)
    return None  # the watch has the next news


def _gone_as_null(old: Any, new: Any) -> Any:
    """`new` as a merge patch over `old`: keys only `old` has (a GPU product no node has
    any more) are named with null, which removes them."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    out = {k: _gone_as_null(old.get(k), v) for k, v in new.items()}
    out.update({k: None for k in old if k not in new})
    return out


def _tls_condition(conds: list[dict[str, Any]], insecure: bool | None,
                   gen: int | None) -> list[dict[str, Any]]:
    """InsecureTLS=True while the kubeconfig skips TLS verification; absent otherwise."""
    if insecure is None:
        return conds  # the kubeconfig did not parse: nothing new to say about it
    if not insecure:
        return [c for c in conds if c.get("type") != INSECURE_TLS]
    return conditions.set_condition(conds, type=INSECURE_TLS, status=True,
                                    reason="InsecureSkipTLSVerify", message=INSECURE_MESSAGE,
                                    observed_generation=gen, now=reporting.now())


async def _warn_insecure(ctx: context.Context, cluster: dict[str, Any], old: dict[str, Any],
                         insecure: bool | None) -> None:
    if insecure and not conditions.is_true(old.get("conditions"), INSECURE_TLS):
        await ctx.recorder.event(cluster, type="Warning", reason="InsecureSkipTLSVerify",
                                 message=INSECURE_MESSAGE)


async def _write(ctx: context.Context, cluster: dict[str, Any], status: dict[str, Any]) -> bool:
    try:
        written = await reporting.patch_status(ctx.mgmt, cluster, status, cache=ctx.store)
    except kube.NotFound:
        return False
    if written:
        status_changed(ctx, cluster)
    return written


def status_changed(ctx: context.Context, cluster: dict[str, Any]) -> None:
    """Wake who depends on a cluster's status: its summaries and the profiles it touches.

    Called after our own status writes (the watch event then finds the cache
    current) and by the watch handler for writes made by anyone else.
    """
    meta = cluster["metadata"]
    # Summaries on this cluster may have waited for it to come back.
    for summary in ctx.store.all("ClusterSummary", meta["namespace"]):
        if summary["spec"]["clusterRef"]["name"] == meta["name"]:
            ctx.enqueue(("summary", meta["namespace"], summary["metadata"]["name"]))
    # Selection (CEL) and rollouts read readiness and facts: the profiles selecting this
    # cluster before or after the change look again (the store's plan index knows which).
    profiles.wake(ctx)
