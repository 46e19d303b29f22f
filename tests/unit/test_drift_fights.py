"""Unit tests for engine.drift.fights: back-off per correction unit (a release or an object)."""

from __future__ import annotations

from engine.drift import fights
from engine.drift.fights import Corrector, Decision, FightDetector, Finding

RELEASE = fights.release_unit("monitoring", "kps")
CM = fights.object_unit("v1", "ConfigMap", "apps", "settings")
WEB = fights.object_unit("apps/v1", "Deployment", "apps", "web")


def found(unit: fights.Unit, obj: str, *, confirmed: bool = True) -> Finding:
    """`obj` names the drifted object, for the reader: the decision counts units."""
    return Finding(unit=unit, confirmed=confirmed)


class TestFightDetector:
    """FightDetector backs off exponentially when a unit keeps being reverted."""

    def test_two_corrections_do_not_back_off(self) -> None:
        detector = FightDetector()
        detector.record_correction("cm", 0.0)
        detector.record_correction("cm", 5.0)
        assert detector.should_back_off("cm", 5.0) == (False, 0.0)
        assert not detector.is_fighting("cm", 5.0)

    def test_three_in_a_minute_back_off_and_double_up_to_the_cap(self) -> None:
        detector = FightDetector()
        for now in (0.0, 5.0, 10.0):
            detector.record_correction("cm", now)
        assert detector.should_back_off("cm", 12.0) == (True, 8.0)
        assert detector.is_fighting("cm", 12.0)
        assert detector.should_back_off("other", 12.0) == (False, 0.0)
        now, waits = 20.0, []
        for _ in range(8):
            detector.record_correction("cm", now)
            back_off, wait = detector.should_back_off("cm", now)
            assert back_off
            waits.append(wait)
            now += wait
        assert waits == [20.0, 40.0, 80.0, 160.0, 300.0, 300.0, 300.0, 300.0]

    def test_spread_out_corrections_never_back_off(self) -> None:
        detector = FightDetector()
        for now in range(0, 600, 31):
            detector.record_correction("cm", float(now))
            assert detector.should_back_off("cm", float(now)) == (False, 0.0)

    def test_quiet_period_ends_the_fight(self) -> None:
        detector = FightDetector()
        for now in (0.0, 1.0, 2.0):
            detector.record_correction("cm", now)
        assert detector.is_fighting("cm", 60.0)
        assert not detector.is_fighting("cm", 80.0)
        detector.record_correction("cm", 80.0)
        assert detector.should_back_off("cm", 80.0) == (False, 0.0)
        detector.prune(1000.0)
        detector.forget("cm")
        assert detector.should_back_off("cm", 1000.0) == (False, 0.0)


class TestUnits:
    """Keys say what one correction rewrites; labels say it to people."""

    def test_release_and_object_units(self) -> None:
        assert fights.Unit("helm/monitoring/kps", "Helm release monitoring/kps") == RELEASE
        assert CM.label == "ConfigMap apps/settings"
        node = fights.object_unit("rbac.authorization.k8s.io/v1", "ClusterRole", "", "reader")
        assert node.label == "ClusterRole reader"
        assert len({RELEASE.key, CM.key, WEB.key, node.key}) == 4


class TestCorrector:
    """One correction per unit and check; back-off, fights and futile retries per unit."""

    def test_objects_of_one_release_are_one_correction(self) -> None:
        decision = Corrector().decide(
            [found(RELEASE, "Deployment kps-operator"), found(RELEASE, "Service kps-operator"),
             found(CM, "ConfigMap settings")], 0.0)
        assert decision == Decision(correct=(RELEASE, CM))

    def test_a_fight_moving_across_a_release_backs_the_release_off(self) -> None:
        # Each check sees a different object of the same release reverted: the
        # corrections are all `helm upgrade`s of that release, so they count together.
        corrector = Corrector()
        objects = ["Deployment a", "Service b", "DaemonSet c", "ConfigMap d"]
        corrected = []
        for tick, obj in enumerate(objects):
            decision = corrector.decide([found(RELEASE, obj)], float(tick))
            corrected.append(decision.correct)
        assert corrected == [(RELEASE,), (RELEASE,), (RELEASE,), ()]
        assert decision.waiting == (RELEASE,) and decision.fighting == (RELEASE,)
        assert decision.requeue == 10.0 - 1.0  # third correction at t=2, back-off 10 s
        # Only once the back-off is over is the release upgraded again, and then it waits longer.
        assert corrector.decide([found(RELEASE, "Service b")], 11.0).correct == ()
        assert corrector.decide([found(RELEASE, "Service b")], 12.5).correct == (RELEASE,)
        assert corrector.decide([found(RELEASE, "Deployment a")], 13.0).requeue == 19.5

    def test_objects_outside_releases_back_off_alone(self) -> None:
        corrector = Corrector()
        for tick in range(3):
            corrector.decide([found(WEB, "Deployment web")], float(tick))
        decision = corrector.decide([found(WEB, "Deployment web"), found(CM, "ConfigMap s")], 3.0)
        assert decision.correct == (CM,)
        assert decision.waiting == (WEB,) and decision.fighting == (WEB,)

    def test_unconfirmed_drift_is_held_not_corrected(self) -> None:
        corrector = Corrector()
        guess = found(RELEASE, "Service s", confirmed=False)
        for tick in range(5):
            assert corrector.decide([guess], float(tick)) == Decision(held=(RELEASE,))
        assert not corrector.fights.is_fighting(RELEASE.key, 5.0)
        # Held units take no correction from the others of the same check.
        decision = corrector.decide([guess, found(CM, "ConfigMap s")], 6.0)
        assert decision.correct == (CM,) and decision.held == (RELEASE,)

    def test_one_confirmed_object_is_enough_to_correct_its_release(self) -> None:
        decision = Corrector().decide(
            [found(RELEASE, "Service s", confirmed=False), found(RELEASE, "Deployment d")], 0.0)
        assert decision == Decision(correct=(RELEASE,))
