"""Drift detection and correction, event-driven from watches on the workload clusters.

Used by the summary reconciler (which calls `track` once a summary is
Provisioned) and the work queue (key ("drift", ns, name)). For every tracked
summary the deployed inventory is watched per kind through
`adapters.watches` — our own objects by `flotilla.dev/managed-by`, the
objects of Helm releases by Helm's `app.kubernetes.io/managed-by` — and an
event on one of them queues a check of that summary alone. The check diffs
desired against the cached live object with the pure `drift.diff`,
records drifted objects in ClusterSummary status, and in
ContinuousWithDriftDetection re-applies exactly the drifted objects or the
one drifted release, backing off (and saying so) when something keeps
reverting it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge

from engine import drift, errors, plan
from engine.adapters import connections, watches, workload
from engine.catalog import ReleasePlan
from engine.controller import context, deploy, desired, reporting, revisions
from engine.model import conditions, types

OURS = "flotilla.dev/managed-by=flotilla"
HELMS = "app.kubernetes.io/managed-by=Helm"
TRACKED = (types.SyncMode.CONTINUOUS, types.SyncMode.CONTINUOUS_WITH_DRIFT_DETECTION)

DRIFT_DETECTED = Counter("flotilla_drift_detected_total", "Drifted objects detected.",
                         ["cluster", "profile"])
DRIFT_CORRECTED = Counter("flotilla_drift_corrected_total", "Drifted objects re-applied.",
                          ["cluster", "profile"])
DRIFTED_OBJECTS = Gauge("flotilla_drifted_objects", "Objects currently drifted.",
                        ["cluster", "profile"])

SummaryKey = tuple[str, str]


@dataclass(frozen=True)
class Tracked:
    """What one summary deployed on one cluster, as drift detection sees it."""

    cluster: tuple[str, str]
    specs: frozenset[watches.WatchSpec]  # the watches it needs
    objects: frozenset[watches.ObjKey]  # the objects whose events concern it


class DriftEngine:
    def __init__(self, ctx: context.Context) -> None:
        self.ctx = ctx
        self.clusters: dict[tuple[str, str], watches.ClusterWatches] = {}
        self.tracked: dict[SummaryKey, Tracked] = {}
        # summary → {release key: (release hash, the objects of its manifest)}
        self.children: dict[SummaryKey, dict[plan.Key, tuple[str, list[dict[str, Any]]]]] = {}
        self.fights = drift.FightDetector()
        self.checks = 0

    # -- which summaries are watched -----------------------------------------------------

    async def track(self, summary: dict[str, Any], conn: connections.Connection,
                    want: desired.Desired, pspec: types.ProfileSpec) -> None:
        skey = (summary["metadata"]["namespace"], summary["metadata"]["name"])
        cref = summary["spec"]["clusterRef"]
        ckey = (cref["namespace"], cref["name"])
        if pspec.sync_mode not in TRACKED:
            self.untrack(skey)
            return
        specs: set[watches.WatchSpec] = set()
        objects: set[watches.ObjKey] = set()
        kids = self.children.setdefault(skey, {})
        for item in want.items:
            if item.is_release:
                rel = item.body
                assert isinstance(rel, ReleasePlan)
                if rel.uninstall:
                    continue
                known = kids.get(item.key)
                if known is None or known[0] != item.hash:
                    objs = await conn.releases().manifest(release=rel.release_name,
                                                         namespace=rel.namespace)
                    objs = [await _with_namespace(conn, o, rel.namespace) for o in objs]
                    kids[item.key] = (item.hash, objs)
                for obj in kids[item.key][1]:
                    specs.add(watches.WatchSpec(obj["apiVersion"], obj["kind"], HELMS))
                    objects.add(watches.obj_key(obj))
            else:
                body = item.body
                assert not isinstance(body, ReleasePlan)
                specs.add(watches.WatchSpec(body["apiVersion"], body["kind"], OURS))
                objects.add(watches.obj_key(body))
        self.tracked[skey] = Tracked(ckey, frozenset(specs), frozenset(objects))
        self._ensure_watches(ckey, conn)

    def untrack(self, skey: SummaryKey) -> None:
        entry = self.tracked.pop(skey, None)
        self.children.pop(skey, None)
        if entry is not None:
            cw = self.clusters.get(entry.cluster)
            if cw is not None:
                cw.ensure(self._wanted(entry.cluster))

    def _wanted(self, ckey: tuple[str, str]) -> set[watches.WatchSpec]:
        return {s for t in self.tracked.values() if t.cluster == ckey for s in t.specs}

    def _ensure_watches(self, ckey: tuple[str, str], conn: connections.Connection) -> None:
        cw = self.clusters.get(ckey)
        if cw is None or cw.client is not conn.client:
            cw = watches.ClusterWatches(f"{ckey[0]}/{ckey[1]}", conn.client, self._on_event)
            self.clusters[ckey] = cw
        cw.ensure(self._wanted(ckey))

    async def _on_event(self, cluster: str, type_: str, obj: dict[str, Any]) -> None:
        ckey = tuple(cluster.split("/", 1))
        key = watches.obj_key(obj)
        for skey, tracked in self.tracked.items():
            if tracked.cluster == ckey and (type_ == "SYNCED" or key in tracked.objects):
                self.ctx.enqueue(("drift", *skey))

    # -- the check -------------------------------------------------------------------------

    async def check(self, namespace: str, name: str) -> float | None:
        skey = (namespace, name)
        summary = self.ctx.store.get("ClusterSummary", namespace, name)
        if summary is None or summary["metadata"].get("deletionTimestamp"):
            self.untrack(skey)
            return None
        status = summary.get("status") or {}
        entry = self.tracked.get(skey)
        if entry is None or status.get("phase") != "Provisioned":
            return None
        cw = self.clusters.get(entry.cluster)
        if cw is None or not entry.specs <= cw.synced:
            return 1.0  # watches still listing
        ref = summary["spec"]["profileRef"]
        profile = self.ctx.store.get(ref["kind"], ref.get("namespace") or "", ref["name"])
        cluster = self.ctx.store.get("WorkloadCluster", *entry.cluster)
        if profile is None or cluster is None:
            return None
        content = revisions.find(self.ctx, profile, int(summary["spec"].get("revision") or 0))
        spec = revisions.spec_at(profile, content or revisions.content_of(profile["spec"]))
        try:
            pspec = types.ProfileSpec.from_dict(spec)
            want = await desired.build(self.ctx, profile, pspec, cluster)
        except errors.FlotillaError:
            return None  # the summary reconcile reports spec problems
        self.checks += 1
        owner = workload.Owner(kind=ref["kind"], namespace=ref.get("namespace") or "",
                               name=ref["name"], tier=pspec.tier)
        found = self._diff(skey, want, pspec, owner, cw)
        requeue: float | None = None
        fighting: list[str] = []
        if found and pspec.sync_mode == types.SyncMode.CONTINUOUS_WITH_DRIFT_DETECTION:
            conn = await self.ctx.connection(cluster)
            requeue, fighting = await self._correct(summary, found, want, pspec, owner, conn)
        await self._record(summary, profile, found, entry.cluster, fighting)
        return requeue

    def _diff(self, skey: SummaryKey, want: desired.Desired, pspec: types.ProfileSpec,
              owner: workload.Owner, cw: watches.ClusterWatches,
              ) -> list[tuple[plan.DesiredItem, watches.ObjKey, drift.DriftReport]]:
        found = []
        for item in want.items:
            if item.is_release:
                objs = self.children.get(skey, {}).get(item.key, ("", []))[1]
                pairs: list[tuple[Any, dict[str, Any]]] = [(o, o) for o in objs]
            else:
                body = item.body
                assert not isinstance(body, ReleasePlan)
                pairs = [(body, workload.marked(body, owner, item.hash))]
            for source, expected in pairs:
                key = watches.obj_key(expected)
                live = cw.cache.get(key)
                if live is not None and drift.excluded_by_annotation(live):
                    continue
                report = drift.diff(expected, live, exclusions=drift.exclusions_for(pspec, source))
                if report.drifted:
                    found.append((item, key, report))
        return found

    async def _record(self, summary: dict[str, Any], profile: dict[str, Any],
                      found: list[tuple[plan.DesiredItem, watches.ObjKey, drift.DriftReport]],
                      ckey: tuple[str, str], fighting: list[str]) -> None:
        """Write the drift report and the Drifted / DriftFight conditions (ours alone)."""
        status = dict(summary.get("status") or {})
        before = {(d.get("kind"), d.get("namespace"), d.get("name")): d
                  for d in status.get("drift") or []}
        now = reporting.now()
        rows = []
        for _, (api, kind, ns, name), report in found:
            group, _, version = api.rpartition("/")
            old = before.get((kind, ns, name))
            paths = ["(deleted)"] if report.deleted else list(report.paths)
            rows.append({"group": group, "version": version, "kind": kind, "namespace": ns,
                         "name": name, "paths": paths,
                         "detectedAt": old["detectedAt"] if old and old.get("paths") == paths
                         else now})
        labels = {"cluster": f"{ckey[0]}/{ckey[1]}", "profile": profile["metadata"]["name"]}
        new = [r for r in rows if (r["kind"], r["namespace"], r["name"]) not in before
               or before[(r["kind"], r["namespace"], r["name"])].get("paths") != r["paths"]]
        if new:
            DRIFT_DETECTED.labels(**labels).inc(len(new))
        DRIFTED_OBJECTS.labels(**labels).set(len(rows))
        gen = summary["metadata"].get("generation")
        conds = conditions.set_condition(
            status.get("conditions"), type="Drifted", status=bool(rows),
            reason="Drifted" if rows else "InSync",
            message="; ".join(f"{r['kind']} {r['namespace']}/{r['name']}: {', '.join(r['paths'])}"
                              for r in rows)[:1000], observed_generation=gen, now=now)
        fight = ("another actor keeps reverting " + ", ".join(fighting) +
                 "; corrections back off") if fighting else ""
        conds = conditions.set_condition(
            conds, type="DriftFight", status=bool(fighting),
            reason="Fighting" if fighting else "NoFight", message=fight,
            observed_generation=gen, now=now)
        fields = {"drift": rows, "conditions": [c for c in conds
                                                 if c["type"] in ("Drifted", "DriftFight")]}
        if await reporting.apply_status(self.ctx.mgmt, summary, fields, manager="flotilla-drift",
                                        cache=self.ctx.store):
            ref = summary["spec"]["profileRef"]
            self.ctx.enqueue(("profile", ref["kind"], ref.get("namespace") or "", ref["name"]))
            for r in new:
                await self.ctx.recorder.event(
                    summary, type="Warning", reason="Drifted",
                    message=f"{r['kind']} {r['namespace']}/{r['name']} drifted: "
                            f"{', '.join(r['paths'])}")
            if fighting:
                await self.ctx.recorder.event(summary, type="Warning", reason="DriftFight",
                                              message=fight)

    async def _correct(self, summary: dict[str, Any],
                       found: list[tuple[plan.DesiredItem, watches.ObjKey, drift.DriftReport]],
                       want: desired.Desired, pspec: types.ProfileSpec, owner: workload.Owner,
                       conn: connections.Connection) -> tuple[float | None, list[str]]:
        """Re-apply only what drifted: single objects, or the one release they belong to."""
        now = time.monotonic()
        done: set[plan.Key] = set()
        requeue: float | None = None
        fighting = []
        for item, key, _ in found:
            fight_key = "/".join([summary["metadata"]["name"], *key])
            back_off, wait = self.fights.should_back_off(fight_key, now)
            if back_off:
                fighting.append(f"{key[1]} {key[2]}/{key[3]}")
                requeue = wait if requeue is None else min(requeue, wait)
                continue
            if item.key in done:
                continue
            done.add(item.key)
            self.fights.record_correction(fight_key, now)
            if item.is_release:
                rel = item.body
                assert isinstance(rel, ReleasePlan)
                await deploy.install_release(self.ctx, conn, rel, want.values[item.key])
            else:
                body = item.body
                assert not isinstance(body, ReleasePlan)
                await conn.workload.apply(body, owner, item.hash,
                                          exclusions=drift.exclusions_for(pspec, body))
            cref = summary["spec"]["clusterRef"]
            DRIFT_CORRECTED.labels(cluster=f"{cref['namespace']}/{cref['name']}",
                                   profile=owner.name).inc()
        return requeue, fighting

    async def close(self) -> None:
        for cw in self.clusters.values():
            await cw.stop()




async def _with_namespace(conn: connections.Connection, obj: dict[str, Any],
                          default: str) -> dict[str, Any]:
    """Helm manifests may omit metadata.namespace for namespaced kinds."""
    try:
        res = await conn.client.resource(obj["apiVersion"], obj["kind"])
    except errors.FlotillaError:
        return obj
    if res.namespaced and not (obj.get("metadata") or {}).get("namespace"):
        obj = {**obj, "metadata": {**obj.get("metadata", {}), "namespace": default}}
    return obj
