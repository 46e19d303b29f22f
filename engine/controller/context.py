"""What every reconciler shares: clients, the object store, queues, caches, settings.

Built once by `handlers` at operator startup. Keys in the work queue are
tuples whose first item names the reconciler: ("profile", kind, ns, name),
("summary", ns, name), ("cluster", ns, name).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine import errors
from engine.adapters import connections as conns
from engine.adapters import helm, kube
from engine.controller import queue, reporting, store

if TYPE_CHECKING:
    from engine.controller.drifts import DriftReconciler
    from engine.snapshot import Snapshot

log = logging.getLogger("flotilla.controller")


@dataclass
class Settings:
    probe_interval: float = 30.0
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

    async def kubeconfig_for(self, cluster: dict[str, Any]) -> str:
        """The workload cluster's kubeconfig, from the Secret its spec names."""
        meta, spec = cluster["metadata"], cluster.get("spec", {})
        ref = spec.get("kubeconfigSecretRef") or {}
        name, key = ref.get("name", ""), ref.get("key") or "kubeconfig"
        secret = await self.mgmt.get("v1", "Secret", meta["namespace"], name)
        if secret is None:
            raise errors.SpecError(
                f"Secret {meta['namespace']}/{name} not found",
                field="spec.kubeconfigSecretRef.name", reason="KubeconfigSecretNotFound")
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

