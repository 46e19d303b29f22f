"""Connections to workload clusters, built once per kubeconfig and reused.

Used by the controller's cluster, summary and drift code. A connection is
an API client, the ownership-aware `Workload` writer and a Helm `Releases`
handle. It is rebuilt only when the kubeconfig Secret's content changes, so
pyhelm3's synchronous `helm version` probe runs once per cluster, not per
reconcile.

The API client — its HTTP connection pool, discovery cache and the
`clusterwatch.ClusterWatch` that probes the server — belongs to the API server
URL and identity (CA, client credentials, TLS name, proxy), not to the
WorkloadCluster: two WorkloadClusters with the same server and credentials
share one, and it closes when the last of them lets go. Every client's
requests share one limit of requests in flight (`max_requests`,
`--max-workload-requests`).

What must touch the disk (helm's kubeconfig, TLS files for a moment) lives in
the connection's private directory: 0700, inside a per-process directory under
the workdir, removed when the connection closes. Helm is handed the kubeconfig's
current context alone (`KubeConfig.minified`), so it runs the same exec plugin
as our client and sees no other context's secrets. A per-process directory is
locked while its process lives; one whose lock is free was left by a process that
died (SIGKILL, OOM) and is removed at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from engine.adapters import clusterwatch, helm, kube, kubeconfig, workload

LOCK = ".lock"
MAX_REQUESTS = 64  # default of --max-workload-requests


@dataclass(repr=False)
class Pool:
    """One API server as one identity sees it: a client and the watch that probes it."""

    identity: str
    client: kube.Client
    watch: clusterwatch.ClusterWatch
    users: set[tuple[str, str]]


def identity(config: kubeconfig.KubeConfig) -> str:
    """Which clients are interchangeable: same server, CA, credentials, TLS name and proxy."""
    mini = config.minified
    if not mini:  # built by hand (tests): the fields that decide where and as whom
        return hashlib.sha256(repr((config.server, config.ca_data, config.cert_data,
                                    config.key_data, config.token, config.token_file,
                                    config.exec, config.insecure, config.tls_server_name,
                                    config.proxy_url)).encode()).hexdigest()[:16]
    doc = json.dumps([mini.get("clusters"), mini.get("users")], sort_keys=True, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


def _namespace(config: kubeconfig.KubeConfig) -> str:
    contexts = config.minified.get("contexts") or [{}]
    return str((contexts[0].get("context") or {}).get("namespace") or "default")


@dataclass(repr=False)
class Connection:
    name: str
    fingerprint: str
    client: kube.Client
    workload: workload.Workload
    config: kubeconfig.KubeConfig
    helm_binary: Path
    private: Path
    pool: Pool
    _releases: helm.Releases | None = None

    def __repr__(self) -> str:
        return f"Connection({self.name!r}, {self.config.server!r}, {self.fingerprint})"

    def releases(self) -> helm.Releases:
        if self._releases is None:
            self._releases = helm.Releases(self.config.minified_text(), self.private,
                                           self.helm_binary)
        return self._releases

    @property
    def watch(self) -> clusterwatch.ClusterWatch:
        return self.pool.watch

    def close(self) -> None:
        """Its own files; the client is the pool's (`Connections._release`)."""
        if self._releases is not None:
            self._releases.close()
        shutil.rmtree(self.private, ignore_errors=True)


class Connections:
    def __init__(self, workdir: Path, helm: Path,
                 owner_gone: Callable[[str], bool] = lambda ref: False, *,
                 max_requests: int = MAX_REQUESTS, max_backoff: float = 60.0) -> None:
        self.workdir = workdir
        self.helm = helm
        self.owner_gone = owner_gone  # see workload.Workload
        # Told (namespace, name) when the probe of a cluster's server has news.
        self.notify: Callable[[str, str], None] = lambda namespace, name: None
        self.observe: Callable[[str], None] | None = None  # each request's verb (metrics)
        self.max_backoff = max_backoff
        self.limiter = asyncio.Semaphore(max(1, max_requests))
        self._by_cluster: dict[tuple[str, str], Connection] = {}
        self._pools: dict[str, Pool] = {}
        self._root: Path | None = None
        self._lock: IO[str] | None = None

    def _private(self, namespace: str, name: str, fingerprint: str) -> Path:
        if self._root is None:
            self._root, self._lock = _process_dir(self.workdir)
        path = self._root / namespace / name / fingerprint
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    async def get(self, namespace: str, name: str, kubeconfig_text: str) -> Connection:
        fingerprint = hashlib.sha256(kubeconfig_text.encode()).hexdigest()[:16]
        known = self._by_cluster.get((namespace, name))
        if known is not None and known.fingerprint == fingerprint:
            return known
        if known is not None:
            del self._by_cluster[(namespace, name)]
            await self._release(known, (namespace, name))
        config = kubeconfig.parse(kubeconfig_text)
        private = self._private(namespace, name, fingerprint)
        pool = self._pool(config, (namespace, name))
        conn = Connection(name=f"{namespace}/{name}", fingerprint=fingerprint,
                          client=pool.client,
                          workload=workload.Workload(pool.client, self.owner_gone),
                          config=config, helm_binary=self.helm, private=private, pool=pool)
        self._by_cluster[(namespace, name)] = conn
        return conn

    def _pool(self, config: kubeconfig.KubeConfig, user: tuple[str, str]) -> Pool:
        ident = identity(config)
        pool = self._pools.get(ident)
        if pool is None:
            if self._root is None:
                self._root, self._lock = _process_dir(self.workdir)
            scratch = self._root / "pools" / ident
            scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
            client = kube.Client(config, name=f"{user[0]}/{user[1]}", timeout=10.0,
                                 scratch=scratch, limiter=self.limiter)
            client.observe = self.observe
            watch = clusterwatch.ClusterWatch(
                client, namespace=_namespace(config), max_backoff=self.max_backoff,
                notify=lambda: self._tell(ident))
            pool = self._pools[ident] = Pool(identity=ident, client=client, watch=watch,
                                             users=set())
        pool.users.add(user)
        return pool

    def _tell(self, ident: str) -> None:
        pool = self._pools.get(ident)
        for namespace, name in sorted(pool.users if pool else ()):
            self.notify(namespace, name)

    async def _release(self, conn: Connection, user: tuple[str, str]) -> None:
        conn.close()
        pool = conn.pool
        pool.users.discard(user)
        if not pool.users and self._pools.get(pool.identity) is pool:
            del self._pools[pool.identity]
            await pool.watch.stop()
            await pool.client.close()
            if self._root is not None:
                shutil.rmtree(self._root / "pools" / pool.identity, ignore_errors=True)

    def pools(self) -> int:
        """Clients open now (one per API server and identity)."""
        return len(self._pools)

    def cached(self, namespace: str, name: str) -> Connection | None:
        return self._by_cluster.get((namespace, name))

    async def forget(self, namespace: str, name: str) -> None:
        conn = self._by_cluster.pop((namespace, name), None)
        if conn is not None:
            await self._release(conn, (namespace, name))

    async def close(self) -> None:
        for key, conn in list(self._by_cluster.items()):
            await self._release(conn, key)
        self._by_cluster.clear()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def _process_dir(workdir: Path) -> tuple[Path, IO[str]]:
    """A fresh 0700 directory for this process, locked while it lives; stale ones removed."""
    workdir.mkdir(parents=True, exist_ok=True)
    _remove_stale(workdir)
    # Made under another prefix and renamed once locked, so no sweep sees it unlocked.
    fresh = Path(tempfile.mkdtemp(prefix="new-", dir=workdir))
    lock = open(fresh / LOCK, "w")  # noqa: SIM115 - held for the process's life
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    final = fresh.with_name("run-" + fresh.name.removeprefix("new-"))
    fresh.rename(final)
    return final, lock


def _remove_stale(workdir: Path) -> None:
    for folder in workdir.iterdir():
        if folder.name.startswith("run-") and folder.is_dir():
            try:
                with open(folder / LOCK) as held:
                    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live process holds it
            except OSError:
                pass
            shutil.rmtree(folder, ignore_errors=True)
        elif folder.is_dir() and not folder.name.startswith("new-"):
            # Before per-process directories: <namespace>/<cluster>/<hash>/kubeconfig, never
            # removed. Only folders of exactly that shape go.
            with contextlib.suppress(OSError):
                if any(folder.glob("*/*/kubeconfig")):
                    shutil.rmtree(folder, ignore_errors=True)
