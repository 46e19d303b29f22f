"""What bench/real_charts.py watches and counts: release timelines, writes, drift metrics.

* `Timeline` keeps every change of a projected state of a watched collection
  (helm's release Secrets, the ClusterSummaries' service rows and drift
  lists) with the monotonic time its watch event arrived, so install and
  upgrade times are read off events, not a polling interval. Helm's release
  Secrets are watched as metadata only (`MetadataTracker`): one holds the
  whole gzipped chart, up to ~1 MiB, more than aiohttp reads as one line
  (512 KiB), and their labels say all that is needed.
* `HelmRuns` notes when the controller starts each `helm install/upgrade`
  process (/proc), which comes before helm's release record: helm loads the
  chart, installs its crds/ folder and renders first.
* `write_counts` turns two `apiserver_request_total` scrapes
  (`drift_idle.scrape_all`) into persisted writes by verb and resource: the
  metric carries `dry_run`, so the drift checker's server-side dry runs are
  counted apart, never as writes.
* `written_objects` reads every object's `metadata.managedFields` on a
  cluster and counts those a field manager changed inside a window: which
  process wrote what, which the request metric cannot say (its labels have
  no user agent, and every process on the dev fleet uses one identity).
* `controller_metric` sums a counter from the controller's `--metrics-port`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import re
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import benchkube as bk
import drift_idle

from engine import api
from engine.adapters import kube

Obj = dict[str, Any]
State = tuple[Any, ...]
Key = tuple[Any, ...]
WRITE_EXCLUDED_VERBS = drift_idle.READ_VERBS
# Field managers of the controller and the helm it runs (helm writes as "Helm"). The node
# simulator writes its Leases as flotilla-nodesim, but its Node and Pod status patches carry
# "flotilla", the user agent of every engine kube.Client: the controller deploys no Nodes and
# never writes Pods, so those are the simulator's.
CONTROLLER_MANAGERS = ("flotilla", "helm")
SIMULATOR_KINDS = ("Node", "Pod")
_LABEL = re.compile(r'(\w+)="([^"]*)"')  # one label of a Prometheus text series


@dataclass
class Change:
    at: float  # time.monotonic() when the watch event arrived
    key: Key
    state: State


class Timeline:
    """Every change of `project(obj)` over a watched collection (use `observe` as a predicate)."""

    def __init__(self, project: Callable[[Obj], dict[Key, State]]) -> None:
        self.project = project
        self.last: dict[Key, State] = {}
        self.changes: list[Change] = []

    def observe(self, objects: dict[str, Obj]) -> bool:
        now = time.monotonic()
        for obj in objects.values():
            for key, state in self.project(obj).items():
                if self.last.get(key) != state:
                    self.last[key] = state
                    self.changes.append(Change(now, key, state))
        return False  # never "done": the tracker runs until its task is cancelled

    def first(self, key: Key, ok: Callable[[State], bool], after: float) -> Change | None:
        return next((c for c in self.changes
                     if c.key == key and c.at >= after and ok(c.state)), None)

    def between(self, start: float, end: float) -> list[Change]:
        return [c for c in self.changes if start <= c.at <= end]

    def tracker(self, client: kube.Client, api_version: str, kind: str, *,
                label_selector: str | None = None, what: str = "") -> bk.Tracker:
        return bk.Tracker(client, api_version, kind, self.observe,
                          label_selector=label_selector, what=what)


class MetadataTracker(bk.Tracker):
    """bk.Tracker's list-then-watch over all namespaces, asking only for metadata."""

    LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
    ITEM = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"

    async def run(self) -> None:
        res = await self.client.resource(self.api_version, self.kind)
        config = self.client.config
        headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
        connector = aiohttp.TCPConnector(ssl=config.ssl_context())
        async with aiohttp.ClientSession(config.server, connector=connector,
                                         headers=headers) as http:
            while not self.done.is_set():
                try:
                    await self._list_and_watch(http, res.path())
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    await asyncio.sleep(0.2)

    async def _list_and_watch(self, http: aiohttp.ClientSession, path: str) -> None:
        params = {"labelSelector": self.label_selector or ""}
        async with http.get(path, params=params, headers={"Accept": self.LIST}) as resp:
            resp.raise_for_status()
            doc = await resp.json()
        self.objects = {bk.key(o): o for o in doc.get("items") or []}
        self._check()
        self.listed.set()
        # A long stream: an event lost while re-listing would hide a pending-* state.
        params |= {"watch": "true", "allowWatchBookmarks": "true", "timeoutSeconds": "1800",
                   "resourceVersion": doc["metadata"]["resourceVersion"]}
        timeout = aiohttp.ClientTimeout(total=None, sock_read=1830)
        async with http.get(path, params=params, headers={"Accept": self.ITEM},
                            timeout=timeout) as resp:
            resp.raise_for_status()
            async for line in resp.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    return  # expired resourceVersion: list again
                if kind == "DELETED":
                    self.objects.pop(bk.key(obj), None)
                elif kind != "BOOKMARK":
                    self.objects[bk.key(obj)] = obj
                self._check()


@dataclass(frozen=True)
class HelmRun:
    started: float  # time.monotonic() scale, from /proc/<pid>/stat starttime (10 ms ticks)
    verb: str
    release: str


class HelmRuns:
    """`helm install|upgrade` processes in the controller's session, polled from /proc.

    The start time is the process's own (starttime, clock ticks since boot), so
    it is exact to a tick whatever the polling interval; a helm that runs for
    less than the interval may be missed. Dry runs (`--dry-run=…`) are left out.
    """

    def __init__(self, session: int, interval: float = 0.1) -> None:
        self.session, self.interval = session, interval
        self.runs: list[HelmRun] = []
        self._seen: set[int] = set()

    def scan(self) -> None:
        # starttime counts from boot (CLOCK_BOOTTIME); bring it onto time.monotonic()'s scale.
        offset = time.clock_gettime(time.CLOCK_BOOTTIME) - time.monotonic()
        tick = float(os.sysconf("SC_CLK_TCK"))
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in self._seen:
                continue
            self._seen.add(int(entry.name))
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                args = [a.decode() for a in (entry / "cmdline").read_bytes().split(b"\0") if a]
            except OSError:
                continue
            if int(stat[3]) != self.session:  # stat[3] is field 6, the session id
                continue
            if not args or not args[0].endswith("helm"):
                self._seen.discard(int(entry.name))  # the controller, or a child not yet exec'd
                continue
            if len(args) < 3:
                continue
            if args[1] in ("install", "upgrade") and \
                    not any(a.startswith("--dry-run") for a in args):
                self.runs.append(HelmRun(int(stat[19]) / tick - offset, args[1], args[2]))

    async def run(self) -> None:
        while True:
            self.scan()
            await asyncio.sleep(self.interval)

    def last_start(self, release: str, after: float, before: float) -> float | None:
        starts = [r.started for r in self.runs
                  if r.release == release and after <= r.started <= before]
        return max(starts) if starts else None


@contextlib.asynccontextmanager
async def polling(runs: HelmRuns) -> AsyncIterator[HelmRuns]:
    """Scan /proc for helm runs while the block runs."""
    task = asyncio.create_task(runs.run())
    try:
        yield runs
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def release_states(secret: Obj) -> dict[Key, State]:
    """Helm's release record: (namespace, release, revision) -> (status,)."""
    labels = secret["metadata"].get("labels") or {}
    if labels.get("owner") != "helm" or "version" not in labels:
        return {}
    key = (secret["metadata"]["namespace"], labels.get("name", ""), int(labels["version"]))
    return {key: (labels.get("status", ""),)}


def summary_states(summary: Obj) -> dict[Key, State]:
    """("row", profile, release) -> (status, hash, lastAppliedTime, version, healthy);
    ("drift", profile) -> the drift entries as (object, paths, detectedAt)."""
    profile = summary["metadata"].get("labels", {}).get(api.PROFILE_NAME_LABEL, "")
    status = summary.get("status") or {}
    out: dict[Key, State] = {}
    for row in status.get("services") or []:
        out[("row", profile, row.get("name"))] = (
            row.get("status"), row.get("hash"), row.get("lastAppliedTime"), row.get("version"),
            row.get("healthy"))
    out[("drift", profile)] = tuple(
        (describe(d), tuple(d.get("paths") or ()), d.get("detectedAt", ""))
        for d in status.get("drift") or [])
    return out


def describe(ref: Obj) -> str:
    """`Kind.group namespace/name` of a drift entry (group/version/kind/namespace/name)."""
    group = f".{ref['group']}" if ref.get("group") else ""
    where = f"{ref['namespace']}/" if ref.get("namespace") else ""
    return f"{ref.get('kind')}{group} {where}{ref.get('name')}"


# -- writes --------------------------------------------------------------------------------


@dataclass
class Writes:
    """Persisted writes (and dry runs apart) one API server counted between two scrapes."""

    persisted: Counter[str] = field(default_factory=Counter)  # "VERB resource[/sub]"
    dry_runs: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.persisted.values())


def write_counts(before: drift_idle.Scrape, after: drift_idle.Scrape) -> Writes:
    out = Writes()
    for labels_key, value in after.requests.items():
        n = int(value - before.requests.get(labels_key, 0.0))
        labels = dict(labels_key)
        verb, resource = labels.get("verb", ""), labels.get("resource", "")
        if n <= 0 or not resource or verb in WRITE_EXCLUDED_VERBS:
            continue
        sub = labels.get("subresource", "")
        what = f"{verb} {resource}{'/' + sub if sub else ''}"
        # dry_run is "" for a real request, the dryRun value (All) for a dry run.
        (out.dry_runs if labels.get("dry_run") else out.persisted)[what] += n
    return out


# -- managedFields ----------------------------------------------------------------------------


@dataclass
class Written:
    """Objects whose managedFields show a write by a manager inside a window."""

    by_manager: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # mgr, op, kind
    # resource (plural, as apiserver_request_total names it) -> True if the controller's
    # managers changed one of its objects, False if only the fleet's did
    by_resource: dict[str, bool] = field(default_factory=dict)
    controller_objects: list[str] = field(default_factory=list)
    objects: int = 0


def epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    parsed = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")
    return parsed.replace(tzinfo=datetime.UTC).timestamp()


def is_controller(manager: str, kind: str) -> bool:
    name = manager.lower()
    if name == "flotilla-nodesim" or (name == "flotilla" and kind in SIMULATOR_KINDS):
        return False
    return name in CONTROLLER_MANAGERS or name.startswith("flotilla-")


async def written_objects(client: kube.Client, since: float, until: float) -> Written:
    """Every listable object of the cluster; entries stamped in [floor(since), until].

    managedFields times are whole seconds and set only when a write changed the
    object, so this sees real changes; a no-op write shows in the request count only.
    """
    out = Written()
    groups = await client.request("GET", "/apis")
    versions = ["v1", *(g["preferredVersion"]["groupVersion"] for g in groups["groups"])]
    seen: set[str] = set()
    for gv in versions:
        base = "/api/v1" if gv == "v1" else f"/apis/{gv}"
        for res in (await client.request("GET", base)).get("resources", []):
            if "/" in res["name"] or "list" not in res.get("verbs", []):
                continue
            listed = await client.request("GET", f"{base}/{res['name']}")
            for obj in listed.get("items", []):
                meta = obj["metadata"]
                if meta.get("uid") in seen:
                    continue  # events are served by two groups
                seen.add(meta.get("uid", ""))
                out.objects += 1
                for entry in meta.get("managedFields") or []:
                    at = epoch(entry.get("time"))
                    if at is None or not int(since) <= at <= until:
                        continue
                    manager = entry.get("manager", "")
                    out.by_manager[(manager, entry.get("operation", ""), res["kind"])] += 1
                    ours = is_controller(manager, res["kind"])
                    out.by_resource[res["name"]] = out.by_resource.get(res["name"], False) or ours
                    if ours:
                        where = f"{meta['namespace']}/" if meta.get("namespace") else ""
                        out.controller_objects.append(
                            f"{res['kind']} {where}{meta['name']} ({manager} {entry.get('time')})")
    return out


def controller_metric(port: int, name: str, by: str = "") -> Counter[str]:
    """A counter from the controller's /metrics, summed per value of label `by` ("": all)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith((f"{name}{{", f"{name} ")):
            series, value = line.rsplit(" ", 1)
            labels = dict(_LABEL.findall(series))
            out[labels.get(by, "") if by else ""] += int(float(value))
    return out
