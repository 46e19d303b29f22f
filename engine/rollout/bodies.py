"""A cluster's rollout state read from the API objects that describe it.

Used by the controller's rollout step (through `engine.controller.rollout_states`,
which caches what this builds) and by `flotilla status` (engine.cli.views), so
the command shows each cluster exactly as the controller judges it. Pure: plain
mappings in, a `policy.ClusterState` out.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from engine.rollout import policy


def seconds(stamp: str | None) -> float | None:
    """An RFC 3339 time from the API as epoch seconds; None when absent or unreadable."""
    if not stamp:
        return None
    try:
        return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def cluster_state(key: str, summary: Mapping[str, Any] | None,
                  cluster: Mapping[str, Any] | None,
                  failed_revision: int | None) -> policy.ClusterState:
    """The state of one cluster, from its ClusterSummary and WorkloadCluster (either may be
    missing) and the revision the profile remembers it failed at."""
    summary, cluster = summary or {}, cluster or {}
    sspec, st = summary.get("spec") or {}, summary.get("status") or {}
    # Only a finished deploy says what the cluster runs; Pending/Provisioning do not.
    current = st.get("revision") if st.get("phase") in ("Provisioned", "Failed") else None
    return policy.ClusterState(
        key=key, labels=(cluster.get("metadata") or {}).get("labels") or {},
        current_revision=int(current) if current is not None else None,
        target_revision=int(sspec["revision"]) if sspec.get("revision") else None,
        healthy=bool(st.get("healthy")) and st.get("phase") == "Provisioned",
        healthy_since=seconds(st.get("healthySince")),
        update_started=seconds(sspec.get("assignedAt")),
        reachable=bool((cluster.get("status") or {}).get("ready", True)),
        failed_revision=failed_revision)
