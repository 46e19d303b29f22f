"""kopf wiring: watch events fill the store and wake the right reconcilers.

kopf watches the management cluster only (workload clusters are reached
through our adapters). Every handler here is an `on.event` handler, so kopf
never writes annotations or status of its own onto our objects; all writes
go through the reconcilers. The startup handler builds the shared
`Context` and starts the work queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Hashable, Mapping
from typing import Any

import kopf
from prometheus_client import Counter, Gauge

from engine import api, errors, shards
from engine.adapters import connections, helm, kube, kubeconfig
from engine.controller import (
    clusters,
    context,
    drifts,
    leader,
    profiles,
    queue,
    reporting,
    store,
    summaries,
)
from engine.controller import (
    options as opts_mod,
)

log = logging.getLogger("flotilla.controller")
RECONCILES = Counter("flotilla_reconcile_total", "Reconciles run by this replica, by reconciler.",
                     ["reconciler"])
LEADING = Gauge("flotilla_leader", "1 while this replica reconciles (leader, or no election).")
G, V = api.GROUP, api.VERSION

# Set by main.run() before kopf starts.
OPTIONS: opts_mod.Options | None = None
STATE: dict[str, Any] = {}


def options() -> opts_mod.Options:
    assert OPTIONS is not None, "main.run() sets the options before kopf starts"
    return OPTIONS


def ctx() -> context.Context:
    found: context.Context = STATE["ctx"]
    return found


def ready() -> tuple[bool, str]:
    """For /readyz: the cache is filled and this replica leads or stands by."""
    if not STATE.get("synced"):
        return False, "filling the cache"
    elector: leader.Elector | None = STATE.get("elector")
    if elector is None:
        return True, "leading (no election)"
    return True, "leading" if elector.leading else "standby"


def management_config() -> kubeconfig.KubeConfig:
    opts = options()
    return kubeconfig.load(opts.kubeconfig) if opts.kubeconfig else kubeconfig.in_cluster()


@kopf.on.login()
async def login(**_: Any) -> kopf.ConnectionInfo:
    """kopf logs in with what our own client would send: exec plugins and rotating token
    files included (kopf's kubeconfig login knows neither), and asks again at expiry."""
    client: kube.Client | None = STATE.get("login")
    if client is None:
        client = STATE["login"] = kube.Client(management_config(), name="management-login")
    cred = await client.credential()
    config = client.config
    return kopf.ConnectionInfo(
        server=config.server, ca_data=config.ca_data, insecure=config.insecure,
        scheme="Bearer" if cred.token else None, token=cred.token,
        certificate_data=cred.cert_data, private_key_data=cred.key_data,
        expiration=cred.expires, default_namespace=None)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.enabled = False  # we post our own, de-duplicated Events
    settings.watching.server_timeout = 300
    # kopf's default retries of a failed API request wait up to 21 s apart, so a watch
    # noticed a restarted management API server that late; the same patience (52 s
    # before a request gives up), never more than 5 s between two tries.
    settings.networking.error_backoffs = (1, 1, 2, 3, 5, 5, 5, 5, 5, 5, 5, 5, 5)
    settings.persistence.finalizer = api.KOPF_FINALIZER
    opts = options()
    helm.limit_processes(opts.max_helm)
    config = management_config()
    mgmt = kube.Client(config, name="management")
    cache = store.Store()
    c = context.Context(
        mgmt=mgmt, store=cache,
        connections=connections.Connections(
            opts.workdir / "clusters", opts.helm, owner_gone=lambda ref: profiles.gone(cache, ref),
            max_requests=opts.max_workload_requests, max_backoff=opts.settings.max_backoff),
        charts=helm.ChartCache(opts.workdir / "charts", opts.helm, opts.mirrors),
        recorder=reporting.Recorder(mgmt), static_mirrors=dict(opts.mirrors),
        settings=opts.settings)
    c.drift = drifts.DriftReconciler(c)
    c.queue = queue.WorkQueue(lambda key: dispatch(c, key), workers=16, name="flotilla",
                              owner=c.owner)
    STATE["ctx"] = c
    await _preload(c)
    # The cache holds the fleet for the life of the process: the cycle collector leaves it
    # out of its scans from now on (bench/planner.py: planning 50 profiles over 10,000
    # clusters took 3.0 CPU s with it scanned, 0.7 s frozen).
    gc.freeze()
    STATE["synced"] = True
    if not opts.leader_elect:
        await _lead(c)
        return
    namespace, name = opts.lease()
    # Its own client with a short timeout: a renewal must fail fast, not outlive the deadline.
    lease_client = kube.Client(config, name="management-lease",
                               timeout=max(1.0, opts.timings.retry_period * 2))
    elector = leader.Elector(lease_client, namespace=namespace, name=name,
                             identity=opts_mod.identity(), timings=opts.timings,
                             on_started=lambda: _lead(c), on_lost=_lost)
    STATE["elector"] = elector
    STATE["campaign"] = asyncio.create_task(elector.run())


# What the reconcilers read, listed completely before any of them runs: deciding on a
# half-filled cache after a restart would see profiles without their clusters and
# withdraw everything. kopf's own watches keep the cache current afterwards.
_PRELOAD = (api.WORKLOAD_CLUSTER, api.CATALOG_SERVICE, api.CLUSTER_PROFILE, api.PROFILE,
            api.CLUSTER_SUMMARY)


async def _preload(c: context.Context) -> None:
    delay = 0.5
    while True:
        try:
            for kind in _PRELOAD:
                for body in await c.mgmt.list(api.API_VERSION, kind):
                    c.store.put(kind, body)
            for body in await c.mgmt.list("apps/v1", "ControllerRevision",
                                          label_selector=api.PROFILE_NAME_LABEL):
                c.store.put("ControllerRevision", body)
            return
        except (kube.ApiError, kube.Unreachable) as exc:  # e.g. CRDs not installed yet
            log.warning("preloading the cache: %s; retrying", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


async def _lead(c: context.Context) -> None:
    """Start reconciling: everything once (the cache may have moved while standing by)."""
    for kind in api.PROFILE_KINDS:
        for body in c.store.all(kind):
            meta = body["metadata"]
            c.enqueue(("profile", kind, meta.get("namespace") or "", meta["name"]))
    for body in c.store.all("ClusterSummary"):
        c.enqueue(("summary", body["metadata"]["namespace"], body["metadata"]["name"]))
    for body in c.store.all("WorkloadCluster"):
        c.enqueue(("cluster", body["metadata"]["namespace"], body["metadata"]["name"]))
    assert c.queue is not None
    LEADING.set(1)
    STATE["task"] = asyncio.create_task(c.queue.run())


def _lost() -> None:
    """A leader that cannot renew stops at once; its replacement starts from the cluster."""
    LEADING.set(0)
    task = STATE.get("task")
    if task is not None:
        task.cancel()
    stop: asyncio.Event | None = STATE.get("stop")
    if stop is not None:
        stop.set()


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    for name in ("task", "campaign"):
        task = STATE.get(name)
        if task is not None:
            task.cancel()
    elector: leader.Elector | None = STATE.get("elector")
    if elector is not None:
        await elector.release()  # a standby takes over on its next try, not after the lease
        await elector.client.close()
    login_client: kube.Client | None = STATE.get("login")
    if login_client is not None:
        await login_client.close()
    c = STATE.get("ctx")
    if c is not None:
        if c.drift is not None:
            await c.drift.close()
        await c.connections.close()
        await c.mgmt.close()


async def dispatch(c: context.Context, key: Hashable) -> float | None:
    """Run the reconciler a key names; a failure it did not handle still reaches status."""
    assert isinstance(key, tuple)
    try:
        return await _dispatch(c, key)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the boundary: a traceback in the log alone helps nobody
        if isinstance(exc, errors.FlotillaError):
            # Typed: raised on purpose with its cause in the message (and reported below);
            # a traceback is kept for what nobody expected.
            log.warning("reconcile of %s failed: %s", key, exc)
        else:
            log.exception("reconcile of %s failed", key)
        with contextlib.suppress(Exception):
            if key[0] == "summary":
                await summaries.report_error(c, key[1], key[2], exc)
            elif key[0] == "profile" and (body := c.store.get(key[1], key[2], key[3])):
                await profiles.report_error(c, body, exc)
        return 10.0


def serves(c: context.Context, key: tuple[Any, ...]) -> bool:
    """Whether this controller's shard does the work a queue key names (engine.shards)."""
    shard = c.settings.shard_key
    if key[0] == "profile":
        return shards.runs_profiles(shard)
    if key[0] == "cluster":
        cluster = c.store.get("WorkloadCluster", key[1], key[2])
    else:  # summary, drift: the summary's cluster decides
        summary = c.store.get("ClusterSummary", key[1], key[2]) or {}
        ref = (summary.get("spec") or {}).get("clusterRef") or {}
        cluster = c.store.get("WorkloadCluster", key[1], ref.get("name", ""))
    # A cluster already gone from the cache is cleaned up after by the default controller.
    return shards.serves(shard, cluster) if cluster is not None else not shard


async def _dispatch(c: context.Context, key: tuple[Any, ...]) -> float | None:
    if not serves(c, key):
        return None
    RECONCILES.labels(reconciler=str(key[0])).inc()
    if key[0] == "profile":
        return await profiles.reconcile(c, key[1], key[2], key[3])
    if key[0] == "summary":
        return await summaries.reconcile(c, key[1], key[2])
    if key[0] == "cluster":
        return await clusters.reconcile(c, key[1], key[2])
    if key[0] == "drift" and c.drift is not None:
        return await c.drift.check(key[1], key[2])
    return None


def _templated(body: Mapping[str, Any]) -> bool:
    """Annotated as a template (a change of that is a change of what a policyRef deploys)."""
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    return any(a in annotations for a in api.TEMPLATE_ANNOTATIONS)


def _remember(kind: str, type_: str | None, body: kopf.Body) -> tuple[dict[str, Any] | None,
                                                                     dict[str, Any]]:
    raw = dict(body)
    raw.setdefault("kind", kind)
    _, ns, name = store.key_of(kind, raw)
    old = ctx().store.get(kind, ns, name)
    if type_ == "DELETED":
        ctx().store.drop(kind, ns, name)
    else:
        ctx().store.put(kind, raw)
    return old, raw


def _all_profiles() -> None:
    for kind in api.PROFILE_KINDS:
        for profile in ctx().store.all(kind):
            meta = profile["metadata"]
            ctx().enqueue(("profile", kind, meta.get("namespace") or "", meta["name"]))


def _summaries_where(pred: Any) -> None:
    for summary in ctx().store.all("ClusterSummary"):
        if pred(summary):
            meta = summary["metadata"]
            ctx().enqueue(("summary", meta["namespace"], meta["name"]))


def _spec_or_labels_changed(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    if old is None:
        return True
    o, n = old.get("metadata", {}), new.get("metadata", {})
    # Annotations carry requests too (approve, undo's restore, retry): they count as changes.
    return (o.get("generation") != n.get("generation") or o.get("labels") != n.get("labels")
            or o.get("annotations") != n.get("annotations")
            or bool(n.get("deletionTimestamp")) != bool(o.get("deletionTimestamp")))


@kopf.on.event(G, V, "workloadclusters")
async def on_cluster(type: str | None, body: kopf.Body, **_: Any) -> None:
    old, new = _remember("WorkloadCluster", type, body)
    meta = new["metadata"]
    if old is not None and shards.shard_of(old) != shards.shard_of(new):
        await _moved(old, new)
    if _spec_or_labels_changed(old, new) or type == "DELETED":
        ctx().enqueue(("cluster", meta["namespace"], meta["name"]))
        # Only the profiles selecting it before or after (the store's plan index).
        profiles.wake(ctx())
    if old is not None and old.get("status") != new.get("status"):
        clusters.status_changed(ctx(), new)


async def _moved(old: dict[str, Any], new: dict[str, Any]) -> None:
    """A cluster changed shards: the shard it left lets go, the one it joined takes over.

    Nothing is withdrawn: the profiles still select it, and the new shard finds
    the summaries' recorded hashes current, so it deploys nothing again.
    """
    c, meta = ctx(), new["metadata"]
    mine = c.settings.shard_key
    ours = [s for s in c.store.all("ClusterSummary", meta["namespace"])
            if s["spec"]["clusterRef"]["name"] == meta["name"]]
    if shards.serves(mine, old) and not shards.serves(mine, new):
        log.info("cluster left this shard for %r; letting go",
                 shards.shard_of(new) or "the default shard",
                 extra={"object": f"{meta['namespace']}/{meta['name']}"})
        for summary in ours:
            if c.drift is not None:
                c.drift.untrack((summary["metadata"]["namespace"], summary["metadata"]["name"]))
        await c.connections.forget(meta["namespace"], meta["name"])
    elif shards.serves(mine, new):
        log.info("cluster joined this shard", extra={
            "object": f"{meta['namespace']}/{meta['name']}"})
        for summary in ours:
            c.enqueue(("summary", summary["metadata"]["namespace"],
                       summary["metadata"]["name"]))


@kopf.on.event(G, V, "catalogservices")
async def on_catalog(type: str | None, body: kopf.Body, **_: Any) -> None:
    old, new = _remember("CatalogService", type, body)
    if _spec_or_labels_changed(old, new) or type == "DELETED":
        _all_profiles()  # a changed entry becomes a new revision of the profiles using it


async def _on_profile(kind: str, type: str | None, body: kopf.Body) -> None:
    old, new = _remember(kind, type, body)
    meta = new["metadata"]
    ns = meta.get("namespace") or ""
    if _spec_or_labels_changed(old, new) or type == "DELETED":
        ctx().enqueue(("profile", kind, ns, meta["name"]))
        # Others may depend on this profile, and its summaries deploy its spec.
        _all_profiles()
        _summaries_where(lambda s: (s["spec"]["profileRef"]["kind"], s["spec"]["profileRef"]
                                    .get("namespace") or "", s["spec"]["profileRef"]["name"])
                         == (kind, ns, meta["name"]))


@kopf.on.event(G, V, "clusterprofiles")
async def on_clusterprofile(type: str | None, body: kopf.Body, **_: Any) -> None:
    await _on_profile("ClusterProfile", type, body)


@kopf.on.event(G, V, "profiles")
async def on_profile(type: str | None, body: kopf.Body, **_: Any) -> None:
    await _on_profile("Profile", type, body)


@kopf.on.event(G, V, "clustersummaries")
async def on_summary(type: str | None, body: kopf.Body, **_: Any) -> None:
    old, new = _remember("ClusterSummary", type, body)
    meta, spec = new["metadata"], new.get("spec") or {}
    ref = spec.get("profileRef") or {}
    if _spec_or_labels_changed(old, new):
        ctx().enqueue(("summary", meta["namespace"], meta["name"]))
    if ref and (old is None or old.get("status") != new.get("status") or type == "DELETED"):
        summaries.status_changed(ctx(), new)


@kopf.on.event("apps", "v1", "controllerrevisions",
               labels={api.PROFILE_NAME_LABEL: kopf.PRESENT})
async def on_revision(type: str | None, body: kopf.Body, **_: Any) -> None:
    _remember("ControllerRevision", type, body)


@kopf.on.event("", "v1", "secrets")
async def on_secret(type: str | None, body: kopf.Body, **_: Any) -> None:
    """Kubeconfig Secrets: kept while a WorkloadCluster names them, others dropped at once."""
    ctx().secret_event(type, body)


@kopf.on.event("", "v1", "configmaps")
async def on_configmap(type: str | None, body: kopf.Body, **_: Any) -> None:
    meta = body.get("metadata", {})
    mirror = options().mirror_configmap
    if mirror and f"{meta.get('namespace')}/{meta.get('name')}" == mirror:
        _remember("MirrorConfigMap", type, body)
        return
    old, new = _remember("ConfigMap", type, body)
    if old is not None and old.get("data") == new.get("data") \
            and old.get("binaryData") == new.get("binaryData") \
            and _templated(old) == _templated(new) and type != "DELETED":
        return
    ns, name = meta.get("namespace"), meta.get("name")
    # A profile referencing this ConfigMap records its new content as a new revision, which
    # the rollout then moves through the stages: nothing is redeployed from here.
    for kind in api.PROFILE_KINDS:
        for profile in ctx().store.all(kind):
            spec = profile.get("spec") or {}
            refs = list(spec.get("policyRefs") or []) + list(spec.get("patchesFrom") or [])
            for chart in spec.get("helmCharts") or []:
                refs += chart.get("valuesFrom") or []
            for kust in spec.get("kustomizationRefs") or []:
                refs += [kust, *(kust.get("valuesFrom") or [])]
            pns = profile["metadata"].get("namespace")
            for tref in spec.get("templateResourceRefs") or []:
                res = tref.get("resource") or {}
                templated = "{{" in str(res.get("name", "")) + str(res.get("namespace", ""))
                # An empty namespace is each cluster's; a templated name may be this one.
                refs.append({"kind": res.get("kind"),
                             "namespace": ns if templated else res.get("namespace") or ns,
                             "name": name if templated else res.get("name")})
            if any(r.get("kind") == "ConfigMap" and r.get("name") == name
                   and (r.get("namespace") or pns) == ns for r in refs):
                ctx().enqueue(("profile", kind, pns or "", profile["metadata"]["name"]))
