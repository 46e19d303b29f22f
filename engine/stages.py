"""Staged rollouts: which clusters may move to the target revision now (the planner in use).

Pure: used by the profile reconciler (`controller.rollouts`) on every
reconcile, with the fleet's state read from ClusterSummaries, so a restarted
controller decides exactly as before. Rules (DESIGN §1, `rollout`):

* Stages are ordered; a cluster belongs to the first stage that selects it
  (label selector, or a percentage of the fleet in stable name order); a
  stage with neither takes the rest; no stages means one stage, "all".
* A stage starts when every earlier stage is at the target, healthy, and has
  stayed healthy for minSuccessTime; a Manual stage also waits for approval.
* Within a stage at most maxUpdate clusters are in flight (assigned the
  target, not yet healthy at it); percentages round up, and at least one.
* A cluster not healthy by progressDeadline after it was told to move has
  failed. More than maxFailures failures stop the rollout: Pause moves
  nothing more; Rollback returns the failed clusters, and only them, to the
  last good revision.
* A cluster new to the profile joins at the last good revision and moves
  when its stage lets it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

from engine import select
from engine.model import quantities, types

ALL = "all"


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterState:
    key: str  # "namespace/name"
    labels: Mapping[str, str]
    target: int | None  # the revision its ClusterSummary carries; None: no summary yet
    healthy: bool  # provisioned at `target` and passing health checks
    healthy_since: float | None = None
    assigned_at: float | None = None  # when it was told to move to `target`


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    assign: dict[str, int]  # the revision each cluster's summary should carry now
    phase: str  # Progressing | Paused | WaitingApproval | RollingBack | Failed | Complete
    stage: str
    in_flight: tuple[str, ...]
    failed: dict[str, str]  # cluster → why
    message: str
    requeue_after: float | None
    last_good: int | None


def budget(value: quantities.IntOrPercent | None, total: int) -> int:
    """maxUpdate / maxFailures of `total`: ints as given, percentages rounded up."""
    if value is None:
        return total
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(total * int(value[:-1]) / 100)
    return max(int(value), 0)


def stages_of(spec: types.RolloutSpec | None,
              clusters: Sequence[ClusterState]) -> list[tuple[str, list[ClusterState]]]:
    """Each stage with its clusters, in order; a cluster belongs to the first that selects it."""
    ordered = sorted(clusters, key=lambda c: c.key)
    if spec is None or not spec.stages:
        return [(ALL, ordered)]
    left = list(ordered)
    out: list[tuple[str, list[ClusterState]]] = []
    for stage in spec.stages:
        if stage.cluster_selector is not None:
            members = [c for c in left
                       if select.label_selector_matches(stage.cluster_selector, c.labels)]
        elif stage.percent is not None:
            members = left[:min(budget(stage.percent, len(ordered)), len(left))]
        else:
            members = list(left)
        taken = {c.key for c in members}
        left = [c for c in left if c.key not in taken]
        out.append((stage.name, members))
    if left:  # clusters no stage selects still need the change: a final implicit stage
        out.append((ALL, left))
    return out


def decide(*, spec: types.RolloutSpec | None, max_update: quantities.IntOrPercent,
           target: int, last_good: int | None, clusters: Sequence[ClusterState],
           failed_before: Mapping[str, str], approvals: set[str], now: float) -> Decision:
    """The next step of rolling `target` out; idempotent for the same inputs."""
    spec = spec or types.RolloutSpec()
    deadline = spec.progress_deadline
    assign = {c.key: c.target for c in clusters if c.target is not None}
    for c in clusters:  # newcomers join at the last good revision
        if c.target is None and last_good is not None:
            assign[c.key] = last_good
    failed = {k: v for k, v in failed_before.items() if any(c.key == k for c in clusters)}
    for c in clusters:
        if c.target == target and not c.healthy and c.assigned_at is not None \
                and now - c.assigned_at > deadline and c.key not in failed:
            failed[c.key] = f"not healthy {int(deadline)}s after moving to revision {target}"
    requeue: float | None = None

    def soon(seconds: float) -> None:
        nonlocal requeue
        seconds = max(seconds, 0.5)
        requeue = seconds if requeue is None else min(requeue, seconds)

    stage_by_name = {s.name: s for s in spec.stages}
    for name, members in stages_of(spec, clusters):
        stage = stage_by_name.get(name)
        keys = {c.key for c in members}
        stage_failed = {k: v for k, v in failed.items() if k in keys}
        if len(stage_failed) > budget(spec.max_failures, len(members)):
            return _stopped(spec, assign, name, stage_failed, failed, target, last_good,
                            members, requeue)
        done = [c for c in members if c.target == target and c.healthy]
        if len(done) == len(members) and not stage_failed:
            hold = stage.min_success_time if stage and stage.min_success_time is not None \
                else spec.min_success_time
            waiting = [now - c.healthy_since for c in members if c.healthy_since is not None]
            if len(waiting) == len(members) and all(w >= hold for w in waiting):
                continue  # stage complete: on to the next
            soon(hold - min(waiting) if waiting else 1.0)
            return Decision(assign, "Progressing", name, (), failed,
                            f"stage {name}: healthy, holding for minSuccessTime {int(hold)}s",
                            requeue, last_good)
        moving = [c for c in members if c.target == target and not c.healthy
                  and c.key not in failed]
        for c in moving:
            if c.assigned_at is not None:
                soon(c.assigned_at + deadline - now)
        if spec.paused:
            return Decision(assign, "Paused", name, _keys(moving), failed,
                            "paused (spec.rollout.paused)", requeue, last_good)
        started = any(c.target == target for c in members)
        if stage and stage.approval == types.Approval.MANUAL and not started \
                and f"r{target}:{name}" not in approvals:
            return Decision(assign, "WaitingApproval", name, (), failed,
                            f"stage {name} waits for approval: flotilla rollout approve",
                            requeue, last_good)
        cap = max(budget(stage.max_update if stage and stage.max_update is not None
                         else max_update, len(members)), 1)
        pending = [c for c in members if c.target != target and c.key not in failed]
        moved = [c.key for c in pending[:max(cap - len(moving), 0)]]
        for key in moved:
            assign[key] = target
        if moved:
            soon(1.0)
        return Decision(assign, "Progressing", name, (*_keys(moving), *moved), failed,
                        f"stage {name}: {len(done)}/{len(members)} updated, "
                        f"{len(moving) + len(moved)} in flight", requeue, last_good)
    return Decision(assign, "Complete", "", (), failed, f"revision {target} everywhere",
                    None, target)


def _keys(states: Sequence[ClusterState]) -> tuple[str, ...]:
    return tuple(c.key for c in states)


def _stopped(spec: types.RolloutSpec, assign: dict[str, int], stage: str,
             stage_failed: Mapping[str, str], failed: dict[str, str], target: int,
             last_good: int | None, members: Sequence[ClusterState],
             requeue: float | None) -> Decision:
    names = ", ".join(f"{k} ({v})" for k, v in sorted(stage_failed.items()))
    if spec.on_failure == types.OnFailure.ROLLBACK and last_good is not None:
        for key in stage_failed:
            assign[key] = last_good
        back = [c for c in members if c.key in stage_failed
                and not (c.target == last_good and c.healthy)]
        phase = "RollingBack" if back else "Failed"
        return Decision(assign, phase, stage, _keys(back), failed,
                        f"rolled back to revision {last_good}: {names}", requeue or (
                            2.0 if back else None), last_good)
    return Decision(assign, "Paused", stage, (), failed,
                    f"stopped at stage {stage}, maxFailures exceeded: {names}", requeue,
                    last_good)
