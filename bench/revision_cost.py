"""What a revision costs: building its snapshot, and the requests one ConfigMap edit causes.

    .venv/bin/python bench/revision_cost.py [--quick] [--build-reps N] [--edits N]
                                            [--soak S] [--settle S] [--timeout S]
                                            [--keep-log]

Part 1, the snapshot of a profile using 5 catalog services (cert-manager,
kserve-crd, kserve, istio-base, istiod: closed under dependsOn) and 50
policyRefs, each a ConfigMap holding a Deployment and a Service (1-2 KiB
of YAML):

  (a) pure: `snapshot.Snapshot(...)` + `digest()` + `snapshot.split` +
      `snapshot.join` on plain data (the catalog files, the generated
      manifests), each step timed apart, no fleet running;
  (b) `revisions.build` against the fleet's management API server, with a
      controller `Context` built the way `flotilla plan`
      (engine/controller/preview.py) builds one, its store filled by
      listing every ConfigMap and CatalogService — what the controller's
      cluster-wide ConfigMap watch and catalog watch hold. For reference,
      the same with an empty ConfigMap store (every reference read with a
      GET, the fallback in `revisions.read_reference`).
  N runs each (30, --quick 5), after one unmeasured run; milliseconds.

Part 2, one ConfigMap edit rolled out over 10 api-only workload clusters
(`benchfleet.running`: management + 10 clusters, CRDs and catalog,
registered, the controller as a child process). ClusterProfile
`bench-rc-edit` selects all 10 (`bench=on`), `maxUpdate: 1`, `rollout:
{minSuccessTime: 20s, stages: [canary (bench-ring=canary, cluster-1 only),
main]}`, `policyRefs` -> ConfigMap `flotilla-system/bench-rc-edit` holding one
ConfigMap (`default/bench-rc-app`, `data.version`). Once revision 1 is
Complete, per edit (3, --quick 1):

  1. every API server's `/metrics` is scraped (`drift_idle.scrape_all`);
  2. the policy ConfigMap's data is merge-patched to the next version;
  3. once the canary's ClusterSummary is Provisioned and healthy at the new
     revision, plus --settle (3 s), well inside the 20 s soak, the servers
     are scraped again ("canary read"); the summary watch then tells whether
     the main stage had started by then (it must not have);
  4. once the profile is Complete at the new revision on all 10, plus
     --settle, a third scrape ("whole edit").

Requests per workload cluster come from `apiserver_request_total`; an
api-only workload cluster has no client but the controller, apart from the
API server itself. Left out of "controller requests" and shown apart:
  * probe: `LIST nodes`, the controller's periodic cluster probe (every
    30 s per cluster). Its other request, `GET /version`, is not counted by
    that metric at all (checked on this fleet), so `LIST nodes` is the whole
    probe as the metric sees it; the controller lists nodes nowhere else;
  * server: `resource="leases"` (the API server's own lease renewals),
    non-resource paths under `openapi/` (its own OpenAPI polling) and `LIST
    services` (its ClusterIP/NodePort repair loop, every 3 min; seen on an
    idle fleet without the controller, which never lists Services).
Everything else is counted against the controller, by verb and resource. A
watch is counted when it ends, so opened watches show as the change in
`apiserver_longrunning_requests{verb="WATCH"}`. The script itself sends
nothing to a workload cluster between the first and the last scrape.

Management writes caused by an edit: persisted writes between the first
and the last scrape (`chartwatch.write_counts`: every verb but GET, LIST,
WATCH, dry runs apart), leases and our own ConfigMap patch left out; the
ControllerRevisions of the profile listed before and after; and the
ClusterSummary changes seen by a watch (a new resourceVersion; a new
generation is a spec change, the rest are status writes).

Target: 0 controller requests (probe excluded) to a cluster not yet
assigned the new revision. Everything started here is stopped in `finally`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import benchfleet as bf
import benchkube as bk
import benchlib as bl
import chartwatch
import drift_idle
import yaml

from engine import api, snapshot
from engine.adapters import connections, helm, kube, kubeconfig
from engine.controller import context, reporting, revisions, store
from engine.devfleet import fleet, testbin
from engine.model import types

Obj = dict[str, Any]
SERVICES = ("cert-manager", "kserve-crd", "kserve", "istio-base", "istiod")
POLICY_REFS = 50
BUILD_PROFILE = "bench-rc-build"
EDIT_PROFILE = "bench-rc-edit"
APP_NS, APP = "default", "bench-rc-app"
RING = "bench-ring"
SYSTEM_NS = api.SYSTEM_NAMESPACE
PROBE = "LIST nodes"
# The API server's own periodic Service list (its ClusterIP / NodePort repair loop, every
# 3 min): seen on an idle fleet with no controller; the controller never lists Services.
SERVER_LIST = "LIST services"


# -- part 1: the snapshot ----------------------------------------------------------------------


def _manifest(i: int) -> str:
    """A Deployment and its Service as one might keep them in a ConfigMap, 1-2 KiB of YAML."""
    app = f"svc-{i:02d}"
    labels = {"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "bench-platform"}
    # A varying number of settings spreads the sizes over 1-2 KiB.
    env = [{"name": f"SETTING_{k}", "value": f"value-{i}-{k}"} for k in range(2 + i % 10 * 2)]
    container = {"name": "app", "image": f"registry.invalid/{app}:1.{i}.0",
                 "ports": [{"name": "http", "containerPort": 8080}], "env": env,
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                               "limits": {"memory": "256Mi"}},
                 "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}}}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": app, "namespace": "bench-apps", "labels": labels},
                  "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                           "template": {"metadata": {"labels": labels},
                                        "spec": {"containers": [container]}}}}
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": app, "namespace": "bench-apps", "labels": labels},
               "spec": {"selector": labels,
                        "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
    return yaml.safe_dump_all([deployment, service], sort_keys=False)


def _policy_name(i: int) -> str:
    return f"bench-rc-p{i:02d}"


def policy_configmaps() -> list[Obj]:
    return [{"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": _policy_name(i), "namespace": SYSTEM_NS},
             "data": {"objects.yaml": _manifest(i)}} for i in range(POLICY_REFS)]


def build_profile() -> Obj:
    return {"apiVersion": api.API_VERSION, "kind": api.CLUSTER_PROFILE,
            "metadata": {"name": BUILD_PROFILE},
            "spec": {"clusterSelector": {"matchLabels": {"bench-build": "on"}},
                     "services": [{"name": s} for s in SERVICES],
                     "policyRefs": [{"kind": "ConfigMap", "namespace": SYSTEM_NS,
                                     "name": _policy_name(i)} for i in range(POLICY_REFS)]}}


def catalog_files() -> dict[str, Obj]:
    """Every catalog entry's spec by name, read from catalog/ as `admin.install` applies it."""
    out = {}
    for path in sorted((bl.ROOT / "catalog").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == api.CATALOG_SERVICE:
                out[doc["metadata"]["name"]] = doc.get("spec") or {}
    return out


@dataclass
class PureRun:
    construct: float
    digest: float
    split: float
    join: float

    @property
    def total(self) -> float:
        return self.construct + self.digest + self.split + self.join


def pure_once(profile: Obj, configmaps: dict[str, snapshot.RefData],
              catalog: dict[str, Obj]) -> tuple[PureRun, int, str]:
    """One pass of the pure part; returns the times, the stored size and the digest."""
    spec = types.ProfileSpec.from_dict(profile["spec"])
    used = snapshot.catalog_used(spec, catalog)
    t0 = time.perf_counter()
    snap = snapshot.Snapshot(spec=snapshot.content_of(profile["spec"]), configmaps=configmaps,
                             catalog=used)
    t1 = time.perf_counter()
    digest = snap.digest()
    t2 = time.perf_counter()
    public, secret = snapshot.split(snap)
    t3 = time.perf_counter()
    back = snapshot.join(public, secret or None)
    t4 = time.perf_counter()
    if back.digest() != digest or len(back.catalog) != len(SERVICES):
        raise bl.BenchError("snapshot.join did not give back the snapshot split")
    size = len(json.dumps(public, separators=(",", ":")))
    return PureRun(t1 - t0, t2 - t1, t3 - t2, t4 - t3), size, digest


def measure_pure(reps: int) -> tuple[list[PureRun], str]:
    profile = build_profile()
    configmaps: dict[str, snapshot.RefData] = {
        f"ConfigMap/{SYSTEM_NS}/{cm['metadata']['name']}": dict(cm["data"])
        for cm in policy_configmaps()}
    catalog = catalog_files()
    sizes = [len(_manifest(i)) for i in range(POLICY_REFS)]
    pure_once(profile, configmaps, catalog)  # imports and first-call caches, not measured
    runs = []
    size, digest = 0, ""
    for _ in range(reps):
        run, size, digest = pure_once(profile, configmaps, catalog)
        runs.append(run)
    bl.note(f"{POLICY_REFS} ConfigMaps of {min(sizes)}-{max(sizes)} bytes ({sum(sizes)} in "
            f"all), {len(SERVICES)} catalog entries; stored revision data about {size} bytes "
            f"as JSON ({'gzip' if size < sum(sizes) else 'not compressed'}: compression starts "
            f"above {snapshot.COMPRESS_ABOVE} bytes)")
    return runs, digest


@dataclass
class BuildRuns:
    warm: list[float] = field(default_factory=list)
    warm_digest: list[float] = field(default_factory=list)
    cold: list[float] = field(default_factory=list)
    warm_requests: int = 0
    cold_requests: int = 0
    same_digest: bool = False


async def measure_build(stack: bf.Stack, reps: int, pure_digest: str) -> BuildRuns:
    """`revisions.build` against the management API server, the controller not running."""
    mgmt = kube.Client(kubeconfig.load(stack.fleet.management.kubeconfig), name="management")
    conns = connections.Connections(stack.work / "ctx" / "clusters", testbin.path() / "helm")
    # As preview.render_plan builds it: the same Context type the controller's startup makes.
    ctx = context.Context(mgmt=mgmt, store=store.Store(), connections=conns,
                          charts=helm.ChartCache(stack.work / "ctx" / "charts",
                                                 testbin.path() / "helm", {}),
                          recorder=reporting.Recorder(mgmt))
    out = BuildRuns()
    try:
        for cm in policy_configmaps():
            await mgmt.apply(cm, field_manager=bf.FIELD_MANAGER)
        profile = build_profile()
        spec = types.ProfileSpec.from_dict(profile["spec"])

        def fill(with_configmaps: bool) -> None:
            ctx.store = store.Store()
            for kind, items in listed.items():
                if kind != "ConfigMap" or with_configmaps:
                    for body in items:
                        ctx.store.put(kind, body)

        # What the controller's cluster-wide watches hold: every ConfigMap, the catalog.
        listed = {"ConfigMap": await mgmt.list("v1", "ConfigMap"),
                  api.CATALOG_SERVICE: await mgmt.list(api.API_VERSION, api.CATALOG_SERVICE)}
        fill(True)
        snap = await revisions.build(ctx, profile, spec)  # warm-up, not measured
        out.same_digest = snap.digest() == pure_digest
        sent = sum(mgmt.requests.values())
        for _ in range(reps):
            t0 = time.perf_counter()
            await revisions.build(ctx, profile, spec)
            out.warm.append(time.perf_counter() - t0)
        for _ in range(reps):
            t0 = time.perf_counter()
            (await revisions.build(ctx, profile, spec)).digest()
            out.warm_digest.append(time.perf_counter() - t0)
        out.warm_requests = sum(mgmt.requests.values()) - sent
        sent = sum(mgmt.requests.values())
        for _ in range(reps):
            fill(False)  # a fresh store without ConfigMaps each time: nothing to reuse
            t0 = time.perf_counter()
            await revisions.build(ctx, profile, spec)
            out.cold.append(time.perf_counter() - t0)
        out.cold_requests = sum(mgmt.requests.values()) - sent
    finally:
        await conns.close()
        await mgmt.close()
    return out


def ms(values: Sequence[float]) -> str:
    s = bl.Spread.of([v * 1000 for v in values])
    return f"{s.median:.2f} [{s.low:.2f}-{s.high:.2f}]"


def report_build(pure: list[PureRun], built: BuildRuns, reps: int) -> None:
    bl.heading(f"snapshot of {len(SERVICES)} catalog services + {POLICY_REFS} policyRefs "
               f"(ms; median [min-max] of {reps} runs)")
    rows = [["(a) Snapshot(...)", ms([r.construct for r in pure])],
            ["(a) digest()", ms([r.digest for r in pure])],
            ["(a) split (computes digest() again)", ms([r.split for r in pure])],
            ["(a) join", ms([r.join for r in pure])],
            ["(a) pure total", ms([r.total for r in pure])],
            ["(b) revisions.build, ConfigMaps in the store", ms(built.warm)],
            ["(b) revisions.build + digest()", ms(built.warm_digest)],
            ["(b) revisions.build, empty ConfigMap store", ms(built.cold)]]
    print(bl.table(["step", "ms"], rows))
    bl.note(f"management requests made by (b): {built.warm_requests} over "
            f"{2 * reps} builds with the store filled; {built.cold_requests} over {reps} "
            f"builds with no ConfigMap in the store ({built.cold_requests / reps:.0f} each)")
    bl.note(f"(b)'s snapshot has the digest (a) computed on the plain data: "
            f"{'yes' if built.same_digest else 'NO (the stored catalog or data differ)'}")
    bl.note("profiles.reconcile calls digest() twice per pass (revisions.ensure, then "
            "spec_hash) after build: build + 2 x digest is its snapshot cost")


# -- part 2: one ConfigMap edit on 10 clusters -------------------------------------------------


def _policy(version: int) -> Obj:
    app = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": APP, "namespace": APP_NS}, "data": {"version": str(version)}}
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": EDIT_PROFILE, "namespace": SYSTEM_NS},
            "data": {"app.yaml": yaml.safe_dump(app, sort_keys=False)}}


def _edit_profile(soak: float) -> Obj:
    return {"apiVersion": api.API_VERSION, "kind": api.CLUSTER_PROFILE,
            "metadata": {"name": EDIT_PROFILE},
            "spec": {"clusterSelector": {"matchLabels": {bf.LABEL: "on"}},
                     "policyRefs": [{"kind": "ConfigMap", "namespace": SYSTEM_NS,
                                     "name": EDIT_PROFILE}],
                     "maxUpdate": 1,
                     "rollout": {"minSuccessTime": f"{soak:g}s",
                                 "stages": [{"name": "canary", "clusterSelector": {
                                     "matchLabels": {RING: "canary"}}},
                                            {"name": "main"}]}}}


@dataclass
class ClusterRequests:
    """One workload API server's requests between two scrapes, split by who made them."""

    probe: int = 0
    server: int = 0
    controller: Counter[str] = field(default_factory=Counter)  # "VERB resource[/sub] code"
    watches_opened: int = 0
    watch_ends: Counter[str] = field(default_factory=Counter)  # by resource

    @property
    def total(self) -> int:
        return sum(self.controller.values())


def classify(before: drift_idle.Scrape, after: drift_idle.Scrape) -> ClusterRequests:
    out = ClusterRequests()
    out.watches_opened = sum(after.watches.values()) - sum(before.watches.values())
    for key, value in after.requests.items():
        n = int(value - before.requests.get(key, 0.0))
        if n <= 0:
            continue
        labels = dict(key)
        verb, resource = labels.get("verb", ""), labels.get("resource", "")
        sub = labels.get("subresource", "")
        if verb == "WATCH":
            # Counted when it ends: the server's own informers and the controller's drift
            # watches both end and reconnect every few minutes, whatever happens.
            out.watch_ends[resource] += n
        elif (resource == "leases" or (not resource and sub.startswith("openapi"))
                or f"{verb} {resource}" == SERVER_LIST):
            out.server += n
        elif f"{verb} {resource}" == PROBE and not sub:
            out.probe += n
        else:
            what = resource or f"[path {sub}]"
            # The drift checker's server-side dry runs carry dry_run="All": not writes.
            dry = " dry-run" if labels.get("dry_run") else ""
            out.controller[f"{verb}{dry} {what}{'/' + sub if resource and sub else ''} "
                           f"{labels.get('code', '')}"] += n
    return out


def status_delta(old: Obj, new: Obj) -> str:
    """What one status write changed: top-level fields, one level into mappings, and
    conditions by type, e.g. "healthy, rollout.message, conditions[Ready]"."""
    a, b = old.get("status") or {}, new.get("status") or {}
    changed: list[str] = []
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        if k == "conditions" or x == y:
            continue
        if isinstance(x, dict) and isinstance(y, dict):
            changed += [f"{k}.{sub}" for sub in sorted(set(x) | set(y)) if x.get(sub) != y.get(sub)]
        else:
            changed.append(k)
    ca = {c.get("type"): c for c in a.get("conditions") or []}
    cb = {c.get("type"): c for c in b.get("conditions") or []}
    changed += [f"conditions[{t}]" for t in sorted(set(ca) | set(cb)) if ca.get(t) != cb.get(t)]
    return ", ".join(changed) or "(no status field)"


class Changes:
    """Every write to a watched collection while armed: a new resourceVersion with a new
    generation is a spec change, without one a status change (what it changed is noted)."""

    def __init__(self) -> None:
        self.armed = False
        self.last: dict[str, Obj] = {}
        self.spec: Counter[str] = Counter()  # by object name (cluster, for summaries)
        self.status: Counter[str] = Counter()
        self.what: Counter[str] = Counter()  # status writes by what they changed

    def observe(self, objects: dict[str, Obj], name_of: Callable[[Obj], str]) -> None:
        for key, obj in objects.items():
            prev = self.last.get(key)
            self.last[key] = obj
            if not self.armed or prev is None:
                continue
            if prev["metadata"].get("resourceVersion") == obj["metadata"].get("resourceVersion"):
                continue
            if prev["metadata"].get("generation") != obj["metadata"].get("generation"):
                self.spec[name_of(obj)] += 1
            else:
                self.status[name_of(obj)] += 1
                self.what[status_delta(prev, obj)] += 1


class EditWatch:
    """A summary-watch predicate that never holds: per cluster, when it was assigned and
    healthy at the new revision; and every summary write (`Changes`)."""

    def __init__(self, old: int) -> None:
        self.old = old
        self.assigned: dict[str, float] = {}
        self.healthy: dict[str, float] = {}
        self.changes = Changes()

    def __call__(self, summaries: dict[str, Obj]) -> bool:
        now = time.monotonic()
        self.changes.observe(summaries, lambda s: str(s["spec"]["clusterRef"]["name"]))
        for s in summaries.values():
            cluster = s["spec"]["clusterRef"]["name"]
            want = s["spec"].get("revision")
            if want is None or want == self.old:
                continue
            self.assigned.setdefault(cluster, now)
            st = s.get("status") or {}
            if (st.get("revision") == want and st.get("phase") == "Provisioned"
                    and st.get("healthy")):
                self.healthy.setdefault(cluster, now)
        return False


@dataclass
class Edit:
    canary: str
    to_canary_healthy: float
    canary_read_at: float
    main_started: float | None  # t0 → the first non-canary assignment
    complete: float
    mid: dict[str, ClusterRequests]  # t0 scrape → canary read
    whole: dict[str, ClusterRequests]  # t0 scrape → after Complete
    unassigned_at_read: list[str]
    mgmt_writes: Counter[str]
    revisions_created: int
    summaries: Changes  # the ClusterSummaries' writes, seen by a watch
    profile: Changes  # the ClusterProfile's


class EditBench:
    def __init__(self, session: bf.Session, soak: float, settle: float, timeout: float) -> None:
        self.session, self.soak, self.settle, self.timeout = session, soak, settle, timeout
        self.version = 0
        self.revision = 0
        self.canary = session.cluster_names[0]

    async def _status(self) -> Obj:
        return (await self.session.profile(EDIT_PROFILE)).get("status") or {}

    @staticmethod
    def _complete(st: Obj, old: int) -> int | None:
        ro = st.get("rollout") or {}
        target = ro.get("targetRevision")
        n = bf.WORKLOAD_CLUSTERS
        if (ro.get("phase") == "Complete" and target is not None and target != old
                and st.get("revision") == target and st.get("matched") == n
                and st.get("ready") == n):
            return int(target)
        return None

    async def start(self) -> None:
        """Label the fleet, the canary, publish version 1 and wait for revision 1 everywhere."""
        await self.session.label_all(on=True)
        await self.session.mgmt.patch(api.API_VERSION, api.WORKLOAD_CLUSTER, bf.FLEET_NS,
                                      self.canary, {"metadata": {"labels": {RING: "canary"}}})
        self.version = 1
        await self.session.apply(_policy(1))
        await self.session.apply(_edit_profile(self.soak))

        async def done() -> int | None:
            return self._complete(await self._status(), 0)

        self.revision = await self.session.wait_for(
            done, f"revision 1 of {EDIT_PROFILE} complete on {bf.WORKLOAD_CLUSTERS} clusters",
            self.timeout, interval=0.5, diagnose=lambda: self.session.diagnose(EDIT_PROFILE))

    async def _revision_names(self) -> set[str]:
        items = await self.session.mgmt.list(
            "apps/v1", "ControllerRevision", namespace=SYSTEM_NS,
            label_selector=f"{api.PROFILE_NAME_LABEL}={EDIT_PROFILE}")
        return {r["metadata"]["name"] for r in items}

    async def _scrape(self) -> dict[str, drift_idle.Scrape]:
        return await asyncio.to_thread(drift_idle.scrape_all, self.session.stack.fleet)

    async def _until(self, check: Callable[[], bool], what: str) -> None:
        async def probe() -> bool:
            return check()

        await self.session.wait_for(probe, what, self.timeout, interval=0.05,
                                    diagnose=lambda: self.session.diagnose(EDIT_PROFILE))

    async def measure(self) -> Edit:
        old = self.revision
        watch = EditWatch(old)
        summaries = bk.Tracker(self.session.mgmt, api.API_VERSION, api.CLUSTER_SUMMARY, watch,
                               namespace=bf.FLEET_NS,
                               label_selector=f"{api.PROFILE_NAME_LABEL}={EDIT_PROFILE}",
                               what=f"{EDIT_PROFILE} summaries")
        complete = bk.Tracker(
            self.session.mgmt, api.API_VERSION, api.CLUSTER_PROFILE,
            lambda objs: any(o["metadata"]["name"] == EDIT_PROFILE
                             and self._complete(o.get("status") or {}, old) is not None
                             for o in objs.values()),
            what=f"{EDIT_PROFILE}: the revision after {old} Complete on "
                 f"{bf.WORKLOAD_CLUSTERS} clusters")
        profile_writes = Changes()

        def profile_watch(objs: dict[str, Obj]) -> bool:
            profile_writes.observe({k: o for k, o in objs.items()
                                    if o["metadata"]["name"] == EDIT_PROFILE},
                                   lambda o: str(o["metadata"]["name"]))
            return False

        profiles = bk.Tracker(self.session.mgmt, api.API_VERSION, api.CLUSTER_PROFILE,
                              profile_watch, what=f"{EDIT_PROFILE} writes")
        names_before = await self._revision_names()
        async with bf.tracking(summaries, complete, profiles):
            if complete.done.is_set() or watch.assigned:
                raise bl.BenchError("the next revision is already rolling out before the edit")
            before = await self._scrape()
            watch.changes.armed = profile_writes.armed = True
            t0 = time.monotonic()
            self.version += 1
            await self.session.mgmt.patch("v1", "ConfigMap", SYSTEM_NS, EDIT_PROFILE,
                                          {"data": _policy(self.version)["data"]})
            await self._until(lambda: self.canary in watch.healthy,
                              f"{self.canary} (canary) Provisioned and healthy at the new "
                              f"revision")
            canary_healthy = watch.healthy[self.canary]
            # Requests that follow a deploy (drift check, health) land inside the window.
            await asyncio.sleep(self.settle)
            mid = await self._scrape()
            read_at = time.monotonic()
            await asyncio.sleep(0.3)  # summary events that reached the server before the read
            unassigned = [c for c in self.session.cluster_names
                          if c != self.canary
                          and (c not in watch.assigned or watch.assigned[c] > read_at)]
            done_at = await self.session.wait_tracker(
                complete, self.timeout, diagnose=lambda: self.session.diagnose(EDIT_PROFILE))
            await asyncio.sleep(self.settle)
            after = await self._scrape()
            watch.changes.armed = profile_writes.armed = False
        profile = next(o for o in complete.objects.values()
                       if o["metadata"]["name"] == EDIT_PROFILE)
        revision = self._complete(profile.get("status") or {}, old)
        assert revision is not None
        self.revision = revision
        await self._confirm()
        mgmt_name = self.session.stack.fleet.management.name
        writes = chartwatch.write_counts(before[mgmt_name], after[mgmt_name]).persisted
        for own in ("PUT leases", "PATCH leases"):
            writes.pop(own, None)
        writes["PATCH configmaps"] -= 1  # our edit
        writes += Counter()  # drops the zero left by the line above
        others = [c for c in self.session.cluster_names if c != self.canary]
        main = [watch.assigned[c] for c in others if c in watch.assigned]
        return Edit(
            canary=self.canary, to_canary_healthy=canary_healthy - t0,
            canary_read_at=read_at - t0,
            main_started=min(main) - t0 if main else None, complete=done_at - t0,
            mid={c: classify(before[c], mid[c]) for c in self.session.cluster_names},
            whole={c: classify(before[c], after[c]) for c in self.session.cluster_names},
            unassigned_at_read=unassigned, mgmt_writes=writes,
            revisions_created=len(await self._revision_names() - names_before),
            summaries=watch.changes, profile=profile_writes)

    async def _confirm(self) -> None:
        """Every cluster holds the new version (read after the last scrape)."""
        for name, client in self.session.workload.items():
            live = await client.get("v1", "ConfigMap", APP_NS, APP) or {}
            if (live.get("data") or {}).get("version") != str(self.version):
                raise bl.BenchError(f"rollout Complete but {APP_NS}/{APP} on {name} holds "
                                    f"{live.get('data')!r}, not version {self.version}")


# -- the whole run ----------------------------------------------------------------------------


async def run_fleet(stack: bf.Stack, args: argparse.Namespace, build_reps: int, edits: int,
                    pure_digest: str) -> tuple[BuildRuns, list[Edit]]:
    bl.heading(f"part 1 (b): revisions.build against the management API server, "
               f"{build_reps} runs")
    built = await measure_build(stack, build_reps, pure_digest)
    bl.note("done")
    stack.start_controller()
    async with bf.Session.open(stack) as session:
        watch = bl.Stopwatch()
        await session.clusters_ready()
        bl.note(f"{len(session.workload)} WorkloadClusters ready after "
                f"{bl.seconds(watch.elapsed())}")
        bench = EditBench(session, args.soak, args.settle, args.timeout)
        watch = bl.Stopwatch()
        await bench.start()
        bl.note(f"revision {bench.revision} complete on {bf.WORKLOAD_CLUSTERS} clusters after "
                f"{bl.seconds(watch.elapsed())} (canary {bench.canary}, then maxUpdate 1)")
        bl.heading(f"part 2: {edits} ConfigMap edit(s), each a new revision")
        await asyncio.sleep(args.settle)
        samples = []
        for i in range(edits):
            edit = await bench.measure()
            samples.append(edit)
            main = (bl.seconds(edit.main_started) if edit.main_started is not None else "never")
            bl.note(f"edit {i + 1}/{edits}: revision {bench.revision}; canary healthy at "
                    f"{bl.seconds(edit.to_canary_healthy)}, read at "
                    f"{bl.seconds(edit.canary_read_at)}, main stage from {main}, Complete "
                    f"at {bl.seconds(edit.complete)}")
            await asyncio.sleep(args.settle)
    if args.keep_log:
        kept = bl.TMP / f"flotilla-bench-controller-revcost-{time.strftime('%Y%m%d-%H%M%S')}.log"
        kept.write_bytes(stack.controller.log.read_bytes())
        bl.note(f"the controller's log is kept in {kept}")
    return built, samples


def _spread(values: Sequence[float]) -> str:
    s = bl.Spread.of(values)
    if s.low == s.high:
        return f"{s.median:g}"
    return f"{s.median:g} [{s.low:g}-{s.high:g}]"


def _details(per_edit: Sequence[ClusterRequests]) -> str:
    """Each controller request kind, summed over the edits, as "N x what"."""
    total: Counter[str] = Counter()
    for r in per_edit:
        total.update(r.controller)
    return ", ".join(f"{n} x {what}" for what, n in sorted(total.items())) or "-"


def report_edits(edits: Sequence[Edit], clusters: Sequence[str], soak: float) -> None:
    canary = edits[0].canary
    bl.heading(f"one ConfigMap edit, 10 clusters, maxUpdate 1, canary stage, minSuccessTime "
               f"{soak:g}s ({len(edits)} edits; median [min-max])")
    print(bl.table(["from the edit to", "s"], [
        ["canary Provisioned + healthy", _spread([round(e.to_canary_healthy, 2) for e in edits])],
        ["canary read (scrape)", _spread([round(e.canary_read_at, 2) for e in edits])],
        ["main stage's first assignment",
         _spread([round(e.main_started, 2) for e in edits if e.main_started is not None]
                 or [float("nan")])],
        ["rollout Complete", _spread([round(e.complete, 2) for e in edits])]]))
    late = [e for e in edits if len(e.unassigned_at_read) != len(clusters) - 1]
    if late:
        bl.note(f"WARNING: in {len(late)} edit(s) the main stage had started before the "
                f"canary read; those clusters are left out of the 'not yet assigned' rows")

    bl.heading("requests to each workload cluster, the edit → canary read (during the soak)")
    rows, zero = [], True
    for c in clusters:
        mine = [e.mid[c] for e in edits if c == canary or c in e.unassigned_at_read]
        if not mine:
            continue
        role = "canary" if c == canary else "not yet assigned"
        if c != canary and any(r.total for r in mine):
            zero = False
        rows.append([c, role, _spread([r.total for r in mine]),
                     _spread([r.watches_opened for r in mine]),
                     _spread([sum(r.watch_ends.values()) for r in mine]),
                     _spread([r.probe for r in mine]),
                     _spread([r.server for r in mine]), _details(mine)])
    print(bl.table(["cluster", "state", "controller", "watches +", "watch ends", "probe",
                    "server",
                    "controller requests (sum over edits)"], rows))
    unassigned = sum(e.mid[c].total for e in edits for c in e.unassigned_at_read)
    bl.note(f"not yet assigned clusters, controller requests (probe excluded): "
            f"{unassigned} in all, target 0: {'PASS' if zero else 'MISS'}")

    bl.heading("requests to each workload cluster over the whole edit (edit → Complete + settle)")
    rows = []
    for c in clusters:
        mine = [e.whole[c] for e in edits]
        rows.append([c, "canary" if c == canary else "main", _spread([r.total for r in mine]),
                     _spread([r.watches_opened for r in mine]),
                     _spread([sum(r.watch_ends.values()) for r in mine]),
                     _spread([r.probe for r in mine]),
                     _spread([r.server for r in mine]),
                     _spread([e.summaries.spec[c] for e in edits]),
                     _spread([e.summaries.status[c] for e in edits]), _details(mine)])
    print(bl.table(["cluster", "stage", "controller", "watches +", "watch ends", "probe",
                    "server",
                    "summary spec", "summary status", "controller requests (sum over edits)"],
                   rows))
    ends: Counter[str] = Counter()
    for e in edits:
        for c in clusters:
            ends.update(e.whole[c].watch_ends)
    bl.note("watch ends by resource, all clusters and edits: "
            + (", ".join(f"{n} x {what}" for what, n in ends.most_common()) or "none"))
    per_cluster = [e.whole[c].total for e in edits for c in clusters]
    bl.note(f"per assigned cluster per edit: median {statistics.median(per_cluster):g} "
            f"controller requests (min {min(per_cluster)}, max {max(per_cluster)})")
    bl.note("controller = every request but: probe (LIST nodes; its GET /version is not "
            "counted by apiserver_request_total), server (leases, openapi/ paths, LIST "
            "services: the API server's own), watch ends (a WATCH is counted when it ends; "
            "the server's own informers and the controller's drift watches end and reconnect "
            "every few minutes: not told apart, shown by resource below). watches + = change "
            "in open WATCHes, what a new watch shows as; dry-run = a "
            "server-side dry run (dry_run label set: the drift checker's confirmation, "
            "nothing persisted); summary spec/status = changes of that cluster's "
            "ClusterSummary seen by a watch")

    bl.heading("management API server writes per edit (edit → Complete + settle)")
    kinds = sorted({k for e in edits for k in e.mgmt_writes})
    rows = [[k, _spread([e.mgmt_writes.get(k, 0) for e in edits])] for k in kinds]
    rows.append(["all of the above", _spread([sum(e.mgmt_writes.values()) for e in edits])])
    print(bl.table(["write (verb resource/subresource)", "per edit"], rows))
    bl.note("left out: leases (the server's own) and our one PATCH configmaps (the edit)")
    print(bl.table(["seen otherwise", "per edit"], [
        ["ControllerRevisions created (listed before/after)",
         _spread([e.revisions_created for e in edits])],
        ["ClusterSummary spec changes (watch: new generation)",
         _spread([sum(e.summaries.spec.values()) for e in edits])],
        ["ClusterSummary status changes (watch: new rv, same generation)",
         _spread([sum(e.summaries.status.values()) for e in edits])],
        ["ClusterProfile status changes (watch)",
         _spread([sum(e.profile.status.values()) for e in edits])]]))
    bl.note("a status PATCH/APPLY counted by the server but not seen as a change by the "
            "watch left the object as it was (a write that changed nothing)")
    for kind, per_edit in (("ClusterSummary", [e.summaries.what for e in edits]),
                           ("ClusterProfile", [e.profile.what for e in edits])):
        total: Counter[str] = Counter()
        for what in per_edit:
            total.update(what)
        changed = [[what, str(n)] for what, n in total.most_common()]
        print(bl.table([f"{kind} status write changed (sum over {len(edits)} edits)", "writes"],
                       changed))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="5 snapshot builds instead of 30, 1 edit instead of 3")
    parser.add_argument("--build-reps", type=int, help="runs of each snapshot figure")
    parser.add_argument("--edits", type=int, help="ConfigMap edits to measure")
    parser.add_argument("--soak", type=float, default=20.0, help="rollout.minSuccessTime, s")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds after the canary is healthy (and after Complete) before "
                             "reading the counters; keep well below --soak")
    parser.add_argument("--timeout", type=float, default=240.0,
                        help="seconds to wait for one rollout")
    parser.add_argument("--keep-log", action="store_true",
                        help="copy the controller's log to /tmp before the fleet goes")
    args = parser.parse_args(argv)
    build_reps = args.build_reps or (5 if args.quick else 30)
    edits = args.edits or (1 if args.quick else 3)
    if build_reps < 1 or edits < 1 or not 0 <= args.settle < args.soak:
        parser.error("need reps >= 1, edits >= 1 and 0 <= --settle < --soak")
    bl.exit_on_sigterm()
    print(f"revision_cost: {bl.machine()}")
    testbin.path()
    bl.heading(f"part 1 (a): the pure snapshot steps, {build_reps} runs, no fleet running")
    pure, digest = measure_pure(build_reps)
    with bf.running("revision_cost", "revcost") as stack:
        built, samples = asyncio.run(run_fleet(stack, args, build_reps, edits, digest))
        clusters = [c.name for c in stack.fleet.clusters]
    report_build(pure, built, build_reps)
    report_edits(samples, sorted(clusters, key=lambda c: int(c.rsplit("-", 1)[1])), args.soak)
    return 0


if __name__ == "__main__":
    try:
        code = main()
    except (bl.BenchError, fleet.FleetError) as exc:  # FleetError: a server not ready in time
        print(f"revision_cost: {exc}", file=sys.stderr)
        code = 1
    finally:
        bl.check_leftovers("revision_cost")
    sys.exit(code)
