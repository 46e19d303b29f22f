"""The figures bench/real_charts.py collects, and the tables and verdicts it prints.

Kept apart from the run itself so the script stays readable: `Results` is
filled by `real_charts.Run`, `report` prints it. Workload writes during the
idle window are split by resource: a resource the fleet also wrote while
the controller was stopped (node simulator, controller-manager, the API
server's own leases), or whose objects changed in the window were changed by
the fleet's field managers alone (`chartwatch.written_objects`: the
controller-manager's Event updates come every few minutes, so a short
stopped window can miss them), is the fleet's; a write to any other resource
is counted against the controller.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import benchlib as bl
import chartwatch as cw


@dataclass(frozen=True)
class Timing:
    """One release's install or upgrade, in seconds from the change (label or apply)."""

    release: str
    version: str
    deployed: float  # -> helm's release Secret of the new revision shows status=deployed
    executed: float | None  # -> the controller started that helm install/upgrade process
    helm: float | None  # helm's own run: that Secret first seen (pending-*) -> deployed
    row: float  # -> the summary's service row Provisioned with the new hash
    applied: float | None  # the row's lastAppliedTime (whole seconds) - the change's wall time
    failed: int  # revisions of this change that ended failed first


@dataclass
class Idle:
    revisions_before: dict[str, int]
    revisions_after: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    controller_cpu: float = 0.0
    metrics: dict[str, Counter[str]] = field(default_factory=dict)  # deltas, by label value
    conditions: list[str] = field(default_factory=list)  # Drifted/DriftFight after the window
    workload: cw.Writes = field(default_factory=cw.Writes)
    management: cw.Writes = field(default_factory=cw.Writes)
    written: cw.Written = field(default_factory=cw.Written)
    changes: list[cw.Change] = field(default_factory=list)
    drift_entries: set[str] = field(default_factory=set)  # present at any time in the window


@dataclass
class Results:
    install: list[Timing] = field(default_factory=list)
    values: list[Timing] = field(default_factory=list)
    charts: list[Timing] = field(default_factory=list)
    idle: Idle | None = None
    background: cw.Writes = field(default_factory=cw.Writes)
    background_seconds: float = 0.0


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _spread(values: Sequence[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "-"
    s = bl.Spread.of(known)
    return f"{s.median:.1f}" if s.count == 1 else f"{s.median:.1f} [{s.low:.1f}-{s.high:.1f}]"


TIMING_HEADERS = ["release", "chart", "-> helm exec", "-> record", "-> deployed", "helm",
                  "record->deployed", "-> row Provisioned", "lastAppliedTime"]


def _timings(title: str, timings: Sequence[Timing]) -> None:
    bl.heading(title)
    by_release: dict[str, list[Timing]] = {}
    for t in timings:
        by_release.setdefault(t.release, []).append(t)
    rows = []
    for release, ts in by_release.items():
        failed = sum(t.failed for t in ts)
        rows.append([release + (f" ({failed} failed first)" if failed else ""),
                     ",".join(sorted({t.version for t in ts})),
                     _spread([t.executed for t in ts]),
                     _spread([None if t.helm is None else t.deployed - t.helm for t in ts]),
                     _spread([t.deployed for t in ts]),
                     _spread([None if t.executed is None else t.deployed - t.executed
                              for t in ts]),
                     _spread([t.helm for t in ts]),
                     _spread([t.row for t in ts]), _spread([t.applied for t in ts])])
    print(bl.table(TIMING_HEADERS, rows))


LEGEND = (
    "-> helm exec: the controller started the helm install/upgrade process (its /proc "
    "starttime); -> record: helm's release Secret of the new revision first seen "
    "(pending-install/-upgrade), written after helm loaded the chart, installed its crds/ "
    "and rendered; -> deployed: that Secret shows status=deployed; helm = deployed - exec; "
    "-> row Provisioned: the ClusterSummary's service row, Provisioned with the new hash; "
    "lastAppliedTime: the row's own stamp (whole seconds, +-1 s) minus the change's wall time."
    " Watch events are stamped on arrival.",
)


def _resource(what: str) -> str:
    return what.split(" ", 1)[1]


def controller_writes(idle: cw.Writes, background: cw.Writes,
                      written: cw.Written) -> Counter[str]:
    """Idle writes to resources the fleet did not write while the controller was off, nor
    (managedFields) were changed in the window by the fleet's managers alone."""
    fleets = {_resource(w) for w in background.persisted}
    fleets |= {res for res, ours in written.by_resource.items() if not ours}
    return Counter({w: n for w, n in idle.persisted.items()
                    if _resource(w).split("/")[0] not in fleets and _resource(w) not in fleets})


def _idle(res: Results) -> tuple[int, int, int, int, float]:
    idle = res.idle
    assert idle is not None
    minutes, bg_minutes = idle.seconds / 60, max(res.background_seconds, 1e-9) / 60
    bl.heading(f"idle: {bl.seconds(idle.seconds)}, everything deployed")
    drifts = [c for c in idle.changes if c.key[0] == "drift" and c.state]
    m = {name: sum(c.values()) for name, c in idle.metrics.items()}
    dry = idle.metrics["flotilla_drift_dry_runs_total"]
    bl.note(f"flotilla_drift_detected_total +{m['flotilla_drift_detected_total']}, "
            f"flotilla_drift_corrected_total +{m['flotilla_drift_corrected_total']}, "
            f"flotilla_drift_dry_runs_total +{m['flotilla_drift_dry_runs_total']} "
            f"({', '.join(f'{k} {n}' for k, n in sorted(dry.items())) or 'none'})")
    bl.note(f"summaries' status.drift: {len(idle.drift_entries)} entries present during the "
            f"window, {len(drifts)} change(s) of a drift list with entries in it")
    for entry in sorted(idle.drift_entries):
        bl.note(f"  {entry}")
    for line in idle.conditions:
        bl.note(f"  condition after the window: {line}")
    upgrades = sum(max(0, idle.revisions_after.get(r, 0) - v)
                   for r, v in idle.revisions_before.items())
    secrets = [c for c in idle.changes if c.key[0] != "row" and c.key[0] != "drift"]
    bl.note(f"helm revisions before {idle.revisions_before}")
    bl.note(f"helm revisions after  {idle.revisions_after}; release Secret changes "
            f"{len(secrets)}")
    rows_changed = [c for c in idle.changes if c.key[0] == "row"]
    bl.note(f"summary service rows rewritten: {len(rows_changed)}; controller CPU "
            f"{idle.controller_cpu / idle.seconds * 100:.2f} % of one core")

    ours = controller_writes(idle.workload, res.background, idle.written)
    keys = sorted(set(idle.workload.persisted) | set(res.background.persisted))
    table = [[k, idle.workload.persisted.get(k, 0),
              f"{idle.workload.persisted.get(k, 0) / minutes:.2f}",
              f"{res.background.persisted.get(k, 0) / bg_minutes:.2f}", ours.get(k, 0)]
             for k in keys]
    print("\n  workload cluster: persisted writes (apiserver_request_total, dry_run=\"\")")
    print(bl.table(["verb resource", "idle", "/min idle", "/min ctl stopped",
                    "the controller's"], table))
    dry_runs = sum(idle.workload.dry_runs.values())
    bl.note(f"dry runs while idle (not writes): {dry_runs} "
            + (f"({', '.join(f'{k} {n}' for k, n in idle.workload.dry_runs.most_common())})"
               if dry_runs else ""))
    written = idle.written
    print(f"\n  workload cluster: objects changed while idle, by managedFields "
          f"({written.objects} objects read)")
    print(bl.table(["manager", "operation", "kind", "objects", "whose"],
                   [[m, op, kind, n, "controller" if cw.is_controller(m, kind) else "fleet"]
                    for (m, op, kind), n in sorted(written.by_manager.items())]
                   or [["(none)", "", "", 0, ""]]))
    for line in written.controller_objects[:20]:
        bl.note(f"written by the controller: {line}")
    mgmt = idle.management
    bl.note(f"management (reference): {mgmt.total} writes while idle "
            + (f"({', '.join(f'{k} {n}' for k, n in mgmt.persisted.most_common())})"
               if mgmt.total else ""))
    return (m["flotilla_drift_detected_total"], len(idle.drift_entries),
            upgrades, sum(ours.values()), len(written.controller_objects))


def report(res: Results, args: argparse.Namespace) -> None:
    _timings("install, one run: seconds from the label (in deploy order)", res.install)
    _timings(f"values change: kube-prometheus-stack retention, {len(res.values)} run(s): "
             "seconds from the apply, median [min-max]", res.values)
    _timings("chart change, one run: seconds from the apply", res.charts)
    for line in LEGEND:
        bl.note(line)
    detected, entries, upgrades, writes, objects = _idle(res)
    bl.heading("targets (idle window)")
    print(bl.table(["target", "measured", "limit", "verdict"], [
        ["drift detected (flotilla_drift_detected_total)", detected, 0,
         bl.verdict(detected, 0)],
        ["drifted objects in summaries' status.drift", entries, 0, bl.verdict(entries, 0)],
        ["helm upgrades (release revisions)", upgrades, 0, bl.verdict(upgrades, 0)],
        ["controller writes to the workload cluster (requests)", writes, 0,
         bl.verdict(writes, 0)],
        ["objects changed by flotilla/helm (managedFields)", objects, 0,
         bl.verdict(objects, 0)],
    ]))
    assert res.idle is not None
    bl.note(f"idle window {res.idle.seconds:.0f} s (--idle {args.idle:g}); background "
            f"{res.background_seconds:.0f} s with the controller stopped")
