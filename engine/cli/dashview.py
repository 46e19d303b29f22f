"""What `flotilla dashboard` shows, as plain data and as HTML: pure, no I/O.

Used by `engine.cli.dashboard`, which keeps copies of the management API's
lists current and calls `fleet_view` then `render` whenever one changes.
`fleet_view` turns profiles, ClusterSummaries, WorkloadClusters and Events
(the dicts the API returns) into: a profiles x clusters matrix (each cell the
summary's phase, health, drift and revision; empty where the profile does not
select the cluster), each profile's rollout stages with progress (the same
`views.profile_view` the `rollout status` command draws), drift entries with
their field paths, cluster facts (GPUs by product) and the most recent
Events. `render` makes the HTML fragment the page shows and the server pushes
on every change; every value from the API is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from engine import errors
from engine.cli import views

RECENT_EVENTS = 15


def _key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name', '')}"


def _profile_of(summary: Mapping[str, Any]) -> str:
    ref = (summary.get("spec") or {}).get("profileRef") or {}
    return f"{ref['namespace']}/{ref.get('name', '')}" if ref.get("namespace") \
        else str(ref.get("name", ""))


def _cluster_of(summary: Mapping[str, Any]) -> str:
    ref = (summary.get("spec") or {}).get("clusterRef") or {}
    return f"{ref.get('namespace', '')}/{ref.get('name', '')}"


def cell_class(phase: str, healthy: bool, drifted: bool) -> str:
    """The colour of a matrix cell: ok, drift, progress, failed or pending."""
    if phase == "Failed":
        return "failed"
    if drifted:
        return "drift"
    if phase == "Provisioned" and healthy:
        return "ok"
    if phase in ("Provisioning", "Provisioned", "Removing"):
        return "progress"
    return "pending"


def cluster_row(cluster: Mapping[str, Any]) -> dict[str, Any]:
    st = cluster.get("status") or {}
    facts = st.get("facts") or {}
    return {"cluster": _key(cluster), "ready": bool(st.get("ready")),
            "connection": (st.get("connection") or {}).get("state", "Unknown"),
            "version": st.get("version", ""), "nodes": int(facts.get("nodes") or 0),
            "gpus": dict(sorted((facts.get("gpus") or {}).items())),
            "gpuTotal": int(facts.get("gpuTotal") or 0),
            "labels": dict(sorted(((cluster.get("metadata") or {}).get("labels") or {}).items()))}


def _object(entry: Mapping[str, Any]) -> str:
    where = "/".join(p for p in (entry.get("namespace"), entry.get("name")) if p)
    return f"{entry.get('kind', '')} {where}".strip()


def _event_row(event: Mapping[str, Any]) -> dict[str, Any]:
    obj = event.get("involvedObject") or event.get("regarding") or {}
    when = event.get("lastTimestamp") or event.get("eventTime") or \
        (event.get("metadata") or {}).get("creationTimestamp") or ""
    return {"time": str(when), "type": event.get("type", ""), "reason": event.get("reason", ""),
            "object": _object(obj),
            "message": event.get("message") or event.get("note") or "",
            "count": int(event.get("count") or 1)}


def fleet_view(profiles: Sequence[Mapping[str, Any]], summaries: Sequence[Mapping[str, Any]],
               clusters: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]],
               *, now: float) -> dict[str, Any]:
    """The whole page as plain data (what /api/fleet returns)."""
    cluster_rows = sorted((cluster_row(c) for c in clusters), key=lambda r: r["cluster"])
    columns = [r["cluster"] for r in cluster_rows]
    ordered = sorted(profiles, key=lambda p: (p.get("kind", ""), views.ref_of(p)))
    matrix, rollouts, drift = [], [], []
    for profile in ordered:
        name = views.ref_of(profile)
        mine = [s for s in summaries if _profile_of(s) == name
                and ((s.get("spec") or {}).get("profileRef") or {}).get("kind") ==
                profile.get("kind")]
        cells: dict[str, dict[str, Any]] = {}
        for summary in mine:
            st = summary.get("status") or {}
            entries = st.get("drift") or []
            phase = str(st.get("phase") or "Pending")
            cells[_cluster_of(summary)] = {
                "phase": phase, "healthy": bool(st.get("healthy")),
                "revision": st.get("revision"), "drifted": len(entries),
                "class": cell_class(phase, bool(st.get("healthy")), bool(entries))}
            for entry in entries:
                drift.append({"profile": name, "cluster": _cluster_of(summary),
                              "object": _object(entry),
                              "paths": list(entry.get("paths") or []),
                              "detectedAt": entry.get("detectedAt", "")})
        matrix.append({"profile": name, "kind": profile.get("kind", ""),
                       "phase": (profile.get("status") or {}).get("phase", "Pending"),
                       "cells": [cells.get(c) for c in columns]})
        try:
            rollouts.append(views.profile_view(profile, mine, clusters, now=now))
        except (errors.FlotillaError, ValueError, KeyError, TypeError) as exc:
            # One profile the controller would refuse must not blank the whole page.
            rollouts.append({"kind": profile.get("kind", ""), "name": name, "phase": "Invalid",
                             "revision": 0, "stages": [],
                             "rollout": {"phase": "Invalid", "message": str(exc)}})
    recent = sorted((_event_row(e) for e in events), key=lambda r: r["time"], reverse=True)
    return {"columns": columns, "matrix": matrix, "rollouts": rollouts, "drift": drift,
            "clusters": cluster_rows, "events": recent[:RECENT_EVENTS]}


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _matrix(view: Mapping[str, Any]) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in view["columns"])
    rows = []
    for row in view["matrix"]:
        cells = []
        for column, cell in zip(view["columns"], row["cells"], strict=True):
            if cell is None:
                cells.append(f'<td class="none" data-cluster="{_e(column)}">·</td>')
                continue
            label = cell["phase"] + (f" r{cell['revision']}" if cell["revision"] else "")
            if cell["drifted"]:
                label += f" · {cell['drifted']} drifted"
            cells.append(f'<td class="{_e(cell["class"])}" data-cluster="{_e(column)}" '
                         f'data-phase="{_e(cell["phase"])}">{_e(label)}</td>')
        rows.append(f'<tr data-profile="{_e(row["profile"])}"><th>{_e(row["profile"])}'
                    f'<small>{_e(row["kind"])} · {_e(row["phase"])}</small></th>'
                    f'{"".join(cells)}</tr>')
    if not rows:
        return "<p class=muted>No profiles yet.</p>"
    return f'<table id="matrix"><tr><th>profile \\ cluster</th>{head}</tr>{"".join(rows)}</table>'


def _rollouts(view: Mapping[str, Any]) -> str:
    out = []
    for ro in view["rollouts"]:
        phase = ro["rollout"].get("phase") or ro["phase"]
        stages = []
        for stage in ro["stages"]:
            total = max(stage["total"], 1)
            bars = "".join(
                f'<span class="{cls}" style="width:{100 * stage[name] / total:.1f}%"></span>'
                for name, cls in (("done", "ok"), ("soaking", "soak"),
                                  ("in flight", "progress"), ("failed", "failed"))
                if stage[name])
            stages.append(f'<div class="stage"><b>{_e(stage["name"])}</b>'
                          f'<div class="bar">{bars}</div>'
                          f'<span>{_e(views.progress_text(stage))}</span></div>')
        message = f" — {_e(ro['rollout']['message'])}" if ro["rollout"].get("message") else ""
        out.append(f'<div class="rollout"><h3>{_e(ro["name"])} <small>revision '
                   f'{_e(ro["revision"])}: {_e(phase)}{message}</small></h3>'
                   f'{"".join(stages) or "<p class=muted>no cluster selected</p>"}</div>')
    return "".join(out) or "<p class=muted>No rollouts.</p>"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], empty: str) -> str:
    if not rows:
        return f"<p class=muted>{_e(empty)}</p>"
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render(view: Mapping[str, Any]) -> str:
    """The page's live part: matrix, rollouts, drift, clusters, Events (escaped HTML)."""
    drift = _table(["profile", "cluster", "object", "field paths", "since"], [
        [_e(d["profile"]), _e(d["cluster"]), _e(d["object"]),
         "<code>" + "</code> <code>".join(_e(p) for p in d["paths"]) + "</code>",
         _e(d["detectedAt"])] for d in view["drift"]], "No drift.")
    clusters = _table(["cluster", "ready", "version", "nodes", "GPUs", "labels"], [
        [_e(c["cluster"]), "yes" if c["ready"] else _e(c["connection"]), _e(c["version"]),
         _e(c["nodes"]),
         _e(", ".join(f"{n} x {p}" for p, n in c["gpus"].items()) or "none"),
         _e(", ".join(f"{k}={v}" for k, v in c["labels"].items()))]
        for c in view["clusters"]], "No clusters registered.")
    events = _table(["time", "type", "reason", "object", "message"], [
        [_e(ev["time"]), f'<span class="{_e(ev["type"].lower())}">{_e(ev["type"])}</span>',
         _e(ev["reason"]), _e(ev["object"]),
         _e(ev["message"]) + (f" (x{ev['count']})" if ev["count"] > 1 else "")]
        for ev in view["events"]], "No recent Events.")
    return (f"<section><h2>Profiles &times; clusters</h2>{_matrix(view)}</section>"
            f"<section><h2>Rollouts</h2>{_rollouts(view)}</section>"
            f"<section><h2>Drift</h2>{drift}</section>"
            f"<section><h2>Clusters</h2>{clusters}</section>"
            f"<section><h2>Recent Events</h2>{events}</section>")


_STYLE = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .5em}
h3{font-size:1em;margin:.6em 0 .3em}small{color:#666;font-weight:normal;margin-left:.4em}
table{border-collapse:collapse;background:#fff}th,td{border:1px solid #ddd;padding:.3em .6em;
text-align:left;vertical-align:top}th small{display:block;margin:0}
td.ok{background:#c8ecc9}td.progress{background:#fff1b8}td.drift{background:#ffd8a8}
td.failed{background:#ffc9c9}td.pending{background:#e9ecef}td.none{color:#bbb;text-align:center}
.bar{display:inline-flex;width:16em;height:.9em;background:#e9ecef;margin:0 .6em;
vertical-align:middle}.bar span{display:block;height:100%}.bar .ok{background:#40c057}
.bar .soak{background:#74c0fc}.bar .progress{background:#fab005}.bar .failed{background:#fa5252}
.stage{margin:.2em 0}.stage b{display:inline-block;min-width:6em}.muted{color:#888}
.warning{color:#c92a2a;font-weight:bold}code{background:#f1f3f5;padding:0 .2em}
#live{font-size:.85em;color:#888}
"""

# Replaces the live part with each fragment the server pushes; EventSource reconnects itself.
_SCRIPT = """
const live = document.getElementById('live');
const source = new EventSource('stream');
source.onmessage = (e) => {
  document.getElementById('fleet').innerHTML = JSON.parse(e.data);
  live.textContent = 'live · updated ' + new Date().toLocaleTimeString();
};
source.onerror = () => { live.textContent = 'reconnecting…'; };
"""


def page(fragment: str) -> str:
    """The whole page: the live part as it is now, and the script that keeps it current."""
    return (f"<!doctype html><html><head><meta charset=utf-8><title>Flotilla fleet</title>"
            f"<style>{_STYLE}</style></head><body><h1>Flotilla fleet</h1>"
            f'<div id="live">read-only · connecting…</div><main id="fleet">{fragment}</main>'
            f"<script>{_SCRIPT}</script></body></html>")
