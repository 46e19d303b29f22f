"""The rollout decision as engine/rollout/decide.py made it before its fast rewrite (issue 13).

Kept unchanged as an oracle: tests/unit/test_rollout_equivalence.py checks
that the fast `engine.rollout.decide` gives exactly this Decision (every
field, and the order of its mappings) on generated policies and fleets.
Not used by the engine.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from engine.model import quantities
from engine.rollout.policy import (
    ALL_STAGE,
    REST_STAGE,
    ClusterState,
    Decision,
    Phase,
    RolloutPolicy,
    StagePolicy,
    StageReport,
    Standing,
)

# How many cluster keys a message names before it says "and N more".
_NAMED_IN_MESSAGE = 3


def max_in_flight(
    value: quantities.IntOrPercent, total: int, *, field: str = "spec.maxUpdate"
) -> int:
    """How many clusters of `total` may update at once: `value` scaled, and at least 1.

    At least 1 because a limit of 0 would stall the rollout forever (Sveltos
    rounds the same way: 30% of 2 = 1).
    """
    return max(1, quantities.parse_int_or_percent(value, total, field=field))


def standing_of(
    cluster: ClusterState,
    *,
    revision: int,
    now: float,
    min_success_time: float,
    progress_deadline: float,
) -> tuple[Standing, str]:
    """Classify one cluster for the target `revision`; the text is a failure reason."""
    on_target = cluster.assigned == revision and cluster.current_revision == revision
    if on_target and cluster.healthy:
        # A missing healthy_since counts as "just now": the soak is then only
        # satisfied by time passing, never assumed.
        since = cluster.healthy_since if cluster.healthy_since is not None else now
        if min_success_time <= 0 or now - since >= min_success_time:
            return Standing.DONE, ""
        return Standing.SOAKING, ""
    if cluster.failed_revision == revision:
        return Standing.FAILED, f"failed at revision {revision} earlier"
    if cluster.assigned != revision:
        return Standing.WAITING, ""
    started = cluster.update_started
    if started is None or now - started < progress_deadline:
        return Standing.IN_FLIGHT, ""
    if not cluster.reachable:
        return Standing.FAILED, f"unreachable for longer than the {progress_deadline:g}s deadline"
    return Standing.FAILED, f"not healthy at revision {revision} within {progress_deadline:g}s"


def split_stages(
    policy: RolloutPolicy, clusters: Sequence[ClusterState]
) -> list[tuple[StagePolicy, list[ClusterState]]]:
    """Partition the fleet into the policy's stages, in stage order.

    A cluster belongs to the first stage that selects it; a percent stage takes
    that share of the whole fleet from the unclaimed clusters in sorted key
    order (stable across reconciles); a stage with neither takes the rest.
    Clusters no stage claims form an implicit last stage, `REST_STAGE`.
    """
    ordered = sorted(clusters, key=lambda cluster: cluster.key)
    keys = [cluster.key for cluster in ordered]
    if len(set(keys)) != len(keys):
        raise ValueError("cluster keys must be unique")
    stages = list(policy.stages) or [StagePolicy(name=ALL_STAGE)]
    claimed: set[str] = set()
    result: list[tuple[StagePolicy, list[ClusterState]]] = []
    for index, stage in enumerate(stages):
        free = [cluster for cluster in ordered if cluster.key not in claimed]
        if stage.has_selector:
            members = [cluster for cluster in free if stage.selects(cluster.labels)]
        elif stage.percent is not None:
            share = quantities.parse_int_or_percent(
                stage.percent, len(ordered), field=f"spec.rollout.stages[{index}].percent"
            )
            members = free[:share]
        else:
            members = free
        claimed.update(cluster.key for cluster in members)
        result.append((stage, members))
    rest = [cluster for cluster in ordered if cluster.key not in claimed]
    if rest:
        result.append((StagePolicy(name=REST_STAGE), rest))
    return result


@dataclass(frozen=True)
class _Stage:
    """One stage with every member classified for the target revision."""

    policy: StagePolicy
    members: tuple[ClusterState, ...]
    standings: dict[str, tuple[Standing, str]]
    limit: int
    tolerance: int
    min_success_time: float

    def keys(self, standing: Standing) -> list[str]:
        return [c.key for c in self.members if self.standings[c.key][0] is standing]

    @property
    def breached(self) -> bool:
        return len(self.keys(Standing.FAILED)) > self.tolerance

    @property
    def complete(self) -> bool:
        # Failures within maxFailures do not hold the next stage back: that is
        # what the tolerance is for, and otherwise one dead cluster stalls all.
        settled = all(s in (Standing.DONE, Standing.FAILED) for s, _ in self.standings.values())
        return settled and not self.breached


def decide(
    policy: RolloutPolicy,
    *,
    revision: int,
    last_good: int | None,
    clusters: Sequence[ClusterState],
    approvals: Collection[str] = frozenset(),
    now: float,
) -> Decision:
    """Decide which clusters move to `revision` now, and the rollout's phase.

    `last_good` is the revision new clusters join at and failed clusters roll
    back to; `approvals` holds the names of stages approved for `revision`.
    """
    stages = [
        _classify(policy, stage, members, revision, now, index=index)
        for index, (stage, members) in enumerate(split_stages(policy, clusters))
    ]
    by_key = {c.key: c for c in clusters}
    stage_of = {c.key: stage for stage in stages for c in stage.members}
    failed = {
        key: reason
        for stage in stages
        for key, (standing, reason) in stage.standings.items()
        if standing is Standing.FAILED
    }
    active = next((stage for stage in stages if not stage.complete), None)
    breached = [stage for stage in stages if stage.breached]
    approved = (
        active is None or not active.policy.manual_approval or active.policy.name in approvals
    )
    moving = active is not None and approved and not breached and not policy.paused

    moves: dict[str, int] = {}
    if moving and active is not None:
        free = active.limit - len(active.keys(Standing.IN_FLIGHT))
        waiting = [by_key[key] for key in active.keys(Standing.WAITING)]
        # Reachable clusters first: an offline one would hold a slot until its deadline.
        waiting.sort(key=lambda c: (not c.reachable, c.key))
        moves.update((c.key, revision) for c in waiting[: max(free, 0)])

    can_roll_back = last_good is not None and last_good != revision
    rolling_back = bool(breached) and policy.on_failure == "Rollback" and can_roll_back
    if rolling_back and not policy.paused and last_good is not None:
        # Only the failed clusters go back; healthy ones at the target stay.
        moves.update((key, last_good) for key in failed if by_key[key].assigned != last_good)

    if can_roll_back and last_good is not None:
        for cluster in clusters:
            # A brand-new cluster gets the known-good revision now, unless its
            # stage is moving: then it waits for a slot, to avoid deploying twice.
            joins_stage = moving and stage_of[cluster.key] is active
            if cluster.assigned is None and cluster.key not in moves and not joins_stage:
                moves[cluster.key] = last_good

    assign = {c.key: c.assigned for c in clusters if c.assigned is not None}
    assign.update(moves)
    in_flight = {key for stage in stages for key in stage.keys(Standing.IN_FLIGHT)}
    in_flight.update(key for key, target in moves.items() if target == revision)

    if active is None:
        phase = Phase.COMPLETE
    elif policy.paused:
        phase = Phase.PAUSED
    elif breached:
        # Rolling back until every failed cluster was reassigned and runs last_good.
        returning = any(key in moves or by_key[key].current_revision != last_good for key in failed)
        phase = Phase.ROLLING_BACK if rolling_back and returning else Phase.FAILED
    elif not approved:
        phase = Phase.WAITING_APPROVAL
    else:
        phase = Phase.PROGRESSING

    return Decision(
        revision=revision,
        phase=phase,
        assign=assign,
        moves=moves,
        in_flight=frozenset(in_flight),
        failed=failed,
        stage=active.policy.name if active is not None else None,
        stages=tuple(_report(stage) for stage in stages),
        message=_message(phase, policy, stages, active, breached, failed, revision, last_good),
        requeue_after=_requeue_after(policy, stages, moves, revision, now),
    )


def _classify(
    policy: RolloutPolicy,
    stage: StagePolicy,
    members: list[ClusterState],
    revision: int,
    now: float,
    *,
    index: int,
) -> _Stage:
    soak = stage.min_success_time if stage.min_success_time is not None else policy.min_success_time
    max_update = stage.max_update if stage.max_update is not None else policy.max_update
    max_update_field = (
        f"spec.rollout.stages[{index}].maxUpdate"
        if stage.max_update is not None
        else "spec.maxUpdate"
    )
    standings = {
        c.key: standing_of(
            c,
            revision=revision,
            now=now,
            min_success_time=soak,
            progress_deadline=policy.progress_deadline,
        )
        for c in members
    }
    return _Stage(
        policy=stage,
        members=tuple(members),
        standings=standings,
        limit=max_in_flight(max_update, len(members), field=max_update_field),
        tolerance=quantities.parse_int_or_percent(
            policy.max_failures, len(members), field="spec.rollout.maxFailures"
        ),
        min_success_time=soak,
    )


def _report(stage: _Stage) -> StageReport:
    return StageReport(
        name=stage.policy.name,
        clusters=tuple(c.key for c in stage.members),
        max_in_flight=stage.limit,
        max_failures=stage.tolerance,
        done=len(stage.keys(Standing.DONE)),
        in_flight=len(stage.keys(Standing.IN_FLIGHT)),
        failed=len(stage.keys(Standing.FAILED)),
        complete=stage.complete,
    )


def _requeue_after(
    policy: RolloutPolicy,
    stages: list[_Stage],
    moves: dict[str, int],
    revision: int,
    now: float,
) -> float | None:
    """Seconds until a deadline or a soak ends; health changes arrive as events."""
    due: list[float] = []
    if revision in moves.values():
        due.append(policy.progress_deadline)
    for stage in stages:
        for c in stage.members:
            standing = stage.standings[c.key][0]
            if standing is Standing.IN_FLIGHT:
                started = c.update_started if c.update_started is not None else now
                due.append(started + policy.progress_deadline - now)
            elif standing is Standing.SOAKING:
                since = c.healthy_since if c.healthy_since is not None else now
                due.append(since + stage.min_success_time - now)
    positive = [seconds for seconds in due if seconds > 0]
    return min(positive) if positive else None


def _names(keys: Collection[str]) -> str:
    ordered = sorted(keys)
    shown = ", ".join(ordered[:_NAMED_IN_MESSAGE])
    extra = len(ordered) - _NAMED_IN_MESSAGE
    return f"{shown} and {extra} more" if extra > 0 else shown


def _message(
    phase: Phase,
    policy: RolloutPolicy,
    stages: list[_Stage],
    active: _Stage | None,
    breached: list[_Stage],
    failed: dict[str, str],
    revision: int,
    last_good: int | None,
) -> str:
    failures = f"; failed: {_names(failed)}" if failed else ""
    if phase is Phase.COMPLETE or active is None:
        total = sum(len(stage.members) for stage in stages)
        return f"revision {revision} rolled out to {total} clusters{failures}"
    if breached:
        worst = breached[0]
        halt = (
            f"{len(worst.keys(Standing.FAILED))} clusters failed in stage {worst.policy.name} "
            f"(maxFailures {worst.tolerance}): {_names(worst.keys(Standing.FAILED))}"
        )
        if phase is Phase.PAUSED:
            return f"paused; {halt}"
        if phase is Phase.ROLLING_BACK:
            return f"{halt}; rolling them back to revision {last_good}"
        if policy.on_failure == "Rollback":
            if last_good is None or last_good == revision:
                return f"{halt}; no earlier good revision to roll back to"
            return f"{halt}; rolled back to revision {last_good}"
        return f"{halt}; rollout halted (onFailure: Pause)"
    name = active.policy.name
    position = f"stage {name} ({stages.index(active) + 1}/{len(stages)})"
    if phase is Phase.WAITING_APPROVAL:
        return f"{position} waits for approval (flotilla rollout approve){failures}"
    progress = (
        f"{len(active.keys(Standing.DONE))}/{len(active.members)} done, "
        f"{len(active.keys(Standing.IN_FLIGHT))} in flight (max {active.limit}), "
        f"{len(active.keys(Standing.SOAKING))} soaking"
    )
    prefix = "paused at " if phase is Phase.PAUSED else ""
    return f"{prefix}{position}: {progress}{failures}"
