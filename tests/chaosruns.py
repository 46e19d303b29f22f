"""The fault scenarios themselves, each returning a `chaoskit.Outcome`.

Used by tests/chaos (short forms) and bench/chaos.py (repeated, with a
table). Every scenario puts the fleet back the way it found it in `finally`:
a stopped server is started again, a frozen one thawed, a killed controller
restarted, the scene's profile and bystanders removed.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

from chaoskit import RESOURCES, SUMMARY_UNREACHABLE, Crashes, Outcome, Scene, kill_controller
from fleetkit import Engine, Kubectl, condition, eventually, workload_writes

from engine.devfleet import fleet as devfleet
from engine.devfleet import procs

# The controller probes a cluster this often (engine.controller.context.Settings).
PROBE_INTERVAL = 30.0


def _version_on(kube: Kubectl, ns: str) -> str | None:
    cm = kube.get("configmap", "app", "-n", ns)
    return (cm or {}).get("data", {}).get("version")


def _rvs(kube: Kubectl, ns: str) -> dict[str, str]:
    """resourceVersions of what a re-apply of unchanged content would touch."""
    items = kube.json("get", "configmaps,serviceaccounts,secrets,deployments", "-n", ns)["items"]
    return {f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"]
            for o in items if o["metadata"]["name"] != "app" or o["kind"] != "ConfigMap"}


def _history(scene: Scene, cluster: str) -> int:
    out = scene.helm(cluster)("history", "web", "-n", scene.ns, "-o", "json", check=False)
    import json
    return len(json.loads(out or "[]"))


def _finish(out: Outcome, crashes: Crashes) -> Outcome:
    out.crashes, failures = crashes.count()
    out.check(out.crashes == 0, f"controller crashes: {failures}")
    out.check(out.lost == 0, f"{out.lost} objects lost")
    return out


def workload_outage(engine: Engine, mgmt: Kubectl, fleet: devfleet.Fleet, home: Path, *,
                    down_for: float = 30.0, target: str = "cluster-4",
                    others: tuple[str, ...] = ("cluster-2", "cluster-3")) -> Outcome:
    """A workload API server stopped for `down_for` s (at least until the outage shows)."""
    out, crashes = Outcome("workload API server down"), Crashes(engine)
    scene = Scene(engine, mgmt, [*others, target], home)
    try:
        scene.prepare()
        scene.publish(1)
        for cluster in scene.clusters:
            scene.select(cluster)
        scene.wait_converged(120)
        kept = _rvs(scene.kube(target), scene.ns)
        argv = devfleet.stop_server(fleet, target)
        down = time.monotonic()
        try:
            # The other clusters carry on: a new revision reaches them, drift is corrected.
            scene.publish(2)
            start = time.monotonic()
            for cluster in others:
                eventually(lambda c=cluster: _version_on(scene.kube(c), scene.ns) == "2",
                           timeout=60, what=f"revision 2 on {cluster} during the outage")
            out.figures["rollout s"] = time.monotonic() - start
            scene.kube(others[0])("patch", "configmap", "app", "-n", scene.ns, "--type=merge",
                                  "-p", '{"data":{"version":"by-hand"}}')
            start = time.monotonic()
            eventually(lambda: _version_on(scene.kube(others[0]), scene.ns) == "2",
                       timeout=60, what="drift corrected during the outage")
            out.figures["drift s"] = time.monotonic() - start

            def shown() -> bool:
                summary = scene.summaries().get(target)
                cond = condition(summary, SUMMARY_UNREACHABLE)
                return bool(cond and cond["status"] == "True")

            eventually(shown, timeout=PROBE_INTERVAL + 20, interval=1,
                       what=f"{SUMMARY_UNREACHABLE} on {target}'s summary")
            out.figures["shown s"] = time.monotonic() - down
            time.sleep(max(0.0, down_for - (time.monotonic() - down)))
        finally:
            devfleet.start_server(fleet, target, argv)
        back = time.monotonic()
        kube = scene.kube(target)
        out.seconds = scene.wait_converged(PROBE_INTERVAL + 60)
        eventually(lambda: (condition(scene.summaries()[target], SUMMARY_UNREACHABLE) or {})
                   .get("status") == "False", timeout=30,
                   what=f"{SUMMARY_UNREACHABLE} False again on {target}")
        out.seconds = time.monotonic() - back
        out.converged = True
        time.sleep(3)  # anything redundant would follow the convergence closely
        # Since its restart the server counts from zero: only the changed ConfigMap is due.
        writes = workload_writes(kube, RESOURCES)
        out.redundant = max(0, writes - 1)
        touched = [k for k, v in _rvs(kube, scene.ns).items() if kept.get(k) != v]
        out.check(not touched, f"unchanged objects re-applied after the restart: {touched}")
        out.check(_history(scene, target) == 1, "the release was installed again")
        out.lost = sum(scene.each(lambda c: scene.lost(c, True)))
    except AssertionError as exc:
        out.problems.append(str(exc))
    finally:
        scene.close()
    return _finish(out, crashes)


def _second_apiserver(fleet: devfleet.Fleet, argv: list[str]) -> tuple[int, Kubectl]:
    """Another management API server on the same etcd prefix: how a change lands in an outage."""
    port = procs.free_port()
    argv = [a if not a.startswith("--secure-port=") else f"--secure-port={port}" for a in argv]
    pid = procs.spawn(Path(fleet.dir), "management-apiserver-standby", argv, env={"GOGC": "50"})
    text = Path(fleet.management.kubeconfig).read_text()
    path = Path(fleet.dir, "management-standby.kubeconfig")
    path.write_text(text.replace(fleet.management.url, f"https://127.0.0.1:{port}"))
    path.chmod(0o600)
    kube = Kubectl(path)
    eventually(lambda: kube.run("get", "--raw", "/readyz", check=False).returncode == 0,
               timeout=60, interval=0.5, what="the standby management API server")
    return pid, kube


def control_plane_restarts(engine: Engine, mgmt: Kubectl, fleet: devfleet.Fleet, home: Path,
                           *, down_for: float = 1.0, steady: str = "cluster-2",
                           joining: tuple[str, ...] = ("cluster-3", "cluster-4"),
                           ) -> list[Outcome]:
    """The management API server, then etcd, restarted under a running controller.

    Each time a cluster is labelled while the controller's watches are down: for
    the API server through a second API server on the same etcd prefix (as in an
    HA control plane), for etcd (which every server needs) the moment the
    management API answers again. `steady` stays selected throughout: nothing
    may be written to it.
    """
    crashes, scene = Crashes(engine), Scene(engine, mgmt, [steady, *joining], home)
    outcomes = [Outcome("management API server restarted"), Outcome("etcd restarted")]
    try:
        scene.prepare()
        scene.publish(1)
        scene.select(steady)
        scene.wait_converged(90)
        for out, which, cluster in zip(outcomes, ("management", "etcd"), joining, strict=True):
            before = workload_writes(scene.kube(steady), RESOURCES)
            try:
                _restart(fleet, mgmt, scene, which, cluster, down_for)
                back = time.monotonic()
                scene.wait_converged(120)
                out.seconds = time.monotonic() - back
                out.converged = True
                time.sleep(2)  # anything redundant would follow the convergence closely
                out.redundant = workload_writes(scene.kube(steady), RESOURCES) - before
                out.lost = sum(scene.each(lambda c: scene.lost(c, c in scene.selected)))
            except AssertionError as exc:
                out.problems.append(str(exc))
            _finish(out, crashes)
            crashes = Crashes(engine)
            if not out.converged:
                break
    finally:
        scene.close()
    return outcomes


def _restart(fleet: devfleet.Fleet, mgmt: Kubectl, scene: Scene, which: str, cluster: str,
             down_for: float) -> None:
    argv = devfleet.stop_server(fleet, which)
    try:
        if which == "management":
            pid, standby = _second_apiserver(fleet, argv)
            try:
                standby("label", "workloadcluster", "-n", "fleet", cluster, f"{scene.label}=on")
                scene.selected.add(cluster)
            finally:
                procs.stop(pid)
        time.sleep(down_for)
    finally:
        devfleet.start_server(fleet, which, argv)
    if which != "management":
        eventually(lambda: mgmt.run("label", "workloadcluster", "-n", "fleet", cluster,
                                    f"{scene.label}=on", check=False).returncode == 0,
                   timeout=60, interval=0.5, what="the label written after etcd's restart")
        scene.selected.add(cluster)


STEPS = ("deploy", "drift", "rollout", "withdraw")


def sigkill_lifecycle(engine: Engine, mgmt: Kubectl, home: Path, *, seed: int,
                      clusters: tuple[str, ...] = ("cluster-2", "cluster-3", "cluster-4"),
                      ) -> list[Outcome]:
    """Deploy, drift, a staged rollout and withdrawal, the controller SIGKILLed in each.

    The kill lands at a random moment (seeded) after the step starts; the
    controller and its helm children die together, as in a pod, and a new
    controller is started at once. Each step must reach the same end state
    as a run without kills (`Scene.expected`).
    """
    rng = random.Random(seed)
    ring = f"ring-{seed}"
    spec = (f"  maxUpdate: 1\n  rollout:\n    minSuccessTime: 3s\n    stages:\n"
            f"    - {{name: canary, clusterSelector: {{matchLabels: {{{ring}: canary}}}}}}\n"
            f"    - {{name: main}}\n")
    scene = Scene(engine, mgmt, list(clusters), home)  # staged from the rollout step on
    outcomes: list[Outcome] = []
    try:
        scene.prepare()
        mgmt("label", "workloadcluster", "-n", "fleet", clusters[0], f"{ring}=canary",
             "--overwrite")
        for step in STEPS:
            out, crashes = Outcome(f"controller SIGKILLed: {step}", seed=seed), Crashes(engine)
            outcomes.append(out)
            revisions = scene.each(lambda c: _history(scene, c))
            if step == "deploy":
                scene.publish(1)
                for cluster in clusters:
                    scene.select(cluster)
                delay = rng.uniform(0.0, 3.0)
            elif step == "drift":
                scene.kube(clusters[1])("patch", "configmap", "app", "-n", scene.ns,
                                        "--type=merge", "-p", '{"data":{"version":"by-hand"}}')
                scene.kube(clusters[-1])("delete", "serviceaccount", "app", "-n", scene.ns)
                delay = rng.uniform(0.0, 0.4)  # corrected within a second: no look first
            elif step == "rollout":
                scene.spec_extra = spec
                scene.publish(2)
                delay = rng.uniform(0.0, 3.0)
            else:
                mgmt("delete", "clusterprofile", scene.name, "--wait=false")
                scene.selected.clear()
                delay = rng.uniform(0.0, 2.0)
            time.sleep(delay)
            if step != "drift":
                # Whether the kill lands mid-step (the look takes ~0.5 s of the step's time).
                out.figures["mid-step"] = float(not scene.converged())
            crashes.alive()
            kill_controller(engine)
            engine.start()
            out.figures["kill at s"] = delay
            killed = time.monotonic()
            try:
                scene.wait_converged(120)
                out.converged = True
            except AssertionError as exc:
                out.problems.append(f"seed {seed}: {exc}")
            out.seconds = time.monotonic() - killed
            if step != "withdraw":
                # Helm revisions beyond the one a deploy needs (drift and the rollout change
                # no chart value): a kill while helm itself runs can cost one more.
                due = 1 if step == "deploy" else 0
                after = scene.each(lambda c: _history(scene, c))
                out.redundant = sum(max(0, new - old - due)
                                    for old, new in zip(revisions, after, strict=True))
            leftovers = [c for c in clusters if scene.kube(c).get(
                "configmap", "flotilla-owner.web", "-n", scene.ns) is not None]
            if step == "withdraw":
                out.check(not leftovers, f"seed {seed}: release claims left on {leftovers}")
            out.lost = sum(scene.each(lambda c: scene.lost(c, c in scene.selected)))
            _finish(out, crashes)
            if not out.converged:
                break
    finally:
        mgmt("label", "workloadcluster", "-n", "fleet", clusters[0], f"{ring}-", check=False)
        scene.close()
    return outcomes


def slow_cluster(engine: Engine, mgmt: Kubectl, fleet: devfleet.Fleet, home: Path, *,
                 frozen: float = 3.0, thawed: float = 1.0, revisions: int = 4,
                 slow: str = "cluster-4",
                 others: tuple[str, ...] = ("cluster-2", "cluster-3")) -> Outcome:
    """An API server frozen `frozen` s out of every `frozen + thawed` while the others work."""
    out, crashes = Outcome("slow cluster (SIGSTOP/SIGCONT)"), Crashes(engine)
    scene = Scene(engine, mgmt, [*others, slow], home)
    pid = next(c for c in fleet.clusters if c.name == slow).pids["apiserver"]
    stop = threading.Event()

    def throttle() -> None:
        while not stop.is_set():
            os.kill(pid, signal.SIGSTOP)
            stop.wait(frozen)
            os.kill(pid, signal.SIGCONT)
            stop.wait(thawed)

    thread = threading.Thread(target=throttle, daemon=True)
    try:
        scene.prepare()
        scene.publish(1)
        for cluster in scene.clusters:
            scene.select(cluster)
        scene.wait_converged(90)
        thread.start()
        latencies: list[float] = []
        for version in range(2, 2 + revisions):
            scene.publish(version)
            start = time.monotonic()
            for cluster in others:
                eventually(lambda c=cluster, v=version: _version_on(scene.kube(c), scene.ns)
                           == str(v), timeout=60, what=f"revision {version} on {cluster}")
            latencies.append(time.monotonic() - start)
            time.sleep(frozen / 2)  # spread the revisions over the freezes and thaws
        out.figures["rollout s"] = max(latencies)
        scene.kube(others[0])("patch", "configmap", "app", "-n", scene.ns, "--type=merge",
                              "-p", '{"data":{"version":"by-hand"}}')
        start = time.monotonic()
        eventually(lambda: _version_on(scene.kube(others[0]), scene.ns) == str(scene.version),
                   timeout=60, what="drift corrected beside the slow cluster")
        out.figures["drift s"] = time.monotonic() - start
        stop.set()
        thread.join()
        os.kill(pid, signal.SIGCONT)
        back = time.monotonic()
        scene.wait_converged(120)
        out.seconds = time.monotonic() - back
        out.converged = True
        out.redundant = sum(max(0, _history(scene, c) - 1) for c in scene.clusters)
        out.lost = sum(scene.each(lambda c: scene.lost(c, True)))
    except AssertionError as exc:
        out.problems.append(str(exc))
    finally:
        stop.set()
        if thread.is_alive():
            thread.join()
        os.kill(pid, signal.SIGCONT)
        scene.close()
    return _finish(out, crashes)


def summary_row(outcomes: list[Outcome]) -> dict[str, Any]:
    """One line of the table: runs, converged, median seconds, lost, redundant, crashes."""
    import statistics

    times = [o.seconds for o in outcomes if o.converged]
    return {"runs": len(outcomes), "converged": sum(o.converged for o in outcomes),
            "median s": statistics.median(times) if times else float("nan"),
            "lost": sum(o.lost for o in outcomes),
            "redundant": sum(o.redundant for o in outcomes),
            "crashes": sum(o.crashes for o in outcomes)}
