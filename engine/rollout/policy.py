"""The values of a staged rollout: the policy, what is known of each cluster, the decision.

Used by `engine.rollout.decide` (which decides from these values) and by the
controller's rollout step, which builds a `RolloutPolicy` from a profile and
one `ClusterState` per matched cluster from its ClusterSummary, and writes
back what a `Decision` says. Types only; the package rule applies (see
`engine.rollout`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from engine import labels
from engine.model.quantities import IntOrPercent

OnFailure = Literal["Pause", "Rollback"]

# Name of the implicit last stage holding clusters no declared stage selected:
# every matched cluster must be rolled out somewhere ("no cluster is skipped").
REST_STAGE = "(rest)"
# Name of the single stage used when the policy declares none.
ALL_STAGE = "all"


@dataclass(frozen=True)
class StagePolicy:
    """One `rollout.stages[]` entry; `None` fields fall back to the RolloutPolicy."""

    name: str
    selector_labels: Mapping[str, str] | None = None
    match_expressions: tuple[labels.Expression, ...] = ()
    percent: IntOrPercent | None = None
    max_update: IntOrPercent | None = None
    manual_approval: bool = False
    min_success_time: float | None = None

    @property
    def has_selector(self) -> bool:
        return self.selector_labels is not None or bool(self.match_expressions)

    def selects(self, cluster_labels: Mapping[str, str]) -> bool:
        """Kubernetes semantics: a stage's empty selector selects every cluster left."""
        return labels.matches(cluster_labels, match_labels=self.selector_labels,
                              match_expressions=self.match_expressions)


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
