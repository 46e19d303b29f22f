"""When to correct drift: per correction unit, with back-off when something fights back.

Used by the controller's drift engine (`engine.controller.drifts`). Pure
apart from its own memory: time is always passed in.

A correction re-applies a *unit*: one plain object, or a whole Helm release
(`helm upgrade` rewrites every object of the release). Fights are counted
and backed off per unit, because that is what each correction costs: five
drifted objects of one release are one upgrade, and an actor reverting one
object after another inside the same release is one fight, not five.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class _Fight:
    recent: tuple[float, ...]  # correction times inside the window
    level: int  # back-off level; 0 while no back-off is due
    last: float  # time of the latest correction


class FightDetector:
    """Notices when another actor keeps reverting what we correct.

    Keys are correction units (`Unit.key`). After `threshold` corrections of
    one key within `window` seconds, the next correction waits `base_delay`,
    and every further correction during the fight doubles the wait, up to
    `max_delay`. The fight is over once the key stays clean for `window`
    seconds after its back-off ends.
    """

    def __init__(
        self,
        *,
        threshold: int = 3,
        window: float = 60.0,
        base_delay: float = 10.0,
        max_delay: float = 300.0,
    ) -> None:
        self.threshold = threshold
        self.window = window
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._fights: dict[str, _Fight] = {}

    def delay(self, level: int) -> float:
        """The back-off after a correction at `level` (0: none)."""
        return 0.0 if level <= 0 else min(self.max_delay, self.base_delay * 2 ** (level - 1))

    def record_correction(self, key: str, now: float) -> None:
        fight = self._fights.get(key)
        if fight is not None and not self._ongoing(fight, now):
            fight = None
        previous = fight.recent if fight is not None else ()
        recent = (*(t for t in previous if now - t < self.window), now)
        level = fight.level if fight is not None else 0
        if level > 0 or len(recent) >= self.threshold:
            level += 1
        self._fights[key] = _Fight(recent=recent, level=level, last=now)

    def should_back_off(self, key: str, now: float) -> tuple[bool, float]:
        """(True, seconds left) while a correction of `key` must wait."""
        fight = self._fights.get(key)
        if fight is None:
            return False, 0.0
        remaining = fight.last + self.delay(fight.level) - now
        return (True, remaining) if remaining > 0 else (False, 0.0)

    def is_fighting(self, key: str, now: float) -> bool:
        fight = self._fights.get(key)
        return fight is not None and fight.level > 0 and self._ongoing(fight, now)

    def forget(self, key: str) -> None:
        """Drop what is known about `key` (object deleted or no longer managed)."""
        self._fights.pop(key, None)

    def prune(self, now: float) -> None:
        """Forget keys whose fights are over, so memory follows live objects."""
        for key in [k for k, fight in self._fights.items() if not self._ongoing(fight, now)]:
            del self._fights[key]

    def _ongoing(self, fight: _Fight, now: float) -> bool:
        return now - fight.last <= self.delay(fight.level) + self.window


@dataclass(frozen=True)
class Unit:
    """What one correction re-applies: `key` for the fight memory, `label` for people."""

    key: str
    label: str


def release_unit(namespace: str, release: str) -> Unit:
    return Unit(key=f"helm/{namespace}/{release}", label=f"Helm release {namespace}/{release}")


def object_unit(api_version: str, kind: str, namespace: str, name: str) -> Unit:
    where = f"{namespace}/{name}" if namespace else name
    return Unit(key="/".join((api_version, kind, namespace, name)), label=f"{kind} {where}")


@dataclass(frozen=True)
class Finding:
    """One drifted object as the decision sees it."""

    unit: Unit
    confirmed: bool  # False when the API server could not be asked (its dry run failed)


@dataclass(frozen=True)
class Decision:
    """What to do with the drifted units of one check."""

    correct: tuple[Unit, ...] = ()  # correct each once, now
    waiting: tuple[Unit, ...] = ()  # backing off
    held: tuple[Unit, ...] = ()  # drifted only as far as the pure diff can tell: not corrected
    fighting: tuple[Unit, ...] = ()  # in a fight: the DriftFight condition names them
    requeue: float | None = None  # when the earliest back-off ends


class Corrector:
    """Decides, for one summary, which drifted units to correct now.

    Each unit is corrected at most once per check, and a unit in back-off
    waits (`FightDetector`). A unit whose drift the API server could not
    confirm (every dry run failed) is held: reported, never corrected on the
    pure diff's word alone, because that word is what used to upgrade
    releases in a loop — and when a dry run fails, the admission chain a
    correction goes through is usually failing too.
    """

    def __init__(self, fights: FightDetector | None = None) -> None:
        self.fights = fights or FightDetector()

    def decide(self, findings: Iterable[Finding], now: float) -> Decision:
        units: dict[str, Unit] = {}
        confirmed: dict[str, bool] = {}
        for finding in findings:
            units[finding.unit.key] = finding.unit
            confirmed[finding.unit.key] = confirmed.get(finding.unit.key, False) or \
                finding.confirmed
        correct: list[Unit] = []
        waiting: list[Unit] = []
        held: list[Unit] = []
        fighting: list[Unit] = []
        requeue: float | None = None
        for key, unit in units.items():
            if not confirmed[key]:
                held.append(unit)
                continue
            back_off, wait = self.fights.should_back_off(key, now)
            if back_off:
                waiting.append(unit)
                requeue = wait if requeue is None else min(requeue, wait)
            else:
                self.fights.record_correction(key, now)
                correct.append(unit)
            if self.fights.is_fighting(key, now):
                fighting.append(unit)
        self.fights.prune(now)
        return Decision(correct=tuple(correct), waiting=tuple(waiting), held=tuple(held),
                        fighting=tuple(fighting), requeue=requeue)
