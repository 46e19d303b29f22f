"""Which clusters may move to a new revision now: maxUpdate, stages, health gates.

Used by the controller's rollout step: after the profile reconciler records
the desired revision, it calls `decide()` with the rollout policy and what
it knows about every matched cluster, writes `Decision.assign` into the
ClusterSummaries, records `Decision.failed` into each cluster's
`failed_revision`, shows `phase` and `message` in status, and requeues after
`requeue_after`. Also here, the rules a decision is made of: how a policy
splits the fleet into stages (`split_stages`), where one cluster stands
(`standing_of`) and how many may move at once (`max_in_flight`; IntOrPercent
values count clusters as `engine.model.quantities` says). The package rule
applies (see `engine.rollout`): pure, and `now` is an argument.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress

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
    return _standing(cluster, revision, now, min_success_time, progress_deadline)


def _standing(
    cluster: ClusterState, revision: int, now: float, min_success_time: float,
    progress_deadline: float,
) -> tuple[Standing, str]:
    # Positional and without the `assigned` property: a decision classifies every
    # matched cluster (thousands per profile at fleet scale), so call cost counts.
    current = cluster.current_revision
    target = cluster.target_revision
    assigned = target if target is not None else current
    if assigned == revision and current == revision and cluster.healthy:
        # A missing healthy_since counts as "just now": the soak is then only
        # satisfied by time passing, never assumed.
        since = cluster.healthy_since if cluster.healthy_since is not None else now
        if min_success_time <= 0 or now - since >= min_success_time:
            return _DONE
        return _SOAKING
    if cluster.failed_revision == revision:
        return Standing.FAILED, f"failed at revision {revision} earlier"
    if assigned != revision:
        return _WAITING
    started = cluster.update_started
    if started is None or now - started < progress_deadline:
        return _IN_FLIGHT
    if not cluster.reachable:
        return Standing.FAILED, f"unreachable for longer than the {progress_deadline:g}s deadline"
    return Standing.FAILED, f"not healthy at revision {revision} within {progress_deadline:g}s"


_DONE = (Standing.DONE, "")
_SOAKING = (Standing.SOAKING, "")
_WAITING = (Standing.WAITING, "")
_IN_FLIGHT = (Standing.IN_FLIGHT, "")
_key_of = operator.attrgetter("key")
_labels_of = operator.attrgetter("labels")
_assigned_of = operator.attrgetter("assigned")


def _selector(stage: StagePolicy) -> Callable[[Mapping[str, str]], bool]:
    """`stage.selects` as one cheap test: one label pair is the common stage selector."""
    pairs = list((stage.selector_labels or {}).items())
    if not stage.match_expressions and len(pairs) == 1:
        ((name, value),) = pairs
        # As engine.labels.matches reads it: absent labels are no labels.
        return lambda found: (found or _NO_LABELS).get(name) == value
    return stage.selects


_NO_LABELS: Mapping[str, str] = {}


def split_stages(
    policy: RolloutPolicy, clusters: Sequence[ClusterState]
) -> list[tuple[StagePolicy, list[ClusterState]]]:
    """Partition the fleet into the policy's stages, in stage order.

    A cluster belongs to the first stage that selects it; a percent stage takes
    that share of the whole fleet from the unclaimed clusters in sorted key
    order (stable across reconciles); a stage with neither takes the rest.
    Clusters no stage claims form an implicit last stage, `REST_STAGE`.
    """
    ordered = sorted(clusters, key=_key_of)
    if len(set(map(_key_of, ordered))) != len(ordered):
        raise ValueError("cluster keys must be unique")
    stages = list(policy.stages) or [StagePolicy(name=ALL_STAGE)]
    # The unclaimed clusters, still in key order: each stage takes from the front
    # or filters, so no stage rescans the clusters earlier stages claimed.
    free = ordered
    result: list[tuple[StagePolicy, list[ClusterState]]] = []
    for index, stage in enumerate(stages):
        if stage.has_selector:
            chosen = list(map(_selector(stage), map(_labels_of, free)))
            members = list(compress(free, chosen))
            free = list(compress(free, map(operator.not_, chosen)))
        elif stage.percent is not None:
            share = quantities.parse_int_or_percent(
                stage.percent, len(ordered), field=f"spec.rollout.stages[{index}].percent"
            )
            members, free = free[:share], free[share:]
        else:
            members, free = free, []
        result.append((stage, members))
    if free:
        result.append((StagePolicy(name=REST_STAGE), free))
    return result


@dataclass(frozen=True)
class _Stage:
    """One stage with every member classified for the target revision.

    `by_standing` holds the members of each standing in member (key) order;
    `reasons` the failure reason of each failed member, in the same order.
    """

    policy: StagePolicy
    members: tuple[ClusterState, ...]
    by_standing: dict[Standing, list[ClusterState]]
    reasons: dict[str, str]
    limit: int
    tolerance: int
    min_success_time: float

    def keys(self, standing: Standing) -> list[str]:
        return list(map(_key_of, self.by_standing[standing]))

    def count(self, standing: Standing) -> int:
        return len(self.by_standing[standing])

    @property
    def breached(self) -> bool:
        return len(self.by_standing[Standing.FAILED]) > self.tolerance

    @property
    def complete(self) -> bool:
        # Failures within maxFailures do not hold the next stage back: that is
        # what the tolerance is for, and otherwise one dead cluster stalls all.
        unsettled = (Standing.WAITING, Standing.IN_FLIGHT, Standing.SOAKING)
        return not any(self.by_standing[s] for s in unsettled) and not self.breached


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
    Cost: a few passes over the clusters, each cheap (no per-cluster rescans),
    since every profile selecting a changed cluster is decided again.
    """
    stages = [
        _classify(policy, stage, members, revision, now, index=index)
        for index, (stage, members) in enumerate(split_stages(policy, clusters))
    ]
    failed: dict[str, str] = {}
    failed_state: dict[str, ClusterState] = {}
    for stage in stages:
        failed.update(stage.reasons)
        failed_state.update((c.key, c) for c in stage.by_standing[Standing.FAILED])
    active = next((stage for stage in stages if not stage.complete), None)
    breached = [stage for stage in stages if stage.breached]
    approved = (
        active is None or not active.policy.manual_approval or active.policy.name in approvals
    )
    moving = active is not None and approved and not breached and not policy.paused

    moves: dict[str, int] = {}
    if moving and active is not None:
        free = active.limit - active.count(Standing.IN_FLIGHT)
        waiting = active.by_standing[Standing.WAITING]  # in key order
        # Reachable clusters first (in key order): an offline one would hold a slot
        # until its deadline.
        ranked = [c for c in waiting if c.reachable] + [c for c in waiting if not c.reachable]
        moves.update((c.key, revision) for c in ranked[: max(free, 0)])

    can_roll_back = last_good is not None and last_good != revision
    rolling_back = bool(breached) and policy.on_failure == "Rollback" and can_roll_back
    if rolling_back and not policy.paused and last_good is not None:
        # Only the failed clusters go back; healthy ones at the target stay.
        moves.update(
            (key, last_good) for key, c in failed_state.items() if c.assigned != last_good
        )

    # One pass over the clusters, in the caller's order: what each runs now, and
    # the brand-new ones (nothing assigned yet).
    revisions = list(map(_assigned_of, clusters))
    assign: dict[str, int] = dict(zip(map(_key_of, clusters), revisions, strict=True))
    newcomers: list[ClusterState] = []
    if None in revisions:
        newcomers = [cluster for cluster in clusters if assign[cluster.key] is None]
        for cluster in newcomers:
            del assign[cluster.key]
    if can_roll_back and last_good is not None and newcomers:
        joining = {c.key for c in active.members} if moving and active is not None else set()
        for cluster in newcomers:
            # A brand-new cluster gets the known-good revision now, unless its
            # stage is moving: then it waits for a slot, to avoid deploying twice.
            if cluster.key not in moves and cluster.key not in joining:
                moves[cluster.key] = last_good

    assign.update(moves)
    in_flight = {key for stage in stages for key in stage.keys(Standing.IN_FLIGHT)}
    in_flight.update(key for key, target in moves.items() if target == revision)

    if active is None:
        phase = Phase.COMPLETE
    elif policy.paused:
        phase = Phase.PAUSED
    elif breached:
        # Rolling back until every failed cluster was reassigned and runs last_good.
        returning = any(
            key in moves or c.current_revision != last_good for key, c in failed_state.items()
        )
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
    by_standing: dict[Standing, list[ClusterState]] = {s: [] for s in Standing}
    reasons: dict[str, str] = {}
    deadline = policy.progress_deadline
    waiting = by_standing[Standing.WAITING]
    for cluster in members:
        target = cluster.target_revision
        if (target if target is not None else cluster.current_revision) != revision and (
                cluster.failed_revision != revision):
            # What `_standing` says for a cluster not told to move and not failed
            # here: the common case while a rollout waits, so no call for it.
            waiting.append(cluster)
            continue
        standing, reason = _standing(cluster, revision, now, soak, deadline)
        by_standing[standing].append(cluster)
        if reason:
            reasons[cluster.key] = reason
    return _Stage(
        policy=stage,
        members=tuple(members),
        by_standing=by_standing,
        reasons=reasons,
        limit=max_in_flight(max_update, len(members), field=max_update_field),
        tolerance=quantities.parse_int_or_percent(
            policy.max_failures, len(members), field="spec.rollout.maxFailures"
        ),
        min_success_time=soak,
    )


def _report(stage: _Stage) -> StageReport:
    return StageReport(
        name=stage.policy.name,
        clusters=tuple(map(_key_of, stage.members)),
        max_in_flight=stage.limit,
        max_failures=stage.tolerance,
        done=stage.count(Standing.DONE),
        in_flight=stage.count(Standing.IN_FLIGHT),
        failed=stage.count(Standing.FAILED),
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
        for c in stage.by_standing[Standing.IN_FLIGHT]:
            started = c.update_started if c.update_started is not None else now
            due.append(started + policy.progress_deadline - now)
        for c in stage.by_standing[Standing.SOAKING]:
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
