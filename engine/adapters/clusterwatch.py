"""Follow a workload API server with one watch instead of polling it: reachable, version, nodes.

Used by `connections`, one per API server URL and identity (clusters that share
both share it), and read by the controller's WorkloadCluster reconcile
(`engine.controller.clusters`), which `notify` wakes whenever the state
changes. The decision and its figures are in docs/architecture.md ("Probes
follow watches"); in short:

* On (re)connect: GET /version, LIST Nodes, then WATCH Nodes from the list's
  resourceVersion. An open stream is the proof the server is reachable; node
  events update the facts (a per-node digest, `engine.facts`, not the Node).
* Idle, the only requests are the watch's renewals (`RENEW` s, resumed from
  the last bookmark, no /version, no list); the server sends a bookmark
  every minute, so a stream silent for `QUIET` s counts as broken (a hung
  server). A broken stream or a refused connection is an error at once:
  `state` says so, `notify` runs, and the next attempt waits 2, 4 … s up to
  `max_backoff` (`poke()` cuts the wait short).
* An identity that may not list Nodes (RBAC limited to a namespace) is
  reachable all the same: `state.nodes` is None (facts unknown), and the
  watch follows the one ConfigMap every namespace has (`kube-root-ca.crt`,
  by field selector: it never changes) in the kubeconfig's namespace. If that
  is forbidden too, GET /version every `POLL` s is the probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine import errors, facts
from engine.adapters import kube

log = logging.getLogger("flotilla.clusterwatch")

RENEW = 600        # timeoutSeconds of each watch: its renewal is the one idle request
QUIET = 100.0      # seconds without a byte (bookmarks come every 60 s): the stream is dead
POLL = 60.0        # the probe's period when nothing at all may be watched
POKE_AFTER = 2.0   # poke() does not cut a backoff shorter than this since the last attempt
ROOT_CA = "kube-root-ca.crt"


@dataclass(frozen=True)
class State:
    """What the last attempt found. `nodes` None: not readable with this identity."""

    version: str = ""
    nodes: dict[str, facts.NodeDigest] | None = field(default_factory=dict)
    nodes_message: str = ""
    error: errors.FlotillaError | None = None
    failures: int = 0

    @property
    def reachable(self) -> bool:
        return self.error is None

    def facts(self) -> dict[str, Any] | None:
        return None if self.nodes is None else facts.facts(self.nodes.values())


class ClusterWatch:
    def __init__(self, client: kube.Client, *, namespace: str, notify: Callable[[], None],
                 max_backoff: float = 60.0, renew: int = RENEW, quiet: float = QUIET,
                 poll: float = POLL) -> None:
        self.client = client
        self.namespace = namespace or "default"
        self.notify = notify
        self.max_backoff = max_backoff
        self.renew, self.quiet, self.poll = renew, quiet, poll
        self.state: State | None = None  # None until the first attempt ends
        self._task: asyncio.Task[None] | None = None
        self._poked = asyncio.Event()
        self._last_attempt = 0.0
        self._heard = False  # an event or bookmark arrived on the current stream

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"clusterwatch {self.client}")

    def poke(self) -> None:
        """Try again now if waiting out a backoff (someone reached the server meanwhile)."""
        self._poked.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    def _set(self, state: State) -> None:
        changed = state != self.state
        self.state = state
        if changed:
            self.notify()

    async def _run(self) -> None:
        failures = 0
        while True:
            self._last_attempt = time.monotonic()
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except _Expired:
                continue  # connect again: /version and a fresh list
            except errors.FlotillaError as exc:
                failures += 1
                self._set(State(error=exc, failures=failures,
                                version=self.state.version if self.state else ""))
                await self._backoff(min(2.0 ** min(failures, 6), self.max_backoff))
                continue
            except Exception:  # a bug here must not end the probe of this cluster
                log.exception("%s: following the cluster failed", self.client.name)
                failures += 1
                await self._backoff(min(2.0 ** min(failures, 6), self.max_backoff))
                continue
            failures = 0  # _follow returns only to start over (poll mode)

    async def _backoff(self, seconds: float) -> None:
        self._poked.clear()
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poked.wait(), left)
            if self._poked.is_set():
                self._poked.clear()
                # Never sooner than POKE_AFTER after the last attempt: our own notify()
                # wakes a reconcile that may poke, and that must not become a busy loop.
                deadline = min(deadline, self._last_attempt + POKE_AFTER)

    async def _follow(self) -> None:
        """Connect, then follow until the stream breaks (raises) or, polling, one period."""
        version = await self.client.version()
        nodes: dict[str, facts.NodeDigest] | None = {}
        message = ""
        try:
            items, rv = await self.client.list_versioned("v1", "Node")
            nodes = {item["metadata"]["name"]: facts.digest(item) for item in items}
            watched: tuple[str, str | None] = ("Node", None)
        except kube.ApiError as exc:
            if exc.status != 403:
                raise
            nodes, message = None, ("nodes are not readable with this kubeconfig's identity "
                                    "(403 on list nodes): facts unknown")
            watched = ("ConfigMap", f"metadata.name={ROOT_CA}")
            try:
                _, rv = await self.client.list_versioned(
                    "v1", "ConfigMap", namespace=self.namespace, field_selector=watched[1])
            except kube.ApiError as inner:
                if inner.status != 403:
                    raise
                # Nothing we may watch: /version every POLL seconds is the probe.
                self._set(State(version=version, nodes=None, nodes_message=message))
                await asyncio.sleep(self.poll)
                return
        # A copy: the watch below edits `nodes`, and a State is compared with the next one.
        self._set(State(version=version, nodes=None if nodes is None else dict(nodes),
                        nodes_message=message))
        retried = False
        while True:
            self._heard = False
            try:
                rv = await self._watch(watched, rv, nodes)
            except kube.Unreachable:
                # One silent stream is no outage: with no watch cache the server sends no
                # bookmarks. Watch again at once; a server that is down refuses that at
                # once, and only a second break in a row (nothing heard between) counts.
                if retried and not self._heard:
                    raise
                retried = True
                continue
            retried = False

    async def _watch(self, watched: tuple[str, str | None], rv: str,
                     nodes: dict[str, facts.NodeDigest] | None) -> str:
        """One watch request, to its timeout; the resourceVersion to resume from."""
        kind, selector = watched
        namespace = self.namespace if kind == "ConfigMap" else None
        try:
            async for type_, obj in self.client.watch(
                    "v1", kind, namespace=namespace, field_selector=selector,
                    resource_version=rv, timeout_seconds=self.renew, quiet_for=self.quiet):
                self._heard = True
                meta = obj.get("metadata") or {}
                rv = str(meta.get("resourceVersion") or rv)
                if type_ == "BOOKMARK" or nodes is None:
                    continue
                name = str(meta.get("name", ""))
                before = nodes.get(name)
                if type_ == "DELETED":
                    nodes.pop(name, None)
                else:
                    nodes[name] = facts.digest(obj)
                if nodes.get(name) != before and self.state is not None:
                    self._set(State(version=self.state.version, nodes=dict(nodes)))
        except kube.ApiError as exc:
            if exc.status != 410:
                raise
            raise _Expired() from exc
        return rv


class _Expired(errors.RetriableError):
    """The resourceVersion to resume from is compacted away: list again (not an outage)."""

    def __init__(self) -> None:
        super().__init__("watch expired", reason="Expired", delay=0)
