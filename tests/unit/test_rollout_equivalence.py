"""The fast rollout decision decides exactly as the one it replaced (issue 13, planner at 10,000).

`engine.rollout.decide` was rewritten to classify each cluster once and
never rescan a stage; `rollout_reference` is the decision as it was. On
generated policies (selector, percent and plain stages; label pairs, set
expressions, empty selectors; limits, soaks, approvals, pause, rollback) and
fleets (every standing, new clusters, unreachable ones, any input order) both
must give the same Decision, the same order of its mappings, and the same
split into stages and standings.
"""

from __future__ import annotations

from typing import Any

import rollout_reference as reference
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import labels
from engine.rollout import decide as fast
from engine.rollout.policy import ClusterState, RolloutPolicy, StagePolicy

SETTINGS = settings(max_examples=200, deadline=None, database=None)
REVISIONS = st.sampled_from([None, 1, 2])
TIMES = st.sampled_from([None, -5000.0, -100.0, -10.0, 0.0, 5.0])
RINGS = ["canary", "early", "main"]


def int_or_percent() -> st.SearchStrategy[int | str]:
    return st.one_of(st.integers(0, 4), st.sampled_from(["0%", "25%", "34%", "50%", "100%"]))


@st.composite
def stages(draw: st.DrawFn, index: int) -> StagePolicy:
    how = draw(st.sampled_from(["pair", "pairs", "expression", "empty", "percent", "plain"]))
    selector_labels: dict[str, str] | None = None
    expressions: tuple[labels.Requirement, ...] = ()
    if how == "pair":
        selector_labels = {"ring": draw(st.sampled_from(RINGS))}
    elif how == "pairs":
        selector_labels = {"ring": draw(st.sampled_from(RINGS)), "gpu": "yes"}
    elif how == "expression":
        expressions = (labels.Requirement(
            draw(st.sampled_from(["ring", "gpu"])),
            draw(st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"])),
            tuple(draw(st.lists(st.sampled_from([*RINGS, "yes"]), max_size=2)))),)
    elif how == "empty":
        selector_labels = {}
    return StagePolicy(
        name=f"s{index}", selector_labels=selector_labels, match_expressions=expressions,
        percent=draw(int_or_percent()) if how == "percent" else None,
        max_update=draw(st.none() | int_or_percent()),
        manual_approval=draw(st.booleans()),
        min_success_time=draw(st.none() | st.sampled_from([0.0, 20.0])))


@st.composite
def policies(draw: st.DrawFn) -> RolloutPolicy:
    count = draw(st.integers(0, 4))
    return RolloutPolicy(
        max_update=draw(int_or_percent()),
        stages=tuple(draw(stages(i)) for i in range(count)),
        min_success_time=draw(st.sampled_from([0.0, 20.0])),
        progress_deadline=draw(st.sampled_from([30.0, 600.0])),
        max_failures=draw(int_or_percent()),
        on_failure=draw(st.sampled_from(["Pause", "Rollback"])),
        paused=draw(st.booleans()))


@st.composite
def fleets(draw: st.DrawFn) -> list[ClusterState]:
    keys = draw(st.lists(st.text("abcdefg", min_size=1, max_size=3), max_size=14, unique=True))
    fleet = []
    for key in keys:
        found: dict[str, str] = {}
        if draw(st.booleans()):
            found["ring"] = draw(st.sampled_from(RINGS))
        if draw(st.booleans()):
            found["gpu"] = "yes"
        fleet.append(ClusterState(
            key=key, labels=found, current_revision=draw(REVISIONS),
            target_revision=draw(REVISIONS), healthy=draw(st.booleans()),
            healthy_since=draw(TIMES), update_started=draw(TIMES),
            reachable=draw(st.booleans()), failed_revision=draw(REVISIONS)))
    return fleet


def outcome(module: Any, policy: RolloutPolicy, fleet: list[ClusterState],
            **kwargs: Any) -> Any:
    try:
        return module.decide(policy, clusters=fleet, **kwargs)
    except Exception as exc:  # both must fail the same way, if at all
        return type(exc), str(exc)


class TestSameDecision:
    @SETTINGS
    @given(policies(), fleets(), st.sampled_from([None, 1, 2]),
           st.sets(st.sampled_from(["s0", "s1", "s2", "s3", "(rest)", "all"])),
           st.sampled_from([0.0, 15.0, 700.0]))
    def test_every_field_and_order_agree(self, policy: RolloutPolicy, fleet: list[ClusterState],
                                         last_good: int | None, approvals: set[str],
                                         now: float) -> None:
        kwargs = {"revision": 2, "last_good": last_good, "approvals": approvals, "now": now}
        want = outcome(reference, policy, fleet, **kwargs)
        got = outcome(fast, policy, fleet, **kwargs)
        assert got == want
        if not isinstance(want, tuple):
            for field in ("assign", "moves", "failed"):
                assert list(getattr(got, field).items()) == list(getattr(want, field).items())

    @SETTINGS
    @given(policies(), fleets(), st.sampled_from([0.0, 15.0, 700.0]))
    def test_stages_and_standings_agree(self, policy: RolloutPolicy, fleet: list[ClusterState],
                                        now: float) -> None:
        want = outcome(reference, policy, fleet, revision=2, last_good=1, now=now)
        if isinstance(want, tuple):
            return  # a malformed policy: the decision test compares the error
        split = fast.split_stages(policy, fleet)
        assert split == reference.split_stages(policy, fleet)
        for stage, members in split:
            for cluster in members:
                assert fast.standing_of(cluster, revision=2, now=now, min_success_time=20.0,
                                        progress_deadline=policy.progress_deadline) == \
                    reference.standing_of(cluster, revision=2, now=now, min_success_time=20.0,
                                          progress_deadline=policy.progress_deadline), stage

    def test_duplicate_keys_fail_alike(self) -> None:
        fleet = [ClusterState("a"), ClusterState("a")]
        assert outcome(fast, RolloutPolicy(), fleet, revision=2, last_good=1, now=0.0) == \
            (ValueError, "cluster keys must be unique")
