"""The controller's startup options: what `flotilla controller` was told.

Built by `engine.cli.controller` from the flags, read by `main` (logging,
endpoints) and `handlers` (clients, workdir, helm, election, shard).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from engine.adapters import connections
from engine.adapters import helm as helm_adapter
from engine.controller import context, leader


@dataclass
class Options:
    """Everything `flotilla controller` is told on its command line."""

    kubeconfig: str | None  # None: the pod's ServiceAccount (in-cluster)
    helm: Path
    workdir: Path
    mirrors: dict[str, str] = field(default_factory=dict)
    mirror_configmap: str = ""
    settings: context.Settings = field(default_factory=context.Settings)
    bind_address: str = "127.0.0.1"
    metrics_port: int = 0
    health_port: int = 0
    leader_elect: bool = False
    lease_namespace: str = ""
    lease_name: str = ""
    timings: leader.Timings = field(default_factory=leader.Timings)
    log_format: str = "text"
    log_level: str = "info"
    # Bounds that keep a small machine responsive during a fleet-wide rollout.
    max_helm: int = helm_adapter.MAX_PROCESSES  # helm processes at once
    max_workload_requests: int = connections.MAX_REQUESTS  # requests in flight, all clusters

    def lease(self) -> tuple[str, str]:
        namespace = self.lease_namespace or os.environ.get("POD_NAMESPACE") or "flotilla-system"
        name = self.lease_name or "flotilla-controller"
        if not self.lease_name and self.settings.shard_key:
            name += f"-{self.settings.shard_key}"  # each shard campaigns for its own Lease
        return namespace, name


def identity() -> str:
    """The Lease holder: the pod's name in a cluster, host and pid elsewhere."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
