"""Lean API servers: memory, start-up, each setting; 25-100 servers; 1,000 virtual clusters.

    .venv/bin/python bench/fleet_lean.py [--quick] [--sizes 25,50,100] [--virtual 1000]
                                         [--reps N] [--settle S]

(a) One server at a time, on the etcd of a fleet that has only its management
    server: a default workload API server, a lean one (`engine.devfleet.lean`)
    and, for each lean setting, a lean one without that setting
    (`fleet.add_server(..., without=[name])`). Each is timed from spawn to
    /readyz, left `settle` seconds, then read from /proc: VmRSS, VmHWM and
    RssAnon (the memory the server owns; the ~85 MiB of mapped binary pages in
    VmRSS are shared by every server), and the CPU it uses over a 10 s idle
    window. Default and lean run `reps` times (median). "effect" is what
    leaving the setting out costs: its anon and idle CPU minus the lean one's.
(b) For each N in `sizes`: `fleet.up(dir, Options(clusters=N, lean=True))`
    timed (management + N lean servers, at most 10 starting at a time, the
    next as soon as one is ready), then the median and max VmRSS/RssAnon of the lean
    servers, the shared etcd's RSS, how much MemAvailable dropped, and the CPU
    all servers and etcd use together over 10 s of idle.
(c) On the fleets where `virtual` clusters fit at ≤ 20 per server: the CRDs
    are installed and `virtual.register_virtual(total=virtual,
    per_server=ceil(virtual / N))` timed (namespace, ServiceAccount, Role,
    RoleBinding, ClusterRole, ClusterRoleBinding and TokenRequest on the
    workload server, kubeconfig Secret and WorkloadCluster on management, per
    virtual cluster), with the CPU seconds it cost the servers, etcd and the
    registering process (what it would take on an idle machine); then the lean
    servers' memory again.

Each fleet is stopped with `fleet.down` in a `finally`. `--quick`: sizes 5,10,
100 virtual clusters, 1 rep, 3 s settle.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import benchlib as bl

from engine.cli import admin
from engine.devfleet import fleet, lean, procs, virtual

IDLE_WINDOW_S = 10.0
MAX_PER_SERVER = 20


@dataclass(frozen=True)
class Sample:
    up: float       # spawn → /readyz, seconds
    rss: int        # KiB
    hwm: int
    anon: int
    idle_ms: float  # CPU milliseconds per second of idle


def _idle_cpu(pids: list[int], window: float = IDLE_WINDOW_S) -> float:
    """CPU seconds per second these processes use together over `window`."""
    before = [bl.cpu_times(p).own for p in pids]
    time.sleep(window)
    after = [bl.cpu_times(p).own for p in pids]
    return (sum(after) - sum(before)) / window


def measure_one(started: fleet.Fleet, name: str, *, lean_server: bool,
                without: tuple[str, ...] = (), settle: float) -> Sample:
    watch = bl.Stopwatch()
    server = fleet.add_server(started, name, lean_server=lean_server, without=without)
    up = watch.elapsed()
    pid = server.pids["apiserver"]
    try:
        time.sleep(settle)
        idle = _idle_cpu([pid])
        return Sample(up=up, rss=bl.proc_status_kib(pid, "VmRSS"),
                      hwm=bl.proc_status_kib(pid, "VmHWM"),
                      anon=bl.proc_status_kib(pid, "RssAnon"), idle_ms=idle * 1000)
    finally:
        procs.stop(pid)


def _median(samples: list[Sample]) -> Sample:
    return Sample(*(statistics.median(getattr(s, f) for s in samples)
                    for f in ("up", "rss", "hwm", "anon", "idle_ms")))


def per_setting(reps: int, settle: float) -> tuple[Sample, Sample]:
    bl.heading("(a) one API server at a time: default, lean, lean without each setting")
    fleet_dir = bl.temp_dir("lean-a")
    rows: list[list[object]] = []
    try:
        started = fleet.up(fleet_dir, fleet.Options(clusters=0, full=0))
        runs = {"default": [measure_one(started, f"default-{i}", lean_server=False,
                                        settle=settle) for i in range(reps)],
                "lean": [measure_one(started, f"lean-{i}", lean_server=True, settle=settle)
                         for i in range(reps)]}
        default, full = _median(runs["default"]), _median(runs["lean"])
        for label, sample, count in (("default server", default, reps),
                                     ("lean server (all settings)", full, reps)):
            rows.append([label, bl.seconds(sample.up), bl.mib(int(sample.rss)),
                         bl.mib(int(sample.hwm)), bl.mib(int(sample.anon)),
                         f"{sample.idle_ms:.0f} ms/s", "", count])
        for setting in lean.settings():
            s = measure_one(started, f"without-{setting.name}", lean_server=True,
                            without=(setting.name,), settle=settle)
            effect = f"{(s.anon - full.anon) / 1024:+.0f} MiB, {s.idle_ms - full.idle_ms:+.0f} ms/s"
            rows.append([f"lean without {setting.name}", bl.seconds(s.up), bl.mib(s.rss),
                         bl.mib(s.hwm), bl.mib(s.anon), f"{s.idle_ms:.0f} ms/s", effect, 1])
    finally:
        with bl.shielded():
            fleet.down(fleet_dir)
            bl.remove_tree(fleet_dir)
    print(bl.table(["server", "up → ready", "VmRSS", "VmHWM", "RssAnon", "idle CPU",
                    "effect of leaving it out (anon, CPU)", "runs"], rows))
    for setting in lean.settings():
        bl.note(f"{setting.name}: {setting.why}")
    return default, full


def _mem_available_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    raise bl.BenchError("/proc/meminfo has no MemAvailable")


def _server_memory(started: fleet.Fleet) -> tuple[list[int], list[int]]:
    pids = [c.pids["apiserver"] for c in started.clusters]
    return ([bl.proc_status_kib(p, "VmRSS") for p in pids],
            [bl.proc_status_kib(p, "RssAnon") for p in pids])


def at_scale(sizes: list[int], total_virtual: int, settle: float) -> list[list[object]]:
    rows: list[list[object]] = []
    for n in sizes:
        bl.heading(f"(b) {n} lean API servers  [{bl.machine()}]")
        fleet_dir = bl.temp_dir(f"lean-{n}")
        free_before = _mem_available_kib()
        try:
            watch = bl.Stopwatch()
            started = fleet.up(fleet_dir, fleet.Options(clusters=n, lean=True, timeout=180))
            up = watch.elapsed()
            bl.note(f"up in {bl.seconds(up)} (≤ 10 starting at a time)")
            time.sleep(settle)
            rss, anon = _server_memory(started)
            etcd = next(p for p, what in procs.recorded(Path(started.dir)) if what == "etcd")
            pids = [c.pids["apiserver"] for c in started.all] + [etcd]
            idle = _idle_cpu(pids)
            used = (free_before - _mem_available_kib()) / 1024 / 1024
            row: list[object] = [
                n, bl.seconds(up), bl.mib(int(statistics.median(rss))), bl.mib(max(rss)),
                bl.mib(int(statistics.median(anon))), bl.mib(bl.proc_status_kib(etcd, "VmRSS")),
                f"{used:.1f} GiB", f"{idle:.2f} cores", f"{os.getloadavg()[0]:.1f}"]
            per_server = math.ceil(total_virtual / n)
            if total_virtual and per_server <= MAX_PER_SERVER:
                bl.heading(f"(c) {total_virtual} virtual clusters on {n} lean API servers")
                admin.install(started.management.kubeconfig, crds=bl.ROOT / "crds",
                              catalog=bl.ROOT / "catalog")
                servers_before = sum(bl.cpu_times(p).own for p in pids)
                ours_before = time.process_time()
                watch = bl.Stopwatch()
                made = virtual.register_virtual(started, per_server=per_server,
                                                total=total_virtual, labels={"bench": "lean"})
                took = watch.elapsed()
                ours = time.process_time() - ours_before
                servers = sum(bl.cpu_times(p).own for p in pids) - servers_before
                bl.note(virtual.describe(made))
                bl.note(f"registered in {bl.seconds(took)} "
                        f"({len(made) / took:.0f} virtual clusters/s, load "
                        f"{os.getloadavg()[0]:.1f}); CPU: {servers:.1f} s API servers + etcd, "
                        f"{ours:.1f} s this process ({(servers + ours) / len(made) * 1000:.0f} "
                        "ms per virtual cluster)")
                rss, anon = _server_memory(started)
                row += [f"{len(made)} in {bl.seconds(took)}",
                        bl.mib(int(statistics.median(anon)))]
            else:
                row += ["-", "-"]
            rows.append(row)
        finally:
            with bl.shielded():
                fleet.down(fleet_dir)
                bl.remove_tree(fleet_dir)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one rep")
    parser.add_argument("--sizes", help="lean servers per fleet (default 25,50,100; --quick 5,10)")
    parser.add_argument("--virtual", type=int, help="virtual clusters (default 1000; --quick 100)")
    parser.add_argument("--reps", type=int, help="default/lean single-server runs (default 3)")
    parser.add_argument("--settle", type=float, help="seconds after ready before reading memory "
                        "(default 8; --quick 3)")
    parser.add_argument("--skip-settings", action="store_true", help="skip part (a)")
    args = parser.parse_args(argv)
    sizes = [int(x) for x in (args.sizes or ("5,10" if args.quick else "25,50,100")).split(",")]
    total_virtual = args.virtual if args.virtual is not None else (100 if args.quick else 1000)
    reps = args.reps or (1 if args.quick else 3)
    settle = args.settle if args.settle is not None else (3.0 if args.quick else 8.0)
    bl.exit_on_sigterm()
    print(f"fleet_lean: {bl.machine()}")
    summary: list[list[object]] = []
    if not args.skip_settings:
        default, full = per_setting(reps, settle)
        summary += [["RssAnon per server, default → lean (median)",
                     f"{bl.mib(int(default.anon))} → {bl.mib(int(full.anon))} "
                     f"({full.anon / default.anon:.0%})"],
                    ["VmRSS per server, default → lean (median)",
                     f"{bl.mib(int(default.rss))} → {bl.mib(int(full.rss))}"],
                    ["idle CPU per server, default → lean",
                     f"{default.idle_ms:.0f} → {full.idle_ms:.0f} ms/s"]]
    rows = at_scale(sizes, total_virtual, settle)
    bl.heading("(b, c) lean fleets")
    print(bl.table(["servers", "up → ready", "VmRSS p50", "VmRSS max", "RssAnon p50",
                    "etcd RSS", "MemAvailable drop", "idle CPU (all)", "load",
                    "virtual registered", "RssAnon p50 after"], rows))
    bl.heading("summary")
    for row in rows:
        summary.append([f"{row[0]} lean servers up", row[1]])
        if row[9] != "-":
            summary.append([f"{total_virtual} virtual clusters on {row[0]} servers", row[9]])
    print(bl.table(["figure", "measured"], summary))
    return 0


if __name__ == "__main__":
    try:
        code = main()
    except (bl.BenchError, fleet.FleetError) as exc:
        print(f"fleet_lean: {exc}", file=sys.stderr)
        code = 1
    finally:
        bl.check_leftovers("fleet_lean")
    sys.exit(code)
