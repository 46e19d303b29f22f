"""Connections to workload clusters, built once per kubeconfig and reused.

Used by the controller's cluster, summary and drift code. A connection is
an API client, the ownership-aware `Workload` writer and a Helm `Releases`
handle. It is rebuilt only when the kubeconfig Secret's content changes, so
pyhelm3's synchronous `helm version` probe runs once per cluster, not per
reconcile.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.adapters import helm, kube, kubeconfig, workload


@dataclass
class Connection:
    name: str
    fingerprint: str
    client: kube.Client
    workload: workload.Workload
    kubeconfig_text: str
    helm_binary: Path
    _releases: helm.Releases | None = None
    _workdir: Path | None = None

    def releases(self) -> helm.Releases:
        if self._releases is None:
            assert self._workdir is not None
            self._releases = helm.Releases(self.kubeconfig_text, self._workdir, self.helm_binary)
        return self._releases


class Connections:
    def __init__(self, workdir: Path, helm: Path,
                 owner_gone: Callable[[str], bool] = lambda ref: False) -> None:
        self.workdir = workdir
        self.helm = helm
        self.owner_gone = owner_gone  # see workload.Workload
        self._by_cluster: dict[tuple[str, str], Connection] = {}

    async def get(self, namespace: str, name: str, kubeconfig_text: str) -> Connection:
        fingerprint = hashlib.sha256(kubeconfig_text.encode()).hexdigest()[:16]
        known = self._by_cluster.get((namespace, name))
        if known is not None and known.fingerprint == fingerprint:
            return known
        if known is not None:
            await known.client.close()
        config = kubeconfig.parse(kubeconfig_text)
        client = kube.Client(config, name=f"{namespace}/{name}", timeout=10.0)
        conn = Connection(name=f"{namespace}/{name}", fingerprint=fingerprint, client=client,
                          workload=workload.Workload(client, self.owner_gone),
                          kubeconfig_text=kubeconfig_text, helm_binary=self.helm,
                          _workdir=self.workdir / namespace / name / fingerprint)
        self._by_cluster[(namespace, name)] = conn
        return conn

    def cached(self, namespace: str, name: str) -> Connection | None:
        return self._by_cluster.get((namespace, name))

    async def forget(self, namespace: str, name: str) -> None:
        conn = self._by_cluster.pop((namespace, name), None)
        if conn is not None:
            await conn.client.close()

    async def close(self) -> None:
        for conn in self._by_cluster.values():
            await conn.client.close()
        self._by_cluster.clear()
