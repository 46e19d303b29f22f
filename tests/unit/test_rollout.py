"""Unit tests for engine.rollout: counting rules, stage membership, decisions, simulations."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import errors, labels
from engine.rollout import decide as planner
from engine.rollout.policy import (
    ALL_STAGE,
    REST_STAGE,
    ClusterState,
    Decision,
    Phase,
    RolloutPolicy,
    StagePolicy,
)

FAST = settings(max_examples=200, deadline=None, database=None)
OLD, NEW = 1, 2


def at_old(key: str, **labels: str) -> ClusterState:
    """A cluster healthy at the old revision for a long time."""
    return ClusterState(key, labels, OLD, OLD, True, healthy_since=-1000.0, update_started=-2000.0)


def moving(key: str, started: float, **labels: str) -> ClusterState:
    """A cluster told to move to NEW at `started`, not there yet."""
    return dataclasses.replace(at_old(key, **labels), target_revision=NEW, update_started=started)


def at_new(key: str, since: float = -1000.0, **labels: str) -> ClusterState:
    """A cluster healthy at NEW since `since`."""
    return dataclasses.replace(
        at_old(key, **labels), current_revision=NEW, target_revision=NEW, healthy_since=since
    )


def decide(
    policy: RolloutPolicy,
    clusters: Sequence[ClusterState],
    *,
    now: float = 0.0,
    approvals: Collection[str] = (),
    last_good: int | None = OLD,
) -> Decision:
    return planner.decide(
        policy, revision=NEW, last_good=last_good, clusters=clusters, approvals=approvals, now=now
    )


class TestCounting:
    """maxUpdate scales like Kubernetes and Sveltos (percentages round up), and is at least 1.

    How IntOrPercent values count is `engine.model.quantities`' rule, tested in test_model.
    """

    @pytest.mark.parametrize(
        ("value", "total", "expected"),
        [("50%", 4, 2), ("30%", 2, 1), ("7%", 100, 7), ("0%", 10, 1), (0, 5, 1), (3, 2, 3)],
    )
    def test_max_in_flight(self, value: int | str, total: int, expected: int) -> None:
        assert planner.max_in_flight(value, total) == expected

    @pytest.mark.parametrize("value", ["x%", "-5%", True])
    def test_malformed_values_are_spec_errors(self, value: int | str) -> None:
        with pytest.raises(errors.SpecError, match="percentage"):
            planner.max_in_flight(value, 3, field="spec.rollout.stages[0].maxUpdate")


class TestStages:
    """Clusters belong to the first stage that selects them."""

    def test_selector_percent_rest_and_implicit_rest(self) -> None:
        fleet = [at_old(f"c{i}", ring="canary" if i == 5 else "main") for i in range(6)]
        policy = RolloutPolicy(
            stages=(
                StagePolicy(name="canary", selector_labels={"ring": "canary"}),
                StagePolicy(name="early", percent="34%"),  # of 6 → 3
                StagePolicy(
                    name="gpu",
                    match_expressions=(labels.Requirement("gpu", "Exists"),),
                ),
            )
        )
        split = planner.split_stages(policy, list(reversed(fleet)))
        assert [(s.name, [c.key for c in m]) for s, m in split] == [
            ("canary", ["c5"]),
            ("early", ["c0", "c1", "c2"]),
            ("gpu", []),
            (REST_STAGE, ["c3", "c4"]),
        ]

    def test_no_stages_is_one_stage(self) -> None:
        split = planner.split_stages(RolloutPolicy(), [at_old("b"), at_old("a")])
        assert [(s.name, len(m)) for s, m in split] == [(ALL_STAGE, 2)]

    @pytest.mark.parametrize(
        ("operator", "values", "expected"),
        [("In", ("a",), True), ("NotIn", ("a",), False), ("DoesNotExist", (), False)],
    )
    def test_match_expressions(
        self, operator: labels.Operator, values: tuple[str, ...], expected: bool
    ) -> None:
        requirement = labels.Requirement("ring", operator, values)
        stage = StagePolicy(name="ring", match_expressions=(requirement,))
        assert stage.selects({"ring": "a"}) is expected

    def test_an_empty_stage_selector_selects_every_cluster_left(self) -> None:
        policy = RolloutPolicy(stages=(StagePolicy(name="any", selector_labels={}),))
        split = planner.split_stages(policy, [at_old("a"), at_old("b")])
        assert [(s.name, len(m)) for s, m in split] == [("any", 2)]

    def test_duplicate_keys_are_rejected(self) -> None:
        with pytest.raises(ValueError, match="unique"):
            planner.split_stages(RolloutPolicy(), [at_old("a"), at_old("a")])


class TestDecide:
    """Example decisions for the main rules."""

    def test_max_update_limits_the_first_batch(self) -> None:
        fleet = [at_old(f"c{i}") for i in range(4)]
        decision = decide(RolloutPolicy(max_update="50%", progress_deadline=300), fleet)
        assert decision.moves == {"c0": NEW, "c1": NEW}
        assert decision.assign == {"c0": NEW, "c1": NEW, "c2": OLD, "c3": OLD}
        assert decision.in_flight == {"c0", "c1"}
        assert decision.phase is Phase.PROGRESSING and decision.stage == "all"
        assert decision.requeue_after == 300

    def test_full_flight_moves_nothing_and_requeues_at_the_deadline(self) -> None:
        fleet = [moving("c0", 0.0), moving("c1", 50.0), at_old("c2")]
        decision = decide(RolloutPolicy(max_update=2, progress_deadline=100), fleet, now=60.0)
        assert decision.moves == {}
        assert decision.requeue_after == 40.0

    def test_later_stage_waits_for_the_soak(self) -> None:
        policy = RolloutPolicy(
            min_success_time=600,
            stages=(StagePolicy(name="canary", selector_labels={"ring": "canary"}),),
        )
        fleet = [at_new("a", since=0.0, ring="canary"), at_old("b")]
        soaking = decide(policy, fleet, now=100.0)
        assert soaking.moves == {} and soaking.stage == "canary"
        assert soaking.requeue_after == 500.0
        soaked = decide(policy, fleet, now=600.0)
        assert soaked.moves == {"b": NEW} and soaked.stage == REST_STAGE

    def test_manual_stage_waits_for_approval(self) -> None:
        policy = RolloutPolicy(stages=(StagePolicy(name="main", manual_approval=True),))
        waiting = decide(policy, [at_old("a")])
        assert waiting.phase is Phase.WAITING_APPROVAL and waiting.moves == {}
        assert "approve" in waiting.message
        assert decide(policy, [at_old("a")], approvals={"main"}).moves == {"a": NEW}

    def test_failure_pauses(self) -> None:
        policy = RolloutPolicy(max_update=1, progress_deadline=100)
        decision = decide(policy, [moving("a", 0.0), at_old("b")], now=100.0)
        assert decision.phase is Phase.FAILED
        assert decision.failed == {"a": "not healthy at revision 2 within 100s"}
        assert decision.moves == {} and decision.assign == {"a": NEW, "b": OLD}
        assert "onFailure: Pause" in decision.message

    def test_tolerated_failure_lets_the_rollout_go_on(self) -> None:
        policy = RolloutPolicy(max_update=1, progress_deadline=100, max_failures=1)
        decision = decide(policy, [moving("a", 0.0), at_old("b")], now=100.0)
        assert decision.phase is Phase.PROGRESSING and decision.moves == {"b": NEW}

    def test_rollback_returns_only_failed_clusters_and_stays_failed(self) -> None:
        policy = RolloutPolicy(max_update=2, progress_deadline=100, on_failure="Rollback")
        fleet = [moving("a", 0.0), at_new("b"), moving("c", 50.0), at_old("d")]
        decision = decide(policy, fleet, now=100.0)
        assert decision.phase is Phase.ROLLING_BACK
        assert decision.moves == {"a": OLD}
        assert decision.assign == {"a": OLD, "b": NEW, "c": NEW, "d": OLD}
        # The controller records the failure; once back at OLD the rollout stays failed.
        back = dataclasses.replace(at_old("a"), failed_revision=NEW)
        after = decide(policy, [back, *fleet[1:]], now=120.0)
        assert after.phase is Phase.FAILED and after.moves == {}
        assert "rolled back to revision 1" in after.message

    def test_rollback_without_a_good_revision_halts(self) -> None:
        policy = RolloutPolicy(progress_deadline=10, on_failure="Rollback")
        fresh = ClusterState(key="a", target_revision=NEW, update_started=0.0)
        decision = decide(policy, [fresh], now=10.0, last_good=None)
        assert decision.phase is Phase.FAILED and decision.moves == {}
        assert "no earlier good revision" in decision.message

    def test_paused_moves_nothing(self) -> None:
        decision = decide(RolloutPolicy(paused=True), [at_old("a")])
        assert decision.phase is Phase.PAUSED and decision.moves == {}

    def test_new_clusters_join_at_the_last_good_revision_or_wait_for_a_slot(self) -> None:
        policy = RolloutPolicy(
            max_update=1,
            stages=(StagePolicy(name="canary", selector_labels={"ring": "canary"}),),
        )
        fleet = [
            moving("a", 0.0, ring="canary"),
            ClusterState(key="b", labels={"ring": "canary"}),
            ClusterState(key="c"),
        ]
        decision = decide(policy, fleet, now=1.0)
        assert decision.moves == {"c": OLD}
        assert "b" not in decision.assign
        fleet[0] = at_new("a", ring="canary")
        assert decide(policy, fleet, now=2.0).moves == {"b": NEW, "c": OLD}

    def test_unreachable_clusters_go_last_and_fail_only_after_the_deadline(self) -> None:
        offline = dataclasses.replace(at_old("a"), reachable=False)
        first = decide(RolloutPolicy(max_update=1, progress_deadline=100), [offline, at_old("b")])
        assert first.moves == {"b": NEW}
        flying = dataclasses.replace(moving("a", 0.0), reachable=False)
        policy = RolloutPolicy(progress_deadline=100)
        assert decide(policy, [flying], now=99.0).failed == {}
        assert "unreachable" in decide(policy, [flying], now=100.0).failed["a"]

    def test_complete(self) -> None:
        decision = decide(RolloutPolicy(), [at_new("a"), at_new("b")])
        assert decision.phase is Phase.COMPLETE and decision.stage is None
        assert decision.requeue_after is None and decision.moves == {}
        assert decision.message == "revision 2 rolled out to 2 clusters"


@dataclasses.dataclass
class Sim:
    """One simulated cluster: its state, plus how the environment treats it."""

    state: ClusterState
    good: bool  # becomes healthy at NEW once deployed
    ticks: int  # how long a deployment takes


TICK, DEADLINE = 10.0, 60.0  # seconds per simulated step; progressDeadline


def int_or_percent(high: int) -> st.SearchStrategy[int | str]:
    return st.one_of(st.integers(0, high), st.integers(0, 100).map(lambda p: f"{p}%"))


@st.composite
def stage_policies(draw: st.DrawFn, index: int) -> StagePolicy:
    how = draw(st.sampled_from(["selector", "percent", "rest"]))
    return StagePolicy(
        name=f"s{index}",
        selector_labels={"ring": draw(st.sampled_from(["canary", "early"]))}
        if how == "selector"
        else None,
        percent=draw(int_or_percent(4)) if how == "percent" else None,
        max_update=draw(st.none() | int_or_percent(3)),
        manual_approval=draw(st.booleans()),
        min_success_time=draw(st.none() | st.sampled_from([0.0, 15.0])),
    )


@st.composite
def scenarios(draw: st.DrawFn, *, all_good: bool) -> tuple[RolloutPolicy, int | None, list[Sim]]:
    count = draw(st.integers(0, 3))
    policy = RolloutPolicy(
        max_update=draw(int_or_percent(3)),
        stages=tuple(draw(stage_policies(i)) for i in range(count)),
        min_success_time=draw(st.sampled_from([0.0, 20.0])),
        progress_deadline=DEADLINE,
        max_failures=draw(int_or_percent(2)),
        on_failure=draw(st.sampled_from(["Pause", "Rollback"])),
    )
    last_good = draw(st.sampled_from([None, OLD]))
    keys = draw(st.lists(st.text("abcdef", min_size=1, max_size=3), max_size=10, unique=True))
    sims = []
    for key in keys:
        labels = {"ring": draw(st.sampled_from(["canary", "early", "main"]))}
        start = draw(st.sampled_from(["old", "new", "done"]) if last_good else st.just("new"))
        if start == "old":
            state = at_old(key, **labels)
        elif start == "done":
            state = dataclasses.replace(at_new(key), labels=labels)
        else:
            state = ClusterState(key=key, labels=labels)  # never deployed
        good = all_good or draw(st.booleans())
        sims.append(Sim(state, good or start == "done", draw(st.integers(0, 3))))
    return policy, last_good, sims


def done_before(
    policy: RolloutPolicy, stage: StagePolicy | None, c: ClusterState, now: float
) -> bool:
    soak = policy.min_success_time
    if stage is not None and stage.min_success_time is not None:
        soak = stage.min_success_time
    healthy = c.current_revision == NEW and c.target_revision == NEW and c.healthy
    since = c.healthy_since if c.healthy_since is not None else now
    return healthy and (soak == 0 or now - since >= soak)


def simulate(
    policy: RolloutPolicy, last_good: int | None, sims: list[Sim], steps: int = 300
) -> list[Decision]:
    """Run decide() against a simulated fleet, checking invariants at every step."""
    by_key = {sim.state.key: sim for sim in sims}
    stage_policy = {s.name: s for s in policy.stages}
    moved_to_new: set[str] = set()
    approvals: set[str] = set()
    decisions = []
    now = 0.0
    for _ in range(steps):
        before = {k: sim.state for k, sim in by_key.items()}
        d = decide(policy, list(before.values()), now=now, approvals=approvals, last_good=last_good)
        decisions.append(d)
        assert d.requeue_after is None or d.requeue_after > 0
        halted = any(r.failed > r.max_failures for r in d.stages)
        for index, report in enumerate(d.stages):
            members = report.clusters
            flying = [
                k
                for k in members
                if d.assign.get(k) == NEW
                and k not in d.failed
                and not (before[k].current_revision == NEW and before[k].healthy)
            ]
            assert len(flying) <= report.max_in_flight, "maxUpdate exceeded"
            assert set(flying) <= d.in_flight
            for key in (k for k in members if d.moves.get(k) == NEW):
                assert key not in moved_to_new, "moved to the same revision twice"
                assert before[key].assigned != NEW and before[key].failed_revision != NEW
                assert not halted and not policy.paused and report.name == d.stage
                moved_to_new.add(key)
                for earlier in d.stages[:index]:  # stage order: earlier stages done
                    assert earlier.failed <= earlier.max_failures
                    for k in earlier.clusters:
                        stage = stage_policy.get(earlier.name)
                        assert k in d.failed or done_before(policy, stage, before[k], now)
        for key, revision in d.moves.items():
            if before[key].assigned == NEW:  # rollback: failed clusters only, to last good
                assert key in d.failed and revision == last_good
                assert policy.on_failure == "Rollback"
            elif revision != NEW:
                assert before[key].assigned is None and revision == last_good
        settled = d.phase is Phase.COMPLETE or (d.phase is Phase.FAILED and not d.in_flight)
        if settled and not d.moves:
            return decisions
        if d.phase is Phase.WAITING_APPROVAL and d.stage is not None:
            approvals.add(d.stage)
        # The controller's side: write assignments and remember failures.
        for key, sim in by_key.items():
            c = sim.state
            if key in d.failed:
                c = dataclasses.replace(c, failed_revision=NEW)
            if key in d.moves:
                c = dataclasses.replace(c, target_revision=d.moves[key], update_started=now)
            sim.state = c
        now += TICK
        # The fleet's side: deployments land after their ticks; bad ones stay unhealthy at NEW.
        for sim in by_key.values():
            c = sim.state
            started = c.update_started if c.update_started is not None else now
            if c.target_revision != c.current_revision and now - started >= sim.ticks * TICK:
                ok = sim.good or c.target_revision != NEW
                since = now if ok else None
                sim.state = dataclasses.replace(
                    c, current_revision=c.target_revision, healthy=ok, healthy_since=since
                )
    raise AssertionError(f"no steady state after {steps} steps: {decisions[-1]}")


class TestSimulation:
    """Invariants hold at every step of simulated rollouts with random fleets and stages."""

    @FAST
    @given(scenarios(all_good=True))
    def test_healthy_fleets_complete_with_every_cluster_at_the_target(
        self, scenario: tuple[RolloutPolicy, int | None, list[Sim]]
    ) -> None:
        policy, last_good, sims = scenario
        final = simulate(policy, last_good, sims)[-1]
        assert final.phase is Phase.COMPLETE and not final.failed
        assert all(sim.state.current_revision == NEW for sim in sims), "a cluster was skipped"

    @FAST
    @given(scenarios(all_good=False))
    def test_failing_fleets_stop_or_complete_within_tolerance(
        self, scenario: tuple[RolloutPolicy, int | None, list[Sim]]
    ) -> None:
        policy, last_good, sims = scenario
        final = simulate(policy, last_good, sims)[-1]
        if final.phase is Phase.COMPLETE:
            assert all(r.failed <= r.max_failures for r in final.stages)
            for sim in sims:
                assert sim.state.key in final.failed or sim.state.current_revision == NEW
        elif policy.on_failure == "Rollback" and last_good is not None:
            for key in final.failed:  # every failed cluster is back at the last good revision
                assert final.assign[key] == last_good

    @FAST
    @given(scenarios(all_good=True))
    def test_a_paused_rollout_never_moves_to_the_target(
        self, scenario: tuple[RolloutPolicy, int | None, list[Sim]]
    ) -> None:
        policy, last_good, sims = scenario
        paused = dataclasses.replace(policy, paused=True)
        decision = decide(paused, [sim.state for sim in sims], last_good=last_good)
        assert NEW not in decision.moves.values()
        assert decision.phase in (Phase.PAUSED, Phase.COMPLETE)
