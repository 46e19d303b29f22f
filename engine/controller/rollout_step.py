"""The profile reconciler's rollout step: which revision each ClusterSummary carries now.

Used by the profile reconciler, between recording the desired revision and
writing ClusterSummaries; the decision itself is the pure planner's
(`engine.rollout.decide`). Reads each matched cluster's standing from
its ClusterSummary (assigned revision, provisioned revision, health and
since when, when it was told to move) and the rollout memory from the
profile's status (last good revision, clusters that failed this revision)
and annotations (approvals); asks the planner which revision every summary
should carry now; returns that plus the `status.rollout` to record. All of
it lives in the API, so a controller killed at any moment resumes exactly.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine import api, errors, planindex
from engine.controller import context, revisions, rollout_states, store
from engine.model import types
from engine.rollout import decide, policy


@dataclass
class Outcome:
    assigned: dict[str, tuple[int, str]]  # summary name → (revision, content hash)
    status: dict[str, Any]
    requeue_after: float | None
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)


# Every profile's cluster states, kept between reconciles: a state is rebuilt only
# when its WorkloadCluster, its ClusterSummary or its failed revision changed (see
# rollout_states). Process-wide like a memo of a pure function: an entry is correct
# for whoever asks, since what it was built from is part of its key.
STATES = rollout_states.StateCache()


def cluster_rows(cache: store.Store, profile: planindex.ProfileKey,
                 rows: Sequence[tuple[str, str, str]]
                 ) -> tuple[Sequence[tuple[str, str]], Sequence[Mapping[str, Any] | None]]:
    """The (namespace, name) keys of `rows` and each cluster's cached body, in order.

    When the rows are the profile's own sorted selection (no profile depends on it),
    the plan index already holds both, kept current per change: one comparison made
    in C instead of a tuple and a lookup per row.
    """
    try:
        own = cache.plan.sorted_rows(profile)
    except errors.FlotillaError:
        own = None
    if own is not None and own.rows == rows:
        # Lists, as rollout_states keeps them (a tuple never equals a list); copies, since
        # the index edits its own list in place.
        return list(own.keys), list(own.bodies)
    keys = [(cns, cname) for cns, cname, _ in rows]
    return keys, cache.bodies(api.WORKLOAD_CLUSTER, keys)


def policy_of(spec: types.ProfileSpec) -> policy.RolloutPolicy:
    """The planner's plain policy from the typed profile spec."""
    ro = spec.rollout or types.RolloutSpec()
    stage_policies = []
    for stage in ro.stages:
        sel = stage.cluster_selector
        stage_policies.append(policy.StagePolicy(
            name=stage.name,
            selector_labels=dict(sel.match_labels) if sel is not None else None,
            # The model's requirements are `labels.Expression`s as they are.
            match_expressions=sel.match_expressions if sel is not None else (),
            percent=stage.percent, max_update=stage.max_update,
            manual_approval=stage.approval == types.Approval.MANUAL,
            min_success_time=stage.min_success_time))
    return policy.RolloutPolicy(
        max_update=spec.max_update, stages=tuple(stage_policies),
        min_success_time=ro.min_success_time, progress_deadline=ro.progress_deadline,
        max_failures=ro.max_failures,
        on_failure="Rollback" if ro.on_failure == types.OnFailure.ROLLBACK else "Pause",
        paused=ro.paused)


async def assign(ctx: context.Context, profile: dict[str, Any], spec: types.ProfileSpec,
                 revision: int, wanted: dict[str, tuple[str, str, str]],
                 existing: list[dict[str, Any]]) -> Outcome:
    by_name = {s["metadata"]["name"]: s for s in existing
               if not s["metadata"].get("deletionTimestamp")}
    old = (profile.get("status") or {}).get("rollout") or {}
    last_good = old.get("lastGoodRevision")
    failed_at = {f["cluster"]: int(f["revision"]) for f in old.get("failedClusters") or []
                 if f.get("revision") is not None}
    # Keep the reason a cluster failed with, not "failed earlier" on every later pass.
    first_reason = {f["cluster"]: f.get("reason", "") for f in old.get("failedClusters") or []
                    if f.get("revision") == revision and f.get("reason")}
    approvals = set()
    annotations = profile["metadata"].get("annotations") or {}
    for entry in (annotations.get(api.APPROVED_ANNOTATION) or "").split(","):
        rev, _, stage = entry.strip().partition(":")
        if rev == f"r{revision}" and stage:
            approvals.add(stage)  # approvals count for one revision only
    key_of = {f"{cns}/{cname}": sname for sname, (cns, cname, _) in wanted.items()}
    meta = profile["metadata"]
    owner = (profile.get("kind"), meta.get("namespace") or "", meta["name"], meta.get("uid"))
    keys, clusters = cluster_rows(ctx.store, (str(profile.get("kind")),
                                              meta.get("namespace") or "", meta["name"]),
                                  tuple(wanted.values()))
    states = STATES.states(owner, keys, [by_name.get(sname) for sname in wanted], clusters,
                           failed_at)
    decision = decide.decide(
        policy_of(spec), revision=revision,
        last_good=int(last_good) if last_good is not None else None, clusters=states,
        approvals=approvals, now=datetime.datetime.now(datetime.UTC).timestamp())
    hashes = revisions.hashes(ctx, profile)
    assigned = {key_of[k]: (rev, hashes.get(rev, ""))
                for k, rev in decision.assign.items() if k in key_of}
    phase = str(decision.phase)
    status: dict[str, Any] = {
        "phase": phase, "stage": decision.stage or "", "targetRevision": revision,
        "message": decision.message,
        # Remembered so a rolled-back cluster is not offered the same revision again.
        "failedClusters": [{"cluster": k, "reason": first_reason.get(k, v), "revision": revision}
                           for k, v in sorted(decision.failed.items())],
    }
    good = revision if decision.phase == policy.Phase.COMPLETE else last_good
    if good is not None:
        status["lastGoodRevision"] = int(good)
    events = []
    if (old.get("stage") or "", old.get("phase")) != (status["stage"], phase):
        kind = "Warning" if phase in ("RollingBack", "Failed") else "Normal"
        reason = {"Complete": "RolloutComplete", "Paused": "RolloutPaused",
                  "RollingBack": "RollingBack", "WaitingApproval": "WaitingApproval",
                  "Failed": "RolloutFailed"}.get(phase, "StageProgressing")
        events.append((kind, reason, f"revision {revision}: "
                       f"{status['stage'] + ': ' if status['stage'] else ''}{decision.message}"))
    return Outcome(assigned=assigned, status=status, requeue_after=decision.requeue_after,
                   events=events)


def phase_for(outcome_status: dict[str, Any]) -> str | None:
    """The profile PHASE a rollout in this state shows, or None when rollup decides."""
    return {"Paused": "Paused", "WaitingApproval": "Paused", "RollingBack": "RollingBack",
            "Failed": "Failed", "Progressing": "Progressing"}.get(
        str(outcome_status.get("phase")))

