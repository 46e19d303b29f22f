"""Drift detection and correction, event-driven from watches on the workload clusters.

Used by the summary reconciler (which calls `track` once a summary is
Provisioned) and the work queue (key ("drift", ns, name)). For every tracked
summary the deployed inventory is watched per kind through
`adapters.watches` — our own objects by `flotilla.dev/managed-by`, the
objects of Helm releases by Helm's `app.kubernetes.io/managed-by` — and an
event on one of them queues a check of that summary alone. The check diffs
desired against the cached live object with the pure `drift.diff`; what
that finds is only a candidate until a server-side-apply dry run of the
desired object shows the API server would keep something else than what is
live (`driftconfirm`; zero requests when the pure diff finds nothing, and
one dry run per changed object otherwise). It records drifted objects in
ClusterSummary status, and in ContinuousWithDriftDetection re-applies
exactly the drifted objects or the one drifted release, backing off per
correction unit (`drift.fights`, and saying so) when something keeps
reverting it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge

from engine import deployers, drift, errors, inventory
from engine.adapters import connections, watches, workload
from engine.controller import context, deployment, desired, driftconfirm, reporting, revisions
from engine.controller.driftconfirm import Candidate, Found
from engine.deployers import base
from engine.drift import fights
from engine.model import conditions, types

TRACKED = (types.SyncMode.CONTINUOUS, types.SyncMode.CONTINUOUS_WITH_DRIFT_DETECTION)

DRIFT_DETECTED = Counter("flotilla_drift_detected_total", "Drifted objects detected.",
                         ["cluster", "profile"])
DRIFT_CORRECTED = Counter("flotilla_drift_corrected_total", "Drifted objects re-applied.",
                          ["cluster", "profile"])
DRIFTED_OBJECTS = Gauge("flotilla_drifted_objects", "Objects currently drifted.",
                        ["cluster", "profile"])
DRIFT_CHECKS = Counter("flotilla_drift_checks_total", "Summaries compared with what is live "
                       "(checks of a summary whose deploy is still pending are not counted).")
UNCONFIRMED_RETRY = 10.0  # seconds before a check retries a dry run that failed

log = logging.getLogger("flotilla.drift")
SummaryKey = tuple[str, str]


@dataclass(frozen=True)
class Tracked:
    """What one summary deployed on one cluster, as drift detection sees it."""

    cluster: tuple[str, str]
    specs: frozenset[watches.WatchSpec]  # the watches it needs
    objects: frozenset[watches.ObjKey]  # the objects whose events concern it


class DriftReconciler:
    def __init__(self, ctx: context.Context) -> None:
        self.ctx = ctx
        self.clusters: dict[tuple[str, str], watches.ClusterWatches] = {}
        self.tracked: dict[SummaryKey, Tracked] = {}
        # summary → {release key: (release hash, the objects of its manifest)}
        self.children: dict[SummaryKey, dict[inventory.Key, tuple[str, list[dict[str, Any]]]]] = {}
        # summary → its correction decisions (fights per release or object)
        self.correctors: dict[SummaryKey, fights.Corrector] = {}
        self.confirmer = driftconfirm.Confirmer()
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
        target = self._target(summary, conn, pspec)
        for item in want.items:
            deployer = deployers.for_item(item)
            known = kids.get(item.key)
            if known is None or known[0] != item.hash:
                kids[item.key] = (item.hash, await deployer.watched(target, item))
            for obj in kids[item.key][1]:
                specs.add(watches.WatchSpec(obj["apiVersion"], obj["kind"],
                                            deployer.watch_selector))
                objects.add(watches.obj_key(obj))
        self.tracked[skey] = Tracked(ckey, frozenset(specs), frozenset(objects))
        self._ensure_watches(ckey, conn)

    def untrack(self, skey: SummaryKey) -> None:
        entry = self.tracked.pop(skey, None)
        self.children.pop(skey, None)
        self.correctors.pop(skey, None)
        self.confirmer.forget(skey)
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
        if status.get("revision") != summary["spec"].get("revision"):
            # A deploy of another revision is pending or under way: live objects are
            # moving to it. Judged once its outcome is recorded (the summary reconciler
            # asks for a check then); correcting now would run the upgrade twice.
            return None
        cw = self.clusters.get(entry.cluster)
        if cw is None or not entry.specs <= cw.synced:
            return 1.0  # watches still listing
        ref = summary["spec"]["profileRef"]
        profile = self.ctx.store.get(ref["kind"], ref.get("namespace") or "", ref["name"])
        cluster = self.ctx.store.get("WorkloadCluster", *entry.cluster)
        if profile is None or cluster is None:
            return None
        try:
            pspec, snap = await revisions.assigned(self.ctx, profile,
                                                   int(summary["spec"].get("revision") or 0))
            if snap is None:
                return None
            want = await desired.build(self.ctx, profile, pspec, cluster, snap)
        except errors.FlotillaError:
            return None  # the summary reconcile reports spec problems
        if want.hash != status.get("hash"):
            return None  # the same revision renders differently now: a redeploy is due first
        self.checks += 1
        DRIFT_CHECKS.inc()
        owner = workload.Owner(kind=ref["kind"], namespace=ref.get("namespace") or "",
                               name=ref["name"], tier=pspec.tier)
        candidates = self._diff(skey, want, pspec, cw)
        if not candidates:
            self.confirmer.forget(skey)
            decision = self._decide(skey, [], pspec)
            await self._record(summary, profile, [], entry.cluster, decision)
            return None
        labels = {"cluster": f"{entry.cluster[0]}/{entry.cluster[1]}", "profile": ref["name"]}
        # The connection the watches use; looking it up again would read its Secret.
        conn = self.ctx.connections.cached(*entry.cluster)
        try:
            conn = conn or await self.ctx.connection(cluster)
        except errors.FlotillaError as exc:
            log.info("drift check of %s/%s cannot reach its cluster: %s", namespace, name,
                     exc.reason)
        found = await self.confirmer.confirm(skey, candidates, conn, labels)
        # Without a connection nothing can be corrected, so nothing counts as a correction.
        decision = self._decide(skey, found, pspec) if conn is not None else fights.Decision()
        if conn is not None and decision.correct:
            await self._correct(summary, found, decision, want, pspec, owner, conn)
        await self._record(summary, profile, found, entry.cluster, decision)
        retry = UNCONFIRMED_RETRY if any(not f.confirmed for f in found) else None
        waits = [t for t in (decision.requeue, retry) if t is not None]
        return min(waits) if waits else None

    def _diff(self, skey: SummaryKey, want: desired.Desired, pspec: types.ProfileSpec,
              cw: watches.ClusterWatches) -> list[Candidate]:
        """The pure first pass: objects whose live form departs from the deployed one."""
        found = []
        kids = self.children.get(skey, {})
        for item in want.items:
            for expected in kids.get(item.key, ("", []))[1]:
                key = watches.obj_key(expected)
                live = cw.cache.get(key)
                if live is not None and drift.excluded_by_annotation(live):
                    continue
                exclusions = drift.exclusions_for(pspec, expected)
                report = drift.diff(expected, live, exclusions=exclusions)
                if report.drifted:
                    # A re-apply leaves excluded paths alone, and so does the dry run.
                    sent = drift.strip_excluded(expected, exclusions)
                    found.append(Candidate(item, key, expected, sent, live, report))
        return found

    def _decide(self, skey: SummaryKey, found: list[Found],
                pspec: types.ProfileSpec) -> fights.Decision:
        """Which correction units to re-apply now (none outside ContinuousWithDriftDetection)."""
        if pspec.sync_mode != types.SyncMode.CONTINUOUS_WITH_DRIFT_DETECTION:
            return fights.Decision()
        corrector = self.correctors.setdefault(skey, fights.Corrector())
        return corrector.decide([fights.Finding(_unit(f), f.confirmed) for f in found],
                                time.monotonic())

    async def _record(self, summary: dict[str, Any], profile: dict[str, Any],
                      found: list[Found], ckey: tuple[str, str],
                      decision: fights.Decision) -> None:
        """Write the drift report and the Drifted / DriftFight conditions (ours alone)."""
        status = dict(summary.get("status") or {})
        before = {(d.get("kind"), d.get("namespace"), d.get("name")): d
                  for d in status.get("drift") or []}
        now = reporting.now()
        rows = []
        unconfirmed = {(f.key[1], f.key[2], f.key[3]) for f in found if not f.confirmed}
        for f in found:
            (api, kind, ns, name), report = f.key, f.report
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
        message = "; ".join(
            f"{r['kind']} {r['namespace']}/{r['name']}: {', '.join(r['paths'])}"
            + (" (unconfirmed: the server's dry run failed)"
               if (r["kind"], r["namespace"], r["name"]) in unconfirmed else "")
            for r in rows)
        if decision.held:
            message += ("; not corrected until a dry run confirms it: "
                        + ", ".join(u.label for u in decision.held))
        conds = conditions.set_condition(
            status.get("conditions"), type="Drifted", status=bool(rows),
            reason="Drifted" if rows else "InSync", message=message[:1000],
            observed_generation=gen, now=now)
        fighting = [u.label for u in decision.fighting]
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

    async def _correct(self, summary: dict[str, Any], found: list[Found],
                       decision: fights.Decision, want: desired.Desired,
                       pspec: types.ProfileSpec, owner: workload.Owner,
                       conn: connections.Connection) -> None:
        """Re-apply the units the decision picked: single objects, or the release they are in."""
        cref = summary["spec"]["clusterRef"]
        corrected = DRIFT_CORRECTED.labels(cluster=f"{cref['namespace']}/{cref['name']}",
                                           profile=owner.name)
        target = self._target(summary, conn, pspec)
        kids = self.children.setdefault((summary["metadata"]["namespace"],
                                         summary["metadata"]["name"]), {})
        for unit in decision.correct:
            objects = [f for f in found if _unit(f) == unit]
            item = objects[0].item
            deployer = deployers.for_item(item)
            await deployer.correct(target, item, want.values.get(item.key, {}))
            corrected.inc(len(objects))
            # What was just applied is what live must match from now on: a `helm upgrade`
            # renders again, and charts with random values (grafana's admin password and
            # the checksum annotation over it) render differently every time.
            kids[item.key] = (item.hash, await deployer.watched(target, item))

    def _target(self, summary: dict[str, Any], conn: connections.Connection,
                pspec: types.ProfileSpec) -> base.Target:
        ref = summary["spec"]["profileRef"]
        owner = workload.Owner(kind=ref["kind"], namespace=ref.get("namespace") or "",
                               name=ref["name"], tier=pspec.tier)
        return deployment.target(self.ctx, conn, owner, pspec)

    async def close(self) -> None:
        for cw in self.clusters.values():
            await cw.stop()


def _unit(found: Found) -> fights.Unit:
    """What correcting this object re-applies: its whole release, or the object alone."""
    (api, kind, ns, name) = found.key
    return deployers.for_item(found.item).unit(found.item, (api, kind, ns, name))
