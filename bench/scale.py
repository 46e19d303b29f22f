"""Scale: 10, 100 and 1,000 WorkloadClusters on a lean fleet, one table of how cost grows.

    .venv/bin/python bench/scale.py [--quick] [--sizes 10,100,1000] [--per-server K]
        [--shards K] [--idle S] [--settle S] [--timeout S] [--no-chart] [--no-planner]
        [--keep DIR] [--cprofile] [--brief]

For each N (default 10 and 100; `--sizes 10,100,1000` for the big run;
`--quick`: 10 only, short windows) a lean fleet with ceil(N / K) workload
API servers is started and N WorkloadClusters are registered K per server
(K = 10 up to 100 clusters, 20 above), each with its own ServiceAccount
token limited to the namespace named after it. The controller is not told
that clusters share servers; the output says so. The phases are in
bench/scalerun.py; the benchmark profile (20 templated objects) in
bench/scalekit.py. Then the 10,000-cluster planner figures (bench/planner.py)
and, with `--shards K`, the speed-up of K shard controllers over one.

Targets (issue 13): 1,000 clusters x 20 manifests deployed <= 120 s after
one label change on all; controller peak RSS <= 600 MiB; idle: 0 writes,
<= 1 request per cluster per minute in total, <= 2 % of a core; 100 real
API servers x 1 chart <= 60 s; cost at most linear from 100 to 1,000.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import benchlib as bl
import scalerun as sr

from engine.devfleet.chartrepo import ChartRepo

HERE = Path(__file__).resolve().parent
Row = tuple[str, str, Callable[[sr.Result], str]]


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _n(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


ROWS: list[Row] = [
    ("lean API servers (clusters per server)", "",
     lambda r: f"{r.servers} ({r.per_server})"),
    ("fleet up / register / controller connect", "",
     lambda r: f"{r.fleet_up:.0f}/{r.register:.0f}/{r.connect:.0f} s"),
    ("label-all -> all deployed: total", "<= 120 s @1000", lambda r: _s(r.label_total)),
    ("  per cluster p50 / p99", "",
     lambda r: f"{r.label_p50:.1f} / {r.label_p99:.1f} s"),
    ("profile change -> fleet converged", "", lambda r: _s(r.change_total)),
    ("unlabel -> all withdrawn", "", lambda r: _s(r.withdraw_total)),
    ("controller CPU-seconds (helm children)", "",
     lambda r: f"{r.cpu_seconds:.0f} ({r.helm_cpu_seconds:.0f})"),
    ("controller peak RSS (VmHWM)", "<= 600 MiB", lambda r: bl.mib(r.rss_peak_kib)),
    ("management objects written: label-all / change", "",
     lambda r: f"{r.label_mgmt_writes:.0f} / "
     + ("-" if r.brief else f"{r.change_mgmt_writes:.0f}")),
    ("workload requests per cluster: label-all / change", "",
     lambda r: f"{r.label_workload_per_cluster:.1f} / "
     + ("-" if r.brief else f"{r.change_workload_per_cluster:.1f}")),
    ("restart -> idle", "", lambda r: "not idle" if r.restart_idle is None
     else f"{r.restart_idle:.0f} s"),
    ("  writes after restart: management / workload", "0 / 0",
     lambda r: f"{r.restart_writes_mgmt:.0f} / {r.restart_writes_workload:.0f}"),
    ("idle requests /cluster/min: mgmt + workload", "<= 1",
     lambda r: f"{r.idle_mgmt_rpm:.2f} + {r.idle_workload_rpm:.2f}"),
    ("idle writes", "0", lambda r: _n(r.idle_writes)),
    ("idle controller CPU", "<= 2 %", lambda r: f"{r.idle_cpu_pct:.1f} %"),
    ("real API servers x 1 chart: all deployed", "<= 60 s @100",
     lambda r: "-" if r.chart_total is None else f"{r.chart_servers}: {r.chart_total:.1f} s"),
    ("label-all again: 1 fresh controller / K shards", "",
     lambda r: "-" if r.shard_label_total is None or r.shard_baseline_total is None else
     f"{r.shard_baseline_total:.1f} / {r.shard_label_total:.1f} s "
     f"(x{r.shard_baseline_total / r.shard_label_total:.2f})"),
]


# The rows of phases that --brief skips.
FULL_ONLY = {"profile change -> fleet converged", "unlabel -> all withdrawn", "restart -> idle",
             "  writes after restart: management / workload"}


def exponent(small: float, big: float, n_small: int, n_big: int) -> str:
    """The b of cost ~ N^b between two sizes."""
    if small <= 0 or big <= 0:
        return "-"
    return f"{math.log(big / small) / math.log(n_big / n_small):.2f}"


def print_table(results: list[sr.Result], shards: int) -> None:
    bl.heading("scale: one table")
    for r in results:
        bl.note(f"N={r.clusters}: {r.clusters} WorkloadClusters on {r.servers} lean API servers, "
                f"{r.per_server} per server; the controller is not told")
    headers = ["figure", "target", *[f"N={r.clusters}" for r in results]]
    rows = [[name, target, *["-" if r.brief and name in FULL_ONLY else show(r) for r in results]]
            for name, target, show in ROWS]
    print(bl.table(headers, rows), flush=True)
    if shards > 1:
        bl.note(f"shards: {shards} controllers (the default one plus shard keys s1..s"
                f"{shards - 1}, clusters spread round-robin by the sharding.flotilla.dev/key "
                "annotation); both runs start fresh controllers after a withdrawal; the speed-up "
                "is 1 controller's total over K's")
    if len(results) >= 2:
        a, b = results[-2], results[-1]
        bl.note(f"growth exponent N={a.clusters} -> N={b.clusters} (1 = linear): label-all "
                f"total {exponent(a.label_total, b.label_total, a.clusters, b.clusters)}, "
                f"CPU-seconds {exponent(a.cpu_seconds, b.cpu_seconds, a.clusters, b.clusters)}, "
                f"management writes {exponent(a.label_mgmt_writes, b.label_mgmt_writes, a.clusters, b.clusters)}, "  # noqa: E501
                f"peak RSS {exponent(a.rss_peak_kib, b.rss_peak_kib, a.clusters, b.clusters)}")
    big = next((r for r in results if r.clusters >= 1000), None)
    if big is not None:
        idle = big.idle_mgmt_rpm + big.idle_workload_rpm
        for what, value, limit in (("label-all total s", big.label_total, 120.0),
                                   ("peak RSS MiB", big.rss_peak_kib / 1024, 600.0),
                                   ("idle requests/cluster/min", idle, 1.0),
                                   ("idle CPU %", big.idle_cpu_pct, 2.0),
                                   ("idle writes", big.idle_writes, 0.0)):
            verdict = bl.verdict(value, limit)
            miss = "" if verdict == "PASS" else f" (missed by {value - limit:.1f})"
            bl.note(f"N={big.clusters} {what}: {value:.2f} vs {limit:g}: {verdict}{miss}")
    for r in results:
        bl.note(f"N={r.clusters} label-all requests: {r.label_top}")
        bl.note(f"N={r.clusters} idle requests: {r.idle_top}")
        bl.note(f"N={r.clusters} load: start {r.load_start}; end {r.load_end}")


def planner(quick: bool) -> None:
    """The 10,000-cluster planner figures: bench/planner.py, when it is there."""
    bl.heading("planner at 10,000 clusters")
    path = HERE / "planner.py"
    if not path.exists():
        bl.note("see bench/planner.py")
        return
    spec = importlib.util.spec_from_file_location("planner", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    main = getattr(module, "main", None)
    if main is None:
        bl.note("see bench/planner.py")
        return
    main(["--quick"] if quick else [])


def leftovers(work: Path, grace: float = 5.0) -> None:
    """Warn about our processes still running (other benchmarks' are not ours to judge)."""

    def ours() -> list[str]:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, ValueError):
                continue
            if entry.name.isdigit() and str(work) in argv:
                found.append(f"{entry.name} {argv[:160]}")
        return found

    deadline = time.monotonic() + grace
    while (found := ours()) and time.monotonic() < deadline:
        time.sleep(0.2)
    for line in found:
        print(f"scale.py: WARNING: still running after clean-up: {line}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N=10 only, short windows")
    parser.add_argument("--sizes", default="10,100", help="comma-separated N (default 10,100)")
    parser.add_argument("--per-server", type=int, default=0,
                        help="clusters per lean API server (default 10, 20 above 100)")
    parser.add_argument("--shards", type=int, default=1, help="also run K shard controllers")
    parser.add_argument("--idle", type=float, default=60.0, help="idle window, seconds")
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--no-chart", action="store_true", help="skip the chart phase")
    parser.add_argument("--no-planner", action="store_true", help="skip the planner figures")
    parser.add_argument("--keep", type=Path, default=None,
                        help="copy the controller logs (and --cprofile output) to this folder")
    parser.add_argument("--brief", action="store_true",
                        help="connect, label-all and the idle window only (for a loaded machine)")
    parser.add_argument("--cprofile", action="store_true",
                        help="run the controller under cProfile (slower; for finding hot paths)")
    args = parser.parse_args(argv)
    sizes = [10] if args.quick else [int(s) for s in args.sizes.split(",") if s]
    idle, settle = (20.0, 5.0) if args.quick else (args.idle, args.settle)
    bl.exit_on_sigterm()
    bl.heading("scale")
    bl.note(bl.machine())
    results: list[sr.Result] = []
    work = bl.temp_dir("scale")
    repo: ChartRepo | None = None
    try:
        repo = None if args.no_chart else ChartRepo(work / "charts")
        for n in sizes:
            per_server = args.per_server or (10 if n <= 100 else 20)
            opts = sr.Options(clusters=n, per_server=per_server, idle=idle, settle=settle,
                              timeout=args.timeout, chart=not args.no_chart, shards=args.shards,
                              keep=args.keep, cprofile=args.cprofile, brief=args.brief)
            size_dir = work / f"n{n}"
            try:
                results.append(asyncio.run(sr.measure(opts, size_dir, repo)))
            finally:
                bl.remove_tree(size_dir)
        print_table(results, args.shards)
        if not args.no_planner:
            planner(args.quick)
    except bl.BenchError as exc:
        print(f"scale.py: {exc}", file=sys.stderr)
        if results:
            print_table(results, args.shards)
        return 1
    finally:
        with bl.shielded():
            if repo is not None:
                repo.close()
            bl.remove_tree(work)
        leftovers(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
