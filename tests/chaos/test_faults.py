"""Faults on the real fleet, in a bounded form: each converges, loses nothing, crashes nothing.

The scenarios live in tests/chaosruns.py (bench/chaos.py repeats them and
prints a table): a workload API server down until its summary shows it (at
most a probe period, 30 s), the management API server and then etcd
restarted, the controller SIGKILLed once in each of deploy, drift
correction, a staged rollout and withdrawal (seed printed; replay with
FLOTILLA_CHAOS_SEED), and a cluster frozen three seconds out of four. With
test_helm_interrupted.py this folder takes about 3 minutes (2 min 42 s
measured at a load average of 4 on 2 cores).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import chaosruns
from chaoskit import Outcome
from fleetkit import Engine, Kubectl

from engine.devfleet import fleet as devfleet


def _held(out: Outcome) -> None:
    print(out)
    assert out.converged and not out.problems, f"{out.scenario}: {out.problems}"
    assert out.lost == 0 and out.crashes == 0


class TestWorkloadOutage:
    """A workload API server down shows on its summaries and holds up nobody.

    Here it stays down until its summary shows the outage (at most a probe period,
    30 s); bench/chaos.py keeps it down 30 s at least.
    """

    def test_down_and_back(self, engine: Engine, mgmt: Kubectl, fleet: devfleet.Fleet,
                           tmp_path: Path) -> None:
        out = chaosruns.workload_outage(engine, mgmt, fleet, tmp_path, down_for=0,
                                        others=("cluster-2",))
        _held(out)
        assert out.redundant == 0, out
        # The others went on at their usual pace (seconds, not the outage's length).
        assert out.figures["rollout s"] < 20 and out.figures["drift s"] < 20, out.figures
        assert out.figures["shown s"] <= chaosruns.PROBE_INTERVAL + 15, out.figures


class TestControlPlaneRestart:
    """The controller reconnects its watches and misses no change made meanwhile."""

    def test_management_api_server_then_etcd(self, engine: Engine, mgmt: Kubectl,
                                             fleet: devfleet.Fleet, tmp_path: Path) -> None:
        # API-only clusters: a full cluster's controller-manager writes Deployment status and
        # the like, which this count would take for ours.
        outcomes = chaosruns.control_plane_restarts(engine, mgmt, fleet, tmp_path,
                                                    steady="cluster-5",
                                                    joining=("cluster-3", "cluster-4"))
        for out in outcomes:
            _held(out)
            assert out.redundant == 0, out


class TestControllerKilled:
    """SIGKILL in deploy, drift, a staged rollout and withdrawal: the same end state as ever."""

    def test_killed_once_per_step(self, engine: Engine, mgmt: Kubectl, tmp_path: Path) -> None:
        seed = int(os.environ.get("FLOTILLA_CHAOS_SEED") or random.randrange(1 << 30))
        print(f"seed {seed} (replay with FLOTILLA_CHAOS_SEED={seed})")
        outcomes = chaosruns.sigkill_lifecycle(engine, mgmt, tmp_path, seed=seed,
                                              clusters=("cluster-5", "cluster-6"))
        assert [o.scenario.rsplit(" ", 1)[1] for o in outcomes] == list(chaosruns.STEPS), \
            f"seed {seed}: {[o.problems for o in outcomes]}"
        for out in outcomes:
            _held(out)
            # A kill can cost one repeat of the helm operation in flight (killed inside
            # helm, or after it but before the outcome was recorded), never more.
            assert out.redundant <= 1, f"seed {seed}: {out}"


class TestSlowCluster:
    """A cluster frozen most of the time does not hold up the others' rollouts or drift."""

    def test_frozen_cluster(self, engine: Engine, mgmt: Kubectl, fleet: devfleet.Fleet,
                            tmp_path: Path) -> None:
        out = chaosruns.slow_cluster(engine, mgmt, fleet, tmp_path, revisions=2,
                                     others=("cluster-2",))
        _held(out)
        assert out.figures["rollout s"] < 20 and out.figures["drift s"] < 20, out.figures
