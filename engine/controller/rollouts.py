"""Glue between a profile, its ClusterSummaries and the pure rollout planner (`engine.stages`).

Used by the profile reconciler. Reads each matched cluster's standing from
its ClusterSummary (assigned revision, provisioned revision, health and
since when, when it was told to move) and the rollout memory from the
profile's status (last good revision, clusters that failed this revision)
and annotations (approvals); asks the planner which revision every summary
should carry now; returns that plus the `status.rollout` to record. All of
it lives in the API, so a controller killed at any moment resumes exactly.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from engine import stages
from engine.controller import context, revisions
from engine.model import types

APPROVED = "flotilla.dev/approved"


@dataclass
class Outcome:
    assigned: dict[str, tuple[int, str]]  # summary name → (revision, content hash)
    status: dict[str, Any]
    requeue_after: float | None
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)


def _seconds(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _hash_of(ctx: context.Context, profile: dict[str, Any], number: int) -> str:
    for rev in revisions.history(ctx, profile):
        if int(rev.get("revision", 0)) == number:
            return str((rev["metadata"].get("annotations") or {}).get("flotilla.dev/hash", ""))
    return revisions.content_hash(profile.get("spec") or {})


async def assign(ctx: context.Context, profile: dict[str, Any], spec: types.ProfileSpec,
                 revision: int, wanted: dict[str, tuple[str, str, str]],
                 existing: list[dict[str, Any]]) -> Outcome:
    by_name = {s["metadata"]["name"]: s for s in existing
               if not s["metadata"].get("deletionTimestamp")}
    old = (profile.get("status") or {}).get("rollout") or {}
    last_good = old.get("lastGoodRevision")
    if old.get("targetRevision") not in (None, revision):
        failed_before: dict[str, str] = {}  # a new target forgets the old failures
    else:
        failed_before = {f["cluster"]: f.get("reason", "") for f in old.get("failedClusters")
                         or [] if f.get("revision") in (None, revision)}
    approvals = {a.strip() for a in ((profile["metadata"].get("annotations") or {}).get(
        APPROVED) or "").split(",") if a.strip()}
    key_of: dict[str, str] = {}
    states = []
    for sname, (cns, cname, _) in wanted.items():
        key = f"{cns}/{cname}"
        key_of[key] = sname
        summary = by_name.get(sname) or {}
        sspec, st = summary.get("spec") or {}, summary.get("status") or {}
        target = sspec.get("revision") if summary else None
        healthy = bool(st.get("phase") == "Provisioned" and st.get("healthy")
                       and target is not None and st.get("revision") == target)
        cluster = ctx.store.get("WorkloadCluster", cns, cname) or {}
        states.append(stages.ClusterState(
            key=key, labels=(cluster.get("metadata") or {}).get("labels") or {},
            target=int(target) if target is not None else None, healthy=healthy,
            healthy_since=_seconds(st.get("healthySince")) if healthy else None,
            assigned_at=_seconds(sspec.get("assignedAt"))))
    decision = stages.decide(
        spec=spec.rollout, max_update=spec.max_update, target=revision,
        last_good=int(last_good) if last_good is not None else None, clusters=states,
        failed_before=failed_before, approvals=approvals,
        now=datetime.datetime.now(datetime.UTC).timestamp())
    assigned = {key_of[k]: (rev, _hash_of(ctx, profile, rev))
                for k, rev in decision.assign.items() if k in key_of}
    status = {
        "phase": decision.phase, "stage": decision.stage, "targetRevision": revision,
        "message": decision.message,
        "failedClusters": [{"cluster": k, "reason": v, "revision": revision}
                           for k, v in sorted(decision.failed.items())],
    }
    if decision.last_good is not None:
        status["lastGoodRevision"] = decision.last_good
    events = []
    if (old.get("stage"), old.get("phase")) != (decision.stage, decision.phase):
        kind = "Warning" if decision.phase in ("Paused", "RollingBack", "Failed") \
            and decision.failed else "Normal"
        reason = {"Complete": "RolloutComplete", "Paused": "RolloutPaused",
                  "RollingBack": "RollingBack", "WaitingApproval": "WaitingApproval",
                  "Failed": "RolloutFailed"}.get(decision.phase, "StageProgressing")
        events.append((kind, reason, f"revision {revision}: "
                       f"{decision.stage + ': ' if decision.stage else ''}{decision.message}"))
    return Outcome(assigned=assigned, status=status, requeue_after=decision.requeue_after,
                   events=events)


def phase_for(outcome_status: dict[str, Any]) -> str | None:
    """The profile PHASE a rollout in this state shows, or None when rollup decides."""
    return {"Paused": "Paused", "WaitingApproval": "Paused", "RollingBack": "RollingBack",
            "Failed": "Failed", "Progressing": "Progressing"}.get(
        str(outcome_status.get("phase")))

