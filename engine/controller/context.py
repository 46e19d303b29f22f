"""What every reconciler shares: clients, the object store, queues, caches, settings.

Built once by `handlers` at operator startup. Keys in the work queue are
tuples whose first item names the reconciler: ("profile", kind, ns, name),
("summary", ns, name), ("cluster", ns, name).

Kubeconfigs come from the Secrets the WorkloadClusters name, followed by a
watch (`handlers.on_secret` calls `secret_event`): only Secrets some
WorkloadCluster references are kept, and of those only the keys referenced;
every other Secret's data is dropped on receipt. A Secret not seen yet (its
WorkloadCluster arrived after it) is read once; no reconcile reads one again.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

from engine import errors
from engine.adapters import connections as conns
from engine.adapters import helm, kube
from engine.controller import queue, reporting, store

if TYPE_CHECKING:
    from engine.controller.drifts import DriftReconciler
    from engine.snapshot import Snapshot

log = logging.getLogger("flotilla.controller")
WORKLOAD_REQUESTS = Counter("flotilla_workload_requests_total",
                            "Requests to workload API servers (all clusters), by verb; "
                            "WATCH counts each watch request, renewals included.", ["verb"])
WORKLOAD_POOLS = Gauge("flotilla_workload_connection_pools",
                       "Workload API clients open: one per API server URL and identity.")


@dataclass
class Settings:
    health_poll: float = 2.0
    max_backoff: float = 60.0
    secret_resync: float = 60.0
    withdraw_timeout: float = 600.0  # then a summary lets go of an unreachable cluster
    shard_key: str | None = None  # see engine.shards


@dataclass
class Context:
    mgmt: kube.Client
    store: store.Store
    connections: conns.Connections
    charts: helm.ChartCache
    recorder: reporting.Recorder
    settings: Settings = field(default_factory=Settings)
    queue: queue.WorkQueue | None = None
    static_mirrors: dict[str, str] = field(default_factory=dict)
    drift: DriftReconciler | None = None
    # Summaries whose next reconcile must re-check ownership instead of trusting the hash gate.
    verify: set[tuple[str, str]] = field(default_factory=set)
    # Summary statuses a deploy produced but could not write (management API error): kept
    # here and written before anything else is decided, so a lost write is never redeployed.
    unwritten: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # Revision snapshots by ControllerRevision uid (immutable, so never stale), and the
    # revisions whose Secret is known to exist.
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    revision_secrets: set[str] = field(default_factory=set)
    withdraw_attempts: dict[tuple[str, str], int] = field(default_factory=dict)
    # Referenced kubeconfig Secrets by (namespace, name): resourceVersion and the keys used.
    kubeconfigs: dict[tuple[str, str], tuple[int, dict[str, str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A cluster's probe (its server's watch) has news: reconcile that cluster.
        self.connections.notify = lambda ns, name: self.enqueue(("cluster", ns, name))
        self.connections.observe = lambda verb: WORKLOAD_REQUESTS.labels(verb=verb).inc()
        WORKLOAD_POOLS.set_function(self.connections.pools)

    def owner(self, key: Hashable) -> Hashable:
        """Whose turn a queue key takes (`queue.WorkQueue`): a summary's (or its drift
        check's) profile; all profiles share one turn, all cluster probes another."""
        if not isinstance(key, tuple) or not key:
            return None
        if key[0] in ("summary", "drift"):
            summary = self.store.get("ClusterSummary", key[1], key[2]) or {}
            ref = (summary.get("spec") or {}).get("profileRef") or {}
            return ("profile", ref.get("kind"), ref.get("namespace") or "", ref.get("name"))
        lane: Hashable = key[0]
        return lane

    def enqueue(self, key: Hashable, *, after: float = 0.0) -> None:
        if self.queue is not None:
            self.queue.add(key, after=after)

    def _secret_users(self, namespace: str, name: str) -> tuple[list[dict[str, Any]], set[str]]:
        """The WorkloadClusters naming this Secret, and the keys they read from it."""
        users, keys = [], set()
        for cluster in self.store.all("WorkloadCluster", namespace):
            ref = (cluster.get("spec") or {}).get("kubeconfigSecretRef") or {}
            if ref.get("name") == name:
                users.append(cluster)
                keys.add(ref.get("key") or "kubeconfig")
        return users, keys

    def _keep_secret(self, body: Mapping[str, Any]) -> tuple[bool, list[dict[str, Any]]]:
        """Remember a Secret's referenced keys if someone references it; whether they
        changed, and who reads them."""
        meta = body.get("metadata") or {}
        where = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        users, keys = self._secret_users(*where)
        held = self.kubeconfigs.get(where)
        if not users:
            self.kubeconfigs.pop(where, None)
            return False, []
        rv = str(meta.get("resourceVersion") or "")
        version = int(rv) if rv.isdigit() else -1
        if held is not None and held[0] > version:
            return False, users  # what we hold is newer (a read overtook the event)
        data = body.get("data") or {}
        kept = {k: str(data[k]) for k in sorted(keys) if data.get(k)}
        self.kubeconfigs[where] = (version, kept)
        return held is None or held[1] != kept, users

    def secret_event(self, type_: str | None, body: Mapping[str, Any]) -> None:
        """A Secret of the management cluster changed: keep it if referenced; a changed
        kubeconfig re-probes its clusters (with a new connection)."""
        meta = body.get("metadata") or {}
        where = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if type_ == "DELETED":
            users, _ = self._secret_users(*where)
            changed = self.kubeconfigs.pop(where, None) is not None
        else:
            changed, users = self._keep_secret(body)
        if changed:
            for cluster in users:
                cmeta = cluster["metadata"]
                self.enqueue(("cluster", cmeta["namespace"], cmeta["name"]))

    def prune_kubeconfigs(self) -> None:
        """Forget the Secrets no WorkloadCluster names any more (one was deleted or changed)."""
        named = {(c["metadata"]["namespace"],
                  ((c.get("spec") or {}).get("kubeconfigSecretRef") or {}).get("name"))
                 for c in self.store.all("WorkloadCluster")}
        for where in [w for w in self.kubeconfigs if w not in named]:
            del self.kubeconfigs[where]

    async def kubeconfig_for(self, cluster: dict[str, Any]) -> str:
        """The workload cluster's kubeconfig, from the Secret its spec names."""
        meta, spec = cluster["metadata"], cluster.get("spec", {})
        ref = spec.get("kubeconfigSecretRef") or {}
        name, key = ref.get("name", ""), ref.get("key") or "kubeconfig"
        held = self.kubeconfigs.get((meta["namespace"], name))
        if held is not None and key in held[1]:
            data: str | None = held[1][key]
        else:
            secret = await self.mgmt.get("v1", "Secret", meta["namespace"], name)
            if secret is None:
                raise errors.SpecError(
                    f"Secret {meta['namespace']}/{name} not found",
                    field="spec.kubeconfigSecretRef.name", reason="KubeconfigSecretNotFound")
            self._keep_secret(secret)
            data = (secret.get("data") or {}).get(key)
        if not data:
            raise errors.SpecError(f"Secret {meta['namespace']}/{name} has no key {key!r}",
                                   field="spec.kubeconfigSecretRef.key",
                                   reason="KubeconfigSecretNotFound")
        return base64.b64decode(data).decode()

    async def connection(self, cluster: dict[str, Any]) -> conns.Connection:
        meta = cluster["metadata"]
        text = await self.kubeconfig_for(cluster)
        return await self.connections.get(meta["namespace"], meta["name"], text)

    def mirrors(self) -> dict[str, str]:
        """Static --chart-mirror flags, overlaid by the mirror ConfigMap when present."""
        merged = dict(self.static_mirrors)
        # ConfigMap keys cannot hold URLs, so each value holds "UPSTREAM=LOCAL" lines.
        for cm in self.store.all("MirrorConfigMap"):
            for text in (cm.get("data") or {}).values():
                for line in str(text).splitlines():
                    upstream, sep, local = line.strip().partition("=")
                    if sep and upstream and local and not upstream.startswith("#"):
                        merged[upstream.strip()] = local.strip()
        return merged

