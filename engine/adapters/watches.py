"""Label-selected watches over workload clusters, with a live-object cache.

Used by the controller's drift detection. One watch per (cluster, kind,
label selector) — shared by every profile deploying that kind there — lists
once, then follows the watch stream from that resourceVersion, re-listing
only when the server says the version expired. Nothing polls. Each event
updates the cache and calls the owner's callback, which decides what to do.

An identity whose RBAC ends at its namespace may not list a kind across the
cluster (403): that watch then follows the kubeconfig's namespace, the only
one such an identity can have deployed to, instead of retrying for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.adapters import kube

log = logging.getLogger("flotilla.watches")

ObjKey = tuple[str, str, str, str]  # (apiVersion, kind, namespace, name)
Callback = Callable[[str, str, dict[str, Any]], Awaitable[None]]  # (cluster, type, obj)


@dataclass(frozen=True)
class WatchSpec:
    api_version: str
    kind: str
    label_selector: str


def obj_key(obj: Mapping[str, Any]) -> ObjKey:
    meta = obj.get("metadata") or {}
    return (obj.get("apiVersion", ""), obj.get("kind", ""), meta.get("namespace") or "",
            meta.get("name", ""))


class ClusterWatches:
    """The watches of one workload cluster."""

    def __init__(self, cluster: str, client: kube.Client, callback: Callback) -> None:
        self.cluster = cluster
        self.client = client
        self.callback = callback
        self.cache: dict[ObjKey, dict[str, Any]] = {}
        self.synced: set[WatchSpec] = set()
        self._tasks: dict[WatchSpec, asyncio.Task[None]] = {}
        # What each watch holds: two watches of one kind with different selectors (Helm's
        # objects and ours) share the cache, and neither may evict what the other holds.
        self._held: dict[WatchSpec, set[ObjKey]] = {}
        # Watches narrowed to the kubeconfig's namespace (the identity may not list more).
        self._scope: dict[WatchSpec, str] = {}

    def ensure(self, wanted: set[WatchSpec]) -> None:
        for spec in wanted - set(self._tasks):
            self._tasks[spec] = asyncio.create_task(self._run(spec))
        for spec in set(self._tasks) - wanted:
            self._tasks.pop(spec).cancel()
            self.synced.discard(spec)
            for key in self._held.pop(spec, set()):
                if not self._held_elsewhere(key, spec):
                    self.cache.pop(key, None)

    def _held_elsewhere(self, key: ObjKey, spec: WatchSpec) -> bool:
        return any(key in keys for other, keys in self._held.items() if other != spec)

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def _run(self, spec: WatchSpec) -> None:
        delay = 1.0
        while True:
            try:
                namespace = self._scope.get(spec)
                try:
                    items, doc_rv = await self.client.list_versioned(
                        spec.api_version, spec.kind, namespace=namespace,
                        label_selector=spec.label_selector)
                except kube.ApiError as exc:
                    if exc.status != 403 or namespace is not None:
                        raise
                    namespace = self._scope[spec] = _own_namespace(self.client)
                    log.info("%s: %s not listable across the cluster; watching namespace %s",
                             self.cluster, spec.kind, namespace)
                    items, doc_rv = await self.client.list_versioned(
                        spec.api_version, spec.kind, namespace=namespace,
                        label_selector=spec.label_selector)
                seen: set[ObjKey] = set()
                for obj in items:
                    obj.setdefault("apiVersion", spec.api_version)
                    obj.setdefault("kind", spec.kind)
                    key = obj_key(obj)
                    seen.add(key)
                    self.cache[key] = obj
                previous, self._held[spec] = self._held.get(spec, set()), seen
                for key in previous - seen:
                    gone = None if self._held_elsewhere(key, spec) else self.cache.pop(key, None)
                    if gone is not None:
                        await self.callback(self.cluster, "DELETED", gone)
                self.synced.add(spec)
                # A fresh list is a check point: objects deleted while we were away count.
                await self.callback(self.cluster, "SYNCED", {"apiVersion": spec.api_version,
                                                             "kind": spec.kind})
                delay = 1.0
                async for type_, obj in self.client.watch(
                        spec.api_version, spec.kind, namespace=namespace,
                        label_selector=spec.label_selector, resource_version=doc_rv):
                    if type_ == "BOOKMARK":
                        continue
                    obj.setdefault("apiVersion", spec.api_version)
                    obj.setdefault("kind", spec.kind)
                    key = obj_key(obj)
                    held = self._held.setdefault(spec, set())
                    if type_ == "DELETED":  # gone, or no longer matching this selector
                        held.discard(key)
                        if self._held_elsewhere(key, spec):
                            continue
                        self.cache.pop(key, None)
                    else:
                        held.add(key)
                        self.cache[key] = obj
                    await self.callback(self.cluster, type_, obj)
            except asyncio.CancelledError:
                raise
            except (kube.ApiError, kube.Unreachable) as exc:
                log.info("%s: watch %s restarts in %.0fs: %s", self.cluster, spec.kind, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            except Exception:  # a bug in a callback must not end the watch
                log.exception("%s: watch %s failed", self.cluster, spec.kind)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)


def _own_namespace(client: kube.Client) -> str:
    """The kubeconfig context's namespace ("default" when it names none)."""
    contexts = client.config.minified.get("contexts") or [{}]
    return str((contexts[0].get("context") or {}).get("namespace") or "default")
