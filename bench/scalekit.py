"""What bench/scale.py shares between its phases: the profiles, timelines, request counts.

* The benchmark profile itself (20 objects templated by the cluster's name)
  is tests/scaleprofile.py, shared with tests/e2e/test_scale.py and
  re-exported here; `chart_profile` is the one-chart profile for the "real"
  registrations (one admin identity per API server).
* `Timeline`: list+watch of a profile's ClusterSummaries on the management
  cluster, noting per cluster the monotonic time a predicate first held
  (Provisioned at a new revision) and when its summary went — event-driven,
  not polled.
* `scrape` / `Requests`: `apiserver_request_total` from an API server's
  `/metrics` (HTTPS with the fleet's admin certificate), split into reads and
  writes; the servers' own Lease renewals and non-resource paths are left out.

Nothing here starts a process or a fleet; the callers do, and stop them.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import api, errors
from engine.adapters import kube

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from scaleprofile import (
    LABEL,
    OBJECTS,
    PROFILE,
    holdings,
    manifest_profile,
    manifests_configmap,
)

__all__ = ["LABEL", "OBJECTS", "PROFILE", "holdings", "manifest_profile", "manifests_configmap"]
Obj = dict[str, Any]
CHART_PROFILE = "bench-scale-chart"
CHART_LABEL = "scale-chart"
READ_VERBS = ("GET", "LIST", "WATCH", "CONNECT")


def chart_profile(repo_url: str, name: str = CHART_PROFILE, label: str = CHART_LABEL) -> Obj:
    """One small chart (the tests' stand-in) as release `scale-web` in namespace `scale-web`."""
    return {"apiVersion": api.API_VERSION, "kind": api.CLUSTER_PROFILE,
            "metadata": {"name": name},
            "spec": {"clusterSelector": {"matchLabels": {label: "on"}},
                     "helmCharts": [{"repositoryURL": repo_url, "chartName": "standin-app",
                                     "chartVersion": "0.1.0", "releaseName": "scale-web",
                                     "releaseNamespace": "scale-web"}]}}


# -- summaries: when each cluster got there ------------------------------------------------------


def deployed(summary: Obj, *, after_revision: int = 0) -> bool:
    """Provisioned at the revision it was assigned, and that revision is newer than `after`."""
    spec, st = summary.get("spec") or {}, summary.get("status") or {}
    want = spec.get("revision")
    return (st.get("phase") == "Provisioned" and want is not None
            and st.get("revision") == want and int(want) > after_revision)


def cluster_of(summary: Obj) -> str:
    return str(((summary.get("spec") or {}).get("clusterRef") or {}).get("name", ""))


class Timeline:
    """A live copy of one profile's ClusterSummaries and when each cluster first satisfied `ok`.

    `reset(ok)` starts a new measurement; `gone_at` records when a cluster's
    summary was deleted (withdrawal), `done_at` when `ok` held for it.
    """

    def __init__(self, client: kube.Client, profile: str) -> None:
        self.client, self.profile = client, profile
        self.selector = api.profile_selector(api.CLUSTER_PROFILE, profile)
        self.objects: dict[str, Obj] = {}
        self.ok: Callable[[Obj], bool] = lambda s: False
        self.done_at: dict[str, float] = {}
        self.gone_at: dict[str, float] = {}
        self.listed = asyncio.Event()
        self.changed = asyncio.Event()
        self.last_error = ""

    def reset(self, ok: Callable[[Obj], bool]) -> None:
        self.ok, self.done_at, self.gone_at = ok, {}, {}
        for summary in self.objects.values():
            self._note(summary)

    def _note(self, summary: Obj) -> None:
        cluster = cluster_of(summary)
        if cluster not in self.done_at and self.ok(summary):
            self.done_at[cluster] = time.monotonic()

    def count(self, ok: Callable[[Obj], bool]) -> int:
        return sum(1 for s in self.objects.values() if ok(s))

    async def run(self) -> None:
        while True:
            try:
                res = await self.client.resource(api.API_VERSION, api.CLUSTER_SUMMARY)
                doc = await self.client.request("GET", res.path(None),
                                                params={"labelSelector": self.selector})
                self.objects = {_key(o): o for o in doc.get("items", [])}
                for summary in self.objects.values():
                    self._note(summary)
                self.listed.set()
                self.changed.set()
                async for type_, obj in self.client.watch(
                        api.API_VERSION, api.CLUSTER_SUMMARY, label_selector=self.selector,
                        resource_version=doc["metadata"]["resourceVersion"],
                        timeout_seconds=600):
                    if type_ == "BOOKMARK":
                        continue
                    if type_ == "DELETED":
                        self.objects.pop(_key(obj), None)
                        self.gone_at.setdefault(cluster_of(obj), time.monotonic())
                    else:
                        self.objects[_key(obj)] = obj
                        self._note(obj)
                    self.changed.set()
            except errors.FlotillaError as exc:  # an expired resourceVersion, a dropped stream
                self.last_error = str(exc)
                await asyncio.sleep(0.2)

    async def wait(self, done: Callable[[], bool], timeout: float, what: str,
                   alive: Callable[[], None] = lambda: None) -> None:
        """Wait (event-driven) until `done()`; raise TimeoutError naming `what`."""
        deadline = time.monotonic() + timeout
        while not done():
            alive()
            left = deadline - time.monotonic()
            if left <= 0:
                error = f" (watch error: {self.last_error})" if self.last_error else ""
                raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}{error}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=min(left, 1.0))


def _key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no samples")
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


# -- requests the API servers counted ------------------------------------------------------------


_LINE = re.compile(r'^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<n>\S+)$')
_LABEL = re.compile(r'(\w+)="([^"]*)"')
Scrape = dict[tuple[str, str, str], float]  # (verb, resource, subresource) -> count


def ssl_context(fleet_dir: str | Path) -> ssl.SSLContext:
    pki = Path(fleet_dir) / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(pki / "admin.crt", pki / "admin.key")
    return ctx


def scrape(url: str, ctx: ssl.SSLContext) -> Scrape:
    """apiserver_request_total of one server, summed over codes and scopes."""
    with urllib.request.urlopen(f"{url}/metrics", context=ctx, timeout=30) as resp:
        text = resp.read().decode()
    out: Scrape = Counter()
    for line in text.splitlines():
        found = _LINE.match(line)
        if not found:
            continue
        labels = dict(_LABEL.findall(found["labels"]))
        if labels.get("dry_run"):
            continue
        key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))
        out[key] += float(found["n"])
    return out


def scrape_many(urls: list[str], ctx: ssl.SSLContext, workers: int = 8) -> list[Scrape]:
    with ThreadPoolExecutor(max_workers=min(workers, max(1, len(urls)))) as pool:
        return list(pool.map(lambda u: scrape(u, ctx), urls))


@dataclass
class Requests:
    """Requests a group of API servers counted between two scrapes, by kind."""

    reads: float = 0
    writes: float = 0
    by_kind: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> float:
        return self.reads + self.writes

    @classmethod
    def between(cls, before: list[Scrape], after: list[Scrape]) -> Requests:
        out = cls()
        for old, new in zip(before, after, strict=True):
            for (verb, resource, sub), value in new.items():
                n = value - old.get((verb, resource, sub), 0.0)
                # Leases are the API servers' own heartbeats; no resource is a non-resource
                # path (openapi, healthz): neither is the controller's work.
                if n <= 0 or not resource or resource == "leases":
                    continue
                out.by_kind[f"{verb} {resource}{'/' + sub if sub else ''}"] += int(n)
                if verb in READ_VERBS:
                    out.reads += n
                else:
                    out.writes += n
        return out

    def top(self, count: int = 4) -> str:
        return ", ".join(f"{k} {n}" for k, n in self.by_kind.most_common(count)) or "-"
