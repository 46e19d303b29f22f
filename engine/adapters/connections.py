"""Connections to workload clusters, built once per kubeconfig and reused.

Used by the controller's cluster, summary and drift code. A connection is
an API client, the ownership-aware `Workload` writer and a Helm `Releases`
handle. It is rebuilt only when the kubeconfig Secret's content changes, so
pyhelm3's synchronous `helm version` probe runs once per cluster, not per
reconcile.

What must touch the disk (helm's kubeconfig, TLS files for a moment) lives in
the connection's private directory: 0700, inside a per-process directory under
the workdir, removed when the connection closes. Helm is handed the kubeconfig's
current context alone (`KubeConfig.minified`), so it runs the same exec plugin
as our client and sees no other context's secrets. A per-process directory is
locked while its process lives; one whose lock is free was left by a process that
died (SIGKILL, OOM) and is removed at the next start.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from engine.adapters import helm, kube, kubeconfig, workload

LOCK = ".lock"


@dataclass(repr=False)
class Connection:
    name: str
    fingerprint: str
    client: kube.Client
    workload: workload.Workload
    config: kubeconfig.KubeConfig
    helm_binary: Path
    private: Path
    _releases: helm.Releases | None = None

    def __repr__(self) -> str:
        return f"Connection({self.name!r}, {self.config.server!r}, {self.fingerprint})"

    def releases(self) -> helm.Releases:
        if self._releases is None:
            self._releases = helm.Releases(self.config.minified_text(), self.private,
                                           self.helm_binary)
        return self._releases

    async def close(self) -> None:
        await self.client.close()
        if self._releases is not None:
            self._releases.close()
        shutil.rmtree(self.private, ignore_errors=True)


class Connections:
    def __init__(self, workdir: Path, helm: Path,
                 owner_gone: Callable[[str], bool] = lambda ref: False) -> None:
        self.workdir = workdir
        self.helm = helm
        self.owner_gone = owner_gone  # see workload.Workload
        self._by_cluster: dict[tuple[str, str], Connection] = {}
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
            await known.close()
        config = kubeconfig.parse(kubeconfig_text)
        private = self._private(namespace, name, fingerprint)
        client = kube.Client(config, name=f"{namespace}/{name}", timeout=10.0, scratch=private)
        conn = Connection(name=f"{namespace}/{name}", fingerprint=fingerprint, client=client,
                          workload=workload.Workload(client, self.owner_gone), config=config,
                          helm_binary=self.helm, private=private)
        self._by_cluster[(namespace, name)] = conn
        return conn

    def cached(self, namespace: str, name: str) -> Connection | None:
        return self._by_cluster.get((namespace, name))

    async def forget(self, namespace: str, name: str) -> None:
        conn = self._by_cluster.pop((namespace, name), None)
        if conn is not None:
            await conn.close()

    async def close(self) -> None:
        for conn in self._by_cluster.values():
            await conn.close()
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
