"""Values and counting rules of a staged rollout: policies, cluster states, decisions.

Used by `engine.rollout` (the decision function) and by the controller, which
builds a `RolloutPolicy` and one `ClusterState` per matched cluster from a
ClusterProfile and its ClusterSummaries, and persists what a `Decision` says.

Rules of this module: purely computational, no I/O, and no `engine.model`
imports — the controller converts its typed model into these plain values, so
the rollout rules can be tested and reasoned about on their own.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

IntOrPercent = int | str
OnFailure = Literal["Pause", "Rollback"]
Operator = Literal["In", "NotIn", "Exists", "DoesNotExist"]

# Name of the implicit last stage holding clusters no declared stage selected:
# every matched cluster must be rolled out somewhere ("no cluster is skipped").
REST_STAGE = "(rest)"
# Name of the single stage used when the policy declares none.
ALL_STAGE = "all"

_PERCENT = re.compile(r"([0-9]+)%")


def parse_percent(value: str) -> int:
    """The number in an IntOrPercent string such as `"25%"` (the CRD pattern `^[0-9]+%$`)."""
    match = _PERCENT.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"not a percentage: {value!r} (expected 'N%')")
    return int(match.group(1))


def scaled_value(value: IntOrPercent, total: int) -> int:
    """An IntOrPercent as a count out of `total`; percentages round up (50% of 3 = 2)."""
    # bool is an int subclass; a stray `true` from YAML must not mean 1 cluster.
    if isinstance(value, bool):
        raise TypeError(f"expected an int or 'N%', got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"expected a count >= 0, got {value}")
        return value
    if value.strip().isdigit():
        return int(value)
    # Integer arithmetic: float ceil would turn 7% of 100 into 8.
    return -(-parse_percent(value) * total // 100)


def max_in_flight(value: IntOrPercent, total: int) -> int:
    """How many clusters of `total` may update at once: `value` scaled, and at least 1.

    At least 1 because a limit of 0 would stall the rollout forever (Sveltos
    rounds the same way: 30% of 2 = 1).
    """
    return max(1, scaled_value(value, total))


@dataclass(frozen=True)
class LabelRequirement:
    """One `matchExpressions` entry of a Kubernetes LabelSelector."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        present = self.key in labels and labels[self.key] in self.values
        return present if self.operator == "In" else not present


@dataclass(frozen=True)
class StagePolicy:
    """One `rollout.stages[]` entry; `None` fields fall back to the RolloutPolicy."""

    name: str
    selector_labels: Mapping[str, str] | None = None
    match_expressions: tuple[LabelRequirement, ...] = ()
    percent: IntOrPercent | None = None
    max_update: IntOrPercent | None = None
    manual_approval: bool = False
    min_success_time: float | None = None

    @property
    def has_selector(self) -> bool:
        return self.selector_labels is not None or bool(self.match_expressions)

    def selects(self, labels: Mapping[str, str]) -> bool:
        wanted = self.selector_labels or {}
        if any(labels.get(key) != value for key, value in wanted.items()):
            return False
        return all(requirement.matches(labels) for requirement in self.match_expressions)


@dataclass(frozen=True)
class RolloutPolicy:
    """`spec.maxUpdate` plus `spec.rollout` of a profile; times are in seconds."""

    max_update: IntOrPercent = "100%"
    stages: Sequence[StagePolicy] = ()
    min_success_time: float = 0.0
    progress_deadline: float = 600.0
    max_failures: IntOrPercent = 0
    on_failure: OnFailure = "Pause"
    paused: bool = False


@dataclass(frozen=True)
class ClusterState:
    """What the controller knows about one matched cluster for this profile.

    `current_revision` is what the cluster runs (None: nothing deployed yet);
    `target_revision` what it was last told to run. `healthy` is the last known
    health at `current_revision` (kept as is while the cluster is unreachable)
    and `healthy_since` when it became so. `update_started` is when the
    controller assigned `target_revision`. `failed_revision` is the revision
    this cluster was declared failed at: the controller copies the keys of
    `Decision.failed` into it, which is what keeps a rolled-back cluster from
    being offered the same revision again.
    """

    key: str
    labels: Mapping[str, str] = field(default_factory=dict)
    current_revision: int | None = None
    target_revision: int | None = None
    healthy: bool = False
    healthy_since: float | None = None
    update_started: float | None = None
    reachable: bool = True
    failed_revision: int | None = None

    @property
    def assigned(self) -> int | None:
        """The revision this cluster is meant to run now."""
        return self.target_revision if self.target_revision is not None else self.current_revision


class Phase(enum.StrEnum):
    """Rollout phase, shown in ClusterProfile status."""

    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    ROLLING_BACK = "RollingBack"
    COMPLETE = "Complete"
    WAITING_APPROVAL = "WaitingApproval"
    FAILED = "Failed"


class Standing(enum.StrEnum):
    """Where one cluster stands with respect to the target revision."""

    WAITING = "Waiting"  # not yet assigned the target
    IN_FLIGHT = "InFlight"  # assigned the target, not healthy at it yet, deadline not passed
    SOAKING = "Soaking"  # healthy at the target for less than minSuccessTime
    DONE = "Done"  # healthy at the target for at least minSuccessTime
    FAILED = "Failed"  # not healthy within progressDeadline (or failed here before)


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
    for stage in stages:
        free = [cluster for cluster in ordered if cluster.key not in claimed]
        if stage.has_selector:
            members = [cluster for cluster in free if stage.selects(cluster.labels)]
        elif stage.percent is not None:
            members = free[: scaled_value(stage.percent, len(ordered))]
        else:
            members = free
        claimed.update(cluster.key for cluster in members)
        result.append((stage, members))
    rest = [cluster for cluster in ordered if cluster.key not in claimed]
    if rest:
        result.append((StagePolicy(name=REST_STAGE), rest))
    return result


@dataclass(frozen=True)
class StageReport:
    """Counts for one stage after a decision, for status and `flotilla rollout status`."""

    name: str
    clusters: tuple[str, ...]
    max_in_flight: int
    max_failures: int
    done: int
    in_flight: int
    failed: int
    complete: bool


@dataclass(frozen=True)
class Decision:
    """What the controller should do now for one profile's rollout.

    `assign` is the revision every cluster that has one should run (write it
    to its ClusterSummary); clusters absent from it get no summary yet.
    `moves` is the subset whose assignment changes now (set `update_started`).
    `requeue_after` is when to decide again if no event arrives first.
    """

    revision: int
    phase: Phase
    assign: Mapping[str, int]
    moves: Mapping[str, int]
    in_flight: frozenset[str]
    failed: Mapping[str, str]
    stage: str | None
    stages: tuple[StageReport, ...]
    message: str
    requeue_after: float | None
