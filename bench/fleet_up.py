"""How fast the local fleet starts, how much memory its API servers take, and the build cost.

    .venv/bin/python bench/fleet_up.py [--quick] [--reps N] [--cold]

(a) Start-up: `fleet.up(dir, Options(clusters=3, full=1))` — etcd, a
    management API server and three workload API servers, the first of them
    "full" (controller-manager, scheduler, simulated nodes) — timed from the
    call to its return (every API server answers /readyz, the full cluster's
    nodes are Ready), on a warm binary cache, N times, each in a fresh /tmp
    folder. Target: ready in ≤ 20 s.
(b) Memory: on the last fleet, the CRDs and catalog are installed on the
    management cluster (`engine.cli.admin.install`) and ~50 ConfigMaps are created on
    each workload cluster; then VmRSS (now) and VmHWM (peak) are read from
    /proc/<pid>/status of each kube-apiserver. Target: ≤ 300 MiB per API server.
(c) Cold build of the binaries: by default the figure measured once on this
    machine is printed (a rebuild takes minutes); `--cold` measures it again
    with empty FLOTILLA_CACHE, GOMODCACHE and GOCACHE folders under /tmp.

Every fleet is stopped with `fleet.down` in a `finally`, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import benchlib as bl

from engine.adapters import kube, kubeconfig
from engine.cli import admin
from engine.devfleet import fleet, procs, testbin

READY_TARGET_S = 20.0
RSS_TARGET_MIB = 300
CONFIGMAPS = 50
# One run of testbin.ensure_built() from nothing, on this 2-core machine; the
# binaries' file times in ~/.cache/flotilla/testbin agree (first written 16:53:41,
# kubectl, the last, at 17:00:17).
COLD_BUILD_S = 6 * 60 + 36
COLD_BUILD_NOTE = (
    "measured 2026-11-26: 6 min 36 s for etcd+helm+kube-apiserver+controller-manager+"
    "scheduler+kubectl with an empty Go module cache, on this 2-core machine; not re-run "
    "here — pass --cold to measure it again (takes minutes, downloads the modules)")
COLD_TIMEOUT_S = 45 * 60


def _options() -> fleet.Options:
    return fleet.Options(clusters=3, full=1)


def time_up(reps: int) -> tuple[list[float], list[float], Path, fleet.Fleet]:
    """Start and stop the fleet reps times; the last one is left running for the memory part.

    Returns the up and down timings and the folder and Fleet of the still running
    last fleet, which the caller stops. Earlier fleets are stopped when this returns.
    """
    ups: list[float] = []
    downs: list[float] = []
    for rep in range(reps):
        fleet_dir = bl.temp_dir("up")
        keep = False
        try:
            watch = bl.Stopwatch()
            started = fleet.up(fleet_dir, _options())
            ups.append(watch.elapsed())
            bl.note(f"run {rep + 1}/{reps}: ready in {bl.seconds(ups[-1])}")
            if rep == reps - 1:
                keep = True
                return ups, downs, fleet_dir, started
        except fleet.FleetError as exc:
            raise bl.BenchError(f"fleet.up failed on run {rep + 1}: {exc}") from exc
        finally:
            if not keep:
                with bl.shielded():
                    watch = bl.Stopwatch()
                    fleet.down(fleet_dir)
                    downs.append(watch.elapsed())
                    bl.remove_tree(fleet_dir)
    raise bl.BenchError("no start-up to time: --reps must be at least 1")


async def _create_configmaps(path: str, count: int) -> None:
    client = kube.Client(kubeconfig.load(path), name=path)
    payload = "x" * 1024  # ~1 KiB each, like a small settings object
    try:
        await client.apply({"apiVersion": "v1", "kind": "Namespace",
                            "metadata": {"name": "bench-load"}})
        await asyncio.gather(*(client.create({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"load-{i:03d}", "namespace": "bench-load"},
            "data": {"payload": payload, "index": str(i)}}) for i in range(count)))
    finally:
        await client.close()


def memory(started: fleet.Fleet) -> int:
    """Load the fleet a little, print VmRSS/VmHWM per API server; return the top VmHWM in KiB."""
    bl.heading("(b) peak RSS per API server")
    watch = bl.Stopwatch()
    admin.install(started.management.kubeconfig, crds=bl.ROOT / "crds",
                  catalog=bl.ROOT / "catalog")
    bl.note(f"installed CRDs + catalog on management in {bl.seconds(watch.elapsed())}")
    watch = bl.Stopwatch()
    for cluster in started.clusters:
        asyncio.run(_create_configmaps(cluster.kubeconfig, CONFIGMAPS))
    bl.note(f"created {CONFIGMAPS} ConfigMaps (1 KiB each) on each of "
            f"{len(started.clusters)} workload clusters in {bl.seconds(watch.elapsed())}")
    rows = []
    peaks: list[int] = []
    for cluster in started.all:
        pid = cluster.pids["apiserver"]
        rss, hwm = bl.proc_status_kib(pid, "VmRSS"), bl.proc_status_kib(pid, "VmHWM")
        peaks.append(hwm)
        kind = "management" if cluster.role == "management" else (
            "full" if cluster.full else "api-only")
        rows.append([f"{cluster.name} kube-apiserver", kind, pid, bl.mib(rss), bl.mib(hwm),
                     bl.verdict(hwm / 1024, RSS_TARGET_MIB)])
    for pid, name in _recorded(started):
        if name == "etcd":
            rows.append(["etcd (shared, for reference)", "-", pid,
                         bl.mib(bl.proc_status_kib(pid, "VmRSS")),
                         bl.mib(bl.proc_status_kib(pid, "VmHWM")), ""])
    print(bl.table(["process", "cluster", "pid", "VmRSS", "VmHWM (peak)",
                    f"≤ {RSS_TARGET_MIB} MiB"], rows))
    return max(peaks)


def _recorded(started: fleet.Fleet) -> list[tuple[int, str]]:
    return procs.recorded(Path(started.dir))


def cold_build() -> float:
    """testbin.ensure_built() with every cache empty, in a child process we can stop."""
    work = bl.temp_dir("cold")
    env = {k: v for k, v in os.environ.items()
           if k != "KUBEBUILDER_ASSETS" and not k.startswith("TEST_ASSET_")}
    env.update(FLOTILLA_CACHE=str(work / "flotilla"), GOMODCACHE=str(work / "gomod"),
               GOCACHE=str(work / "gocache"))
    argv = [sys.executable, "-c",
            "from engine.devfleet import testbin; print(testbin.ensure_built())"]
    bl.note(f"building into {work} (output in {work / 'build.log'}) …")
    proc: subprocess.Popen[bytes] | None = None
    try:
        with open(work / "build.log", "wb") as log:
            watch = bl.Stopwatch()
            proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, cwd=bl.ROOT)
            try:
                code = proc.wait(timeout=COLD_TIMEOUT_S)
            except subprocess.TimeoutExpired as exc:
                raise bl.BenchError(f"cold build still running after {COLD_TIMEOUT_S} s") \
                    from exc
            took = watch.elapsed()
        if code != 0:
            tail = (work / "build.log").read_text(errors="replace")[-3000:]
            raise bl.BenchError(f"cold build failed (exit {code}):\n{tail}")
        return took
    finally:
        with bl.shielded():
            if proc is not None and proc.poll() is None:
                # The child leads its own session: this stops it and the go builds it runs.
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            bl.remove_tree(work)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 start-ups instead of 5")
    parser.add_argument("--reps", type=int, help="start-ups to time (default 5, --quick 2)")
    parser.add_argument("--cold", action="store_true",
                        help="really rebuild the binaries from empty caches (minutes)")
    args = parser.parse_args(argv)
    reps = args.reps or (2 if args.quick else 5)
    bl.exit_on_sigterm()
    print(f"fleet_up: {bl.machine()}")
    bins = testbin.path()  # warm cache: resolves instantly when the binaries exist
    print(f"binaries: {bins}")

    bl.heading(f"(a) fleet.up(Options(clusters=3, full=1)), warm binary cache, {reps} runs")
    fleet_dir: Path | None = None
    try:
        ups, downs, fleet_dir, started = time_up(reps)
        spread = bl.Spread.of(ups)
        rows: list[list[object]] = [[
            "up → ready (1 mgmt + 3 workload, 1 full)", bl.seconds(spread.median),
            bl.seconds(spread.low), bl.seconds(spread.high), spread.count,
            bl.verdict(spread.median, READY_TARGET_S)]]
        peak = memory(started)
    finally:
        if fleet_dir is not None:
            with bl.shielded():
                watch = bl.Stopwatch()
                fleet.down(fleet_dir)
                downs.append(watch.elapsed())
                bl.remove_tree(fleet_dir)
    gone = bl.Spread.of(downs)
    rows.append(["fleet.down (for reference)", bl.seconds(gone.median), bl.seconds(gone.low),
                 bl.seconds(gone.high), gone.count, ""])
    bl.heading("(a) start-up times")
    print(bl.table(["figure", "median", "min", "max", "runs", f"≤ {READY_TARGET_S:.0f} s"],
                   rows))

    bl.heading("(c) cold build of the binaries (testbin.ensure_built)")
    if args.cold:
        minutes, secs = divmod(round(cold_build()), 60)
        bl.note(f"cold build: {minutes} min {secs} s, measured now with empty caches")
    else:
        bl.note(f"cold build: {COLD_BUILD_S // 60} min {COLD_BUILD_S % 60} s (recorded figure)")
        bl.note(f"({COLD_BUILD_NOTE})")

    bl.heading("summary")
    print(bl.table(["target", "measured", "limit", "verdict"], [
        ["fleet ready (median)", bl.seconds(spread.median), f"{READY_TARGET_S:.0f} s",
         bl.verdict(spread.median, READY_TARGET_S)],
        ["API server peak RSS (max)", bl.mib(peak), f"{RSS_TARGET_MIB} MiB",
         bl.verdict(peak / 1024, RSS_TARGET_MIB)],
    ]))
    return 0


if __name__ == "__main__":
    try:
        code = main()
    except bl.BenchError as exc:
        print(f"fleet_up: {exc}", file=sys.stderr)
        code = 1
    finally:
        bl.check_leftovers("fleet_up")
    sys.exit(code)
