"""Which controller shard a WorkloadCluster belongs to: a pure decision.

Used by the controller's dispatch (engine.controller.handlers) to skip work
that belongs to another shard, and by its tests. A cluster's shard is the
value of its `sharding.flotilla.dev/key` annotation, or of Sveltos's
`sharding.projectsveltos.io/key` when ours is absent; no annotation (or an
empty one) is the default shard, served by the controller started without
`--shard-key`.

The split follows Sveltos: the default controller also runs every profile
reconciler (selection, revisions, rollout decisions, profile status), which
only write to the management cluster; a shard runs the per-cluster work —
probes, deploys, drift, withdrawal — for its own clusters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine import api


def shard_of(cluster: Mapping[str, Any]) -> str:
    annotations = (cluster.get("metadata") or {}).get("annotations") or {}
    for key in api.SHARD_ANNOTATIONS:
        value = str(annotations.get(key) or "").strip()
        if value:
            return value
    return ""


def serves(shard_key: str | None, cluster: Mapping[str, Any]) -> bool:
    """True when the controller with `shard_key` (None: the default one) owns the cluster."""
    return shard_of(cluster) == (shard_key or "")


def runs_profiles(shard_key: str | None) -> bool:
    """Profile reconcilers run in the default controller only: one writer per profile."""
    return not shard_key
