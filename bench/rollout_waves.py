"""Wall time of a staged rollout across 10 clusters for maxUpdate 1, 2, 5 and 100%.

    .venv/bin/python bench/rollout_waves.py [--quick] [--reps N] [--values 1,2,5,100%]
                                            [--timeout S] [--seed N]

One fleet (management + 10 api-only workload clusters), the CRDs and catalog
installed, every cluster registered in namespace `fleet` and labelled
`bench=on`, the real controller as a subprocess. One ClusterProfile,
`bench-rollout`, selects all 10 and has `rollout: {minSuccessTime: 2s}`; its
`policyRefs` name a ConfigMap in flotilla-system holding one ConfigMap
(`default/bench-app`, `data.version: N`). Publishing revision N means creating
the ConfigMap `bench-rollout-cN` and pointing the profile's policyRef at it
(as tests/e2e/test_rollout.py's `Rollout.publish` does), so every publish is
a new revision.

For each run (3, --quick 1) and each maxUpdate value:

  1. the profile's maxUpdate is set (not part of the content: no new
     revision) and the script waits until the controller has seen it and the
     previous rollout is Complete;
  2. list+watch streams are opened on the profile and its ClusterSummaries;
  3. t0; the next revision is published;
  4. wall time = until the profile shows status.rollout.phase == Complete
     with targetRevision == the new revision == status.revision and
     ready == matched == 10, seen through the watch (to within milliseconds).

From the summaries' watch events the script also notes, per cluster, when
it was assigned the new revision (spec.revision) and when it was Provisioned
and healthy at it, and the most clusters in flight at once (assigned, not yet
healthy).

ideal = T1 x waves, where T1 is the median wall time at maxUpdate 100% (one
wave: apply + health + the 2 s soak) and waves = ceil(10 / clusters per
wave): the model "every wave is apply + health + minSuccessTime". The engine
does not work that way: a soaking cluster holds no maxUpdate slot
(engine/rollout/decide.py), so the next wave starts as soon as a cluster is
healthy and minSuccessTime is waited once, at the end of the stage; the ratio
wall/ideal is then about 1/waves. What the waves do cost shows in the columns
taken from the summary watch, which no soak touches: "all healthy" (t0 →
the last cluster Provisioned and healthy at the new revision) and "step"
(first to last assignment / (waves - 1): one wave's start to the next).

The soak is judged against status.healthySince, an RFC 3339 time in whole
seconds (engine/controller/reporting.now), so it ends up to 1 s early and
wall times cluster on second boundaries. Publishing right after the previous
rollout completed would phase-lock t0 to those boundaries (every run would
land on the same point); each t0 is therefore preceded by a random 0-1 s
pause (--seed). No targets. Everything started here is stopped in `finally`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import benchfleet as bf
import benchkube as bk
import benchlib as bl
import yaml

from engine import api
from engine.devfleet import testbin

Obj = dict[str, Any]
PROFILE = "bench-rollout"
APP_NS, APP = "default", "bench-app"
SOAK_S = 2
CLUSTERS = bf.WORKLOAD_CLUSTERS

# -- the profile ------------------------------------------------------------------------------


def _policy(n: int) -> Obj:
    app = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": APP, "namespace": APP_NS}, "data": {"version": str(n)}}
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"{PROFILE}-c{n}", "namespace": api.SYSTEM_NAMESPACE},
            "data": {"app.yaml": yaml.safe_dump(app, sort_keys=False)}}


def _profile(n: int, max_update: int | str) -> Obj:
    return {"apiVersion": api.API_VERSION, "kind": "ClusterProfile", "metadata": {"name": PROFILE},
            "spec": {"clusterSelector": {"matchLabels": {bf.LABEL: "on"}},
                     "policyRefs": [{"kind": "ConfigMap", "namespace": api.SYSTEM_NAMESPACE,
                                     "name": f"{PROFILE}-c{n}"}],
                     "maxUpdate": max_update,
                     "rollout": {"minSuccessTime": f"{SOAK_S}s"}}}


def parse_max_update(text: str) -> int | str:
    text = text.strip()
    if text.endswith("%"):
        if not text[:-1].isdigit() or not 0 < int(text[:-1]) <= 100:
            raise ValueError(f"bad percentage {text!r}")
        return text
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"bad maxUpdate {text!r}")
    return int(text)


def per_wave(max_update: int | str, total: int = CLUSTERS) -> int:
    """Clusters moving at once, as the engine scales it (percentages round up)."""
    if isinstance(max_update, str):
        return max(1, -(-int(max_update[:-1]) * total // 100))
    return min(max_update, total)


def waves(max_update: int | str, total: int = CLUSTERS) -> int:
    return -(-total // per_wave(max_update, total))


# -- one rollout ------------------------------------------------------------------------------


class Progress:
    """A Tracker predicate that never holds: it notes per-cluster moments from summary events."""

    def __init__(self, old_revision: int) -> None:
        self.old = old_revision
        self.assigned: dict[str, float] = {}
        self.healthy: dict[str, float] = {}
        self.max_moving = 0

    def __call__(self, summaries: dict[str, Obj]) -> bool:
        now = time.monotonic()
        moving = 0
        for s in summaries.values():
            cluster = s["spec"]["clusterRef"]["name"]
            want = s["spec"].get("revision")
            if want is None or want == self.old:
                continue
            st = s.get("status") or {}
            self.assigned.setdefault(cluster, now)
            if (st.get("revision") == want and st.get("phase") == "Provisioned"
                    and st.get("healthy")):
                self.healthy.setdefault(cluster, now)
            else:
                moving += 1
        self.max_moving = max(self.max_moving, moving)
        return False

    def assign_span(self) -> float:
        """First to last assignment of the new revision, seconds."""
        times = self.assigned.values()
        return max(times) - min(times) if times else 0.0

    def health_times(self) -> list[float]:
        """Per cluster: assigned → Provisioned and healthy, seconds (without the soak)."""
        return [self.healthy[c] - self.assigned[c] for c in self.healthy if c in self.assigned]


@dataclass
class Sample:
    max_update: int | str
    revision: int
    wall: float
    max_moving: int
    span: float
    all_healthy: float
    health: list[float] = field(default_factory=list)


class RolloutBench:
    def __init__(self, session: bf.Session, timeout: float, rng: random.Random) -> None:
        self.session, self.timeout, self.rng = session, timeout, rng
        self.published = 0
        self.revision = 0  # the revision last seen Complete
        self.max_update: int | str = "100%"
        self.samples: list[Sample] = []

    async def _status(self) -> Obj:
        return (await self.session.profile(PROFILE)).get("status") or {}

    @staticmethod
    def _complete(st: Obj, old: int) -> int | None:
        """The revision the profile completed, when it completed one newer than `old`."""
        ro = st.get("rollout") or {}
        target = ro.get("targetRevision")
        if (ro.get("phase") == "Complete" and target is not None and target != old
                and st.get("revision") == target and st.get("matched") == CLUSTERS
                and st.get("ready") == CLUSTERS):
            return int(target)
        return None

    async def start(self) -> None:
        """Revision 1 everywhere, all at once."""
        await self.session.label_all(on=True)
        self.published = 1
        await self.session.apply(_policy(1))
        await self.session.apply(_profile(1, self.max_update))

        async def done() -> int | None:
            return self._complete(await self._status(), 0)

        self.revision = await self.session.wait_for(
            done, f"revision 1 of {PROFILE} complete on {CLUSTERS} clusters", self.timeout,
            diagnose=lambda: self.session.diagnose(PROFILE))

    async def set_max_update(self, max_update: int | str) -> None:
        body = await self.session.apply(_profile(self.published, max_update))
        generation = body["metadata"]["generation"]

        async def seen() -> bool:
            st = await self._status()
            return (st.get("observedGeneration") == generation
                    and (st.get("rollout") or {}).get("phase") == "Complete"
                    and (st.get("rollout") or {}).get("targetRevision") == self.revision)

        await self.session.wait_for(seen, f"{PROFILE} generation {generation} (maxUpdate "
                                    f"{max_update}) observed, rollout still Complete", 60,
                                    diagnose=lambda: self.session.diagnose(PROFILE))
        self.max_update = max_update

    async def measure(self, max_update: int | str) -> Sample:
        if max_update != self.max_update:
            await self.set_max_update(max_update)
        old = self.revision
        n = self.published + 1
        await self.session.apply(_policy(n))
        progress = Progress(old)
        complete = bk.Tracker(
            self.session.mgmt, api.API_VERSION, "ClusterProfile",
            lambda objs: any(o["metadata"]["name"] == PROFILE
                             and self._complete(o.get("status") or {}, old) is not None
                             for o in objs.values()),
            what=f"{PROFILE}: rollout of the revision after {old} Complete on {CLUSTERS}")
        summaries = bk.Tracker(self.session.mgmt, api.API_VERSION, "ClusterSummary", progress,
                               namespace=bf.FLEET_NS,
                               label_selector=f"{api.PROFILE_NAME_LABEL}={PROFILE}",
                               what=f"{PROFILE} summaries")
        async with bf.tracking(complete, summaries):
            if complete.done.is_set():
                raise bl.BenchError(f"{complete.what}: already true before publishing")
            # Off the second boundaries the previous rollout's soak ended on (see above).
            await asyncio.sleep(self.rng.uniform(0.0, 1.0))
            t0 = time.monotonic()
            await self.session.apply(_profile(n, max_update))
            self.published = n
            done_at = await self.session.wait_tracker(
                complete, self.timeout, diagnose=lambda: self.session.diagnose(PROFILE))
            await asyncio.sleep(0.2)  # the last summary events, for the per-cluster times
        wall = done_at - t0
        profile = next(o for o in complete.objects.values()
                       if o["metadata"]["name"] == PROFILE)
        revision = self._complete(profile.get("status") or {}, old)
        assert revision is not None
        await self.confirm(revision, n)
        self.revision = revision
        if len(progress.healthy) != CLUSTERS:
            raise bl.BenchError(f"rollout Complete but the summary watch saw only "
                                f"{sorted(progress.healthy)} healthy at the new revision")
        sample = Sample(max_update, revision, wall, progress.max_moving,
                        progress.assign_span(), max(progress.healthy.values()) - t0,
                        progress.health_times())
        self.samples.append(sample)
        return sample

    async def confirm(self, revision: int, version: int) -> None:
        """Every summary at the revision and every cluster holding the new content."""
        summaries = await self.session.summaries(PROFILE)
        behind = [c for c, s in summaries.items()
                  if s["spec"].get("revision") != revision
                  or (s.get("status") or {}).get("revision") != revision]
        if len(summaries) != CLUSTERS or behind:
            raise bl.BenchError(f"rollout Complete at revision {revision} but summaries behind: "
                                f"{behind or len(summaries)}{await self.session.diagnose(PROFILE)}")
        for name, client in self.session.workload.items():
            live = await client.get("v1", "ConfigMap", APP_NS, APP) or {}
            if (live.get("data") or {}).get("version") != str(version):
                raise bl.BenchError(f"rollout Complete but {APP_NS}/{APP} on {name} holds "
                                    f"{live.get('data')!r}, not version {version}")


# -- the whole run ----------------------------------------------------------------------------


async def run(stack: bf.Stack, values: Sequence[int | str], reps: int, timeout: float,
              seed: int, usage: dict[str, float]) -> list[Sample]:
    async with bf.Session.open(stack) as session:
        watch = bl.Stopwatch()
        await session.clusters_ready()
        bl.note(f"{len(session.workload)} WorkloadClusters ready after "
                f"{bl.seconds(watch.elapsed())}")
        bench = RolloutBench(session, timeout, random.Random(seed))
        watch = bl.Stopwatch()
        await bench.start()
        bl.note(f"revision {bench.revision} complete on {CLUSTERS} clusters after "
                f"{bl.seconds(watch.elapsed())}")
        bl.heading(f"rollouts: {reps} run(s) per maxUpdate, each a new revision")
        before = bl.cpu_times(stack.controller.pid)
        for rep in range(reps):
            for value in values:
                s = await bench.measure(value)
                health = (f"{statistics.median(s.health):.2f} s" if s.health else "n/a")
                bl.note(f"run {rep + 1}/{reps} maxUpdate {value!s:>4}: revision {s.revision} "
                        f"complete in {bl.seconds(s.wall)}, all healthy at "
                        f"{bl.seconds(s.all_healthy)} (assignments over "
                        f"{bl.seconds(s.span)}, max in flight {s.max_moving}, median "
                        f"assigned → healthy {health})")
        usage["cpu"] = (bl.cpu_times(stack.controller.pid) - before).total
        return bench.samples


def report(samples: Sequence[Sample], values: Sequence[int | str], usage: dict[str, float]) -> None:
    def walls(value: int | str) -> list[float]:
        return [s.wall for s in samples if s.max_update == value]

    per_cluster = [h for s in samples for h in s.health]
    h = statistics.median(per_cluster) if per_cluster else 0.0
    one_wave = [v for v in values if waves(v) == 1]
    if one_wave:
        t1 = bl.Spread.of(walls(one_wave[0])).median
        source = f"median wall time at maxUpdate {one_wave[0]}"
    else:
        t1 = h + SOAK_S
        source = f"h + {SOAK_S} s soak (no one-wave value was run)"

    bl.heading(f"rollout of one changed object to {CLUSTERS} clusters, minSuccessTime "
               f"{SOAK_S}s (seconds; median [min-max])")
    rows = []
    for value in values:
        spread = bl.Spread.of(walls(value))
        n = waves(value)
        ideal = t1 * n
        mine = [s for s in samples if s.max_update == value]
        healthy = bl.Spread.of([s.all_healthy for s in mine])
        span = statistics.median(s.span for s in mine)
        rows.append([str(value), n, spread.count,
                     f"{spread.median:.2f} [{spread.low:.2f}-{spread.high:.2f}]",
                     f"{ideal:.2f}", f"{spread.median / ideal:.2f}",
                     f"{healthy.median:.2f} [{healthy.low:.2f}-{healthy.high:.2f}]",
                     f"{span / (n - 1):.3f}" if n > 1 else "-",
                     max(s.max_moving for s in mine)])
    print(bl.table(["maxUpdate", "waves", "runs", "wall (t0 → Complete)", "ideal",
                    "wall/ideal", "t0 → all healthy", "step", "max in flight"], rows))
    bl.note(f"ideal = T1 x waves, T1 = {t1:.2f} s ({source}): a soak per wave, which the "
            "engine does not do (a soaking cluster frees its slot; the stage soaks once)")
    bl.note(f"per cluster, assigned → Provisioned and healthy: median {h:.3f} s "
            f"({len(per_cluster)} cluster rollouts, from the summary watch)")
    bl.note("all healthy: t0 → the last cluster Provisioned and healthy at the new revision; "
            "step: first to last assignment / (waves - 1); max in flight: most summaries "
            "assigned and not yet healthy at once (all three from the summary watch)")
    bl.note("the soak is judged against status.healthySince (microseconds since 2026-11-26; "
            "before that, whole seconds let a soak end up to 1 s early)")
    bl.note(f"controller CPU over all measured rollouts: {usage.get('cpu', 0.0):.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 run per maxUpdate instead of 3")
    parser.add_argument("--reps", type=int, help="runs per maxUpdate; default 3, --quick 1")
    parser.add_argument("--values", default="1,2,5,100%",
                        help="maxUpdate values, comma-separated (counts or N%%)")
    parser.add_argument("--timeout", type=float, default=180.0,
                        help="seconds to wait for one rollout to complete")
    parser.add_argument("--seed", type=int, help="random seed for the pauses before t0")
    args = parser.parse_args(argv)
    reps = args.reps or (1 if args.quick else 3)
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    try:
        values = [parse_max_update(v) for v in args.values.split(",") if v.strip()]
    except ValueError as exc:
        parser.error(str(exc))
    if not values or reps < 1:
        parser.error("need at least one maxUpdate value and one run")
    bl.exit_on_sigterm()
    print(f"rollout_waves: {bl.machine()}, seed {seed}")
    testbin.path()
    usage: dict[str, float] = {}
    with bf.running("rollout_waves", "waves") as stack:
        stack.start_controller()
        samples = asyncio.run(run(stack, values, reps, args.timeout, seed, usage))
    report(samples, values, usage)
    return 0


if __name__ == "__main__":
    try:
        code = main()
    except bl.BenchError as exc:
        print(f"rollout_waves: {exc}", file=sys.stderr)
        code = 1
    finally:
        bl.check_leftovers("rollout_waves")
    sys.exit(code)
