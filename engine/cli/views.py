"""What the read commands show, as plain data and as text: status trees, stage progress, why.

Used by `flotilla status`, `rollout status [--watch]` and `why`. Pure: objects
come in as the dicts the API returns, views go out as plain data (what `-o
json|yaml` prints) and text (what a person reads). Stages and standings are
the rollout planner's own rules (`engine.rollout.decide`), applied to what
the profile and its ClusterSummaries record, so a stage shows here exactly
as the controller counts it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine import select
from engine.controller import rollout_step
from engine.model import types
from engine.rollout import bodies, decide, policy

# Standings as a person reads them.
STANDING = {policy.Standing.WAITING: "waiting", policy.Standing.IN_FLIGHT: "in flight",
            policy.Standing.SOAKING: "soaking", policy.Standing.DONE: "done",
            policy.Standing.FAILED: "failed"}
COUNTED = ("done", "soaking", "in flight", "failed", "waiting")


def ref_of(profile: Mapping[str, Any]) -> str:
    meta = profile.get("metadata") or {}
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else str(meta["name"])


def _service(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": row.get("name", ""), "kind": row.get("kind", ""),
            "status": row.get("status", ""), "version": row.get("version", ""),
            "healthy": bool(row.get("healthy")), "message": row.get("message", "")}


def profile_view(profile: Mapping[str, Any], summaries: Sequence[Mapping[str, Any]],
                 clusters: Sequence[Mapping[str, Any]], *, now: float) -> dict[str, Any]:
    """A profile → its stages → their clusters → each cluster's services, as plain data."""
    st = profile.get("status") or {}
    ro = st.get("rollout") or {}
    spec = types.ProfileSpec.from_dict(profile.get("spec") or {})
    rules = rollout_step.policy_of(spec)
    revision = int(ro.get("targetRevision") or st.get("revision") or 0)
    failed_at = {f["cluster"]: int(f["revision"]) for f in ro.get("failedClusters") or []
                 if f.get("revision") is not None}
    by_key = {f"{(c.get('metadata') or {}).get('namespace', '')}/"
              f"{(c.get('metadata') or {}).get('name', '')}": c for c in clusters}
    rows: dict[str, Mapping[str, Any]] = {}
    states = []
    for summary in summaries:
        if (summary.get("metadata") or {}).get("deletionTimestamp"):
            continue
        key = _key(summary)
        state = bodies.cluster_state(key, summary, by_key.get(key, {}), failed_at.get(key))
        rows[state.key] = summary
        states.append(state)
    stages = []
    for stage, members in decide.split_stages(rules, states):
        soak = stage.min_success_time if stage.min_success_time is not None \
            else rules.min_success_time
        entries = []
        for member in members:
            standing, why = decide.standing_of(member, revision=revision, now=now,
                                               min_success_time=soak,
                                               progress_deadline=rules.progress_deadline)
            sst = rows[member.key].get("status") or {}
            entries.append({
                "cluster": member.key, "standing": STANDING[standing],
                "phase": sst.get("phase", "Pending"), "healthy": bool(sst.get("healthy")),
                "drift": [_drift(d) for d in sst.get("drift") or []],
                "revision": sst.get("revision"), "targetRevision": member.assigned,
                **({"reason": why} if why else {}),
                **({"message": sst["message"]} if sst.get("message") else {}),
                "services": [_service(r) for r in sst.get("services") or []]})
        counts = {name: sum(1 for e in entries if e["standing"] == name) for name in COUNTED}
        stages.append({"name": stage.name, "total": len(entries), **counts,
                       "clusters": entries})
    return {"kind": profile.get("kind", ""), "name": ref_of(profile),
            "phase": st.get("phase", "Pending"), "revision": revision,
            "rollout": {"phase": ro.get("phase", ""), "stage": ro.get("stage", ""),
                        "message": ro.get("message", ""),
                        "lastGoodRevision": ro.get("lastGoodRevision")},
            "matched": st.get("matched", 0), "ready": st.get("ready", 0),
            "drifted": st.get("drifted", 0), "failed": st.get("failed", 0),
            "stages": stages}


def _drift(entry: Mapping[str, Any]) -> str:
    """`Kind namespace/name /field/path, …` (no namespace for cluster-scoped objects)."""
    where = "/".join(p for p in (entry.get("namespace"), entry.get("name")) if p)
    paths = ", ".join(entry.get("paths") or [])
    return f"{entry.get('kind', '')} {where}" + (f" {paths}" if paths else "")


def _key(summary: Mapping[str, Any]) -> str:
    ref = (summary.get("spec") or {}).get("clusterRef") or {}
    return f"{ref.get('namespace', '')}/{ref.get('name', '')}"


def _branch(lines: list[str], prefix: str, last: bool, text: str) -> str:
    lines.append(f"{prefix}{'└─ ' if last else '├─ '}{text}")
    return prefix + ("   " if last else "│  ")


def render_tree(views: Sequence[Mapping[str, Any]]) -> str:
    """Profiles as a tree: profile → stage → cluster → service."""
    lines: list[str] = []
    for view in views:
        ro = view["rollout"]
        rollout = f", rollout {ro['phase']}" if ro.get("phase") else ""
        lines.append(f"{view['kind']} {view['name']}  {view['phase']}  revision "
                     f"{view['revision']}{rollout}  ({view['ready']}/{view['matched']} ready, "
                     f"{view['drifted']} drifted, {view['failed']} failed)")
        if ro.get("message"):
            lines.append(f"  {ro['message']}")
        if not any(stage["clusters"] for stage in view["stages"]):
            lines.append("└─ no cluster selected")
        for i, stage in enumerate(view["stages"]):
            inner = _branch(lines, "", i == len(view["stages"]) - 1,
                            f"stage {stage['name']}  {progress_text(stage)}")
            for j, entry in enumerate(stage["clusters"]):
                health = "healthy" if entry["healthy"] else "unhealthy"
                drift = f"drift {len(entry['drift'])}" if entry["drift"] else "in sync"
                rev = f"r{entry['revision'] or '-'}"
                if entry["targetRevision"] not in (None, entry["revision"]):
                    rev += f"→r{entry['targetRevision']}"
                reason = f" ({entry['reason']})" if entry.get("reason") else ""
                leaf = _branch(lines, inner, j == len(stage["clusters"]) - 1,
                               f"{entry['cluster']}  {entry['phase']}  {health}  {drift}  "
                               f"{rev}  {entry['standing']}{reason}")
                items = [("drift", d) for d in entry["drift"]] + \
                    [("service", s) for s in entry["services"]]
                for k, (what, item) in enumerate(items):
                    last = k == len(items) - 1
                    if what == "drift":
                        _branch(lines, leaf, last, f"drift: {item}")
                        continue
                    version = f" {item['version']}" if item["version"] else ""
                    note = "" if item["status"] == "Provisioned" or not item["message"] \
                        else f"  {item['message']}"
                    _branch(lines, leaf, last,
                            f"{item['name']}  {item['kind']}{version}  {item['status']}  "
                            f"{'healthy' if item['healthy'] else 'unhealthy'}{note}")
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def progress_text(stage: Mapping[str, Any]) -> str:
    """`2/4 done, 1 soaking, 1 in flight` — only the counts that are not zero after done."""
    parts = [f"{stage['done']}/{stage['total']} done"]
    parts += [f"{stage[name]} {name}" for name in COUNTED[1:] if stage[name]]
    return ", ".join(parts)


def progress_bar(stage: Mapping[str, Any], width: int = 24) -> str:
    """A bar for a terminal: █ done, ▓ soaking, ▒ in flight, ✗ failed, ░ waiting."""
    total = max(stage["total"], 1)
    cells = ""
    for name, mark in (("done", "█"), ("soaking", "▓"), ("in flight", "▒"), ("failed", "✗")):
        cells += mark * round(width * stage[name] / total)
    cells = cells[:width]
    return f"[{cells}{'░' * (width - len(cells))}]"


def render_progress(view: Mapping[str, Any], *, terminal: bool) -> list[str]:
    """One line per stage (a bar on a terminal), headed by the rollout's phase."""
    ro = view["rollout"]
    head = f"{view['kind']} {view['name']} revision {view['revision']}: " \
           f"{ro.get('phase') or view['phase']}"
    if ro.get("message"):
        head += f" — {ro['message']}"
    width = max([len(s["name"]) for s in view["stages"]] + [5])
    lines = [head]
    for stage in view["stages"]:
        if terminal:
            lines.append(f"  {stage['name']:<{width}} {progress_bar(stage)} "
                         f"{progress_text(stage)}")
        else:
            lines.append(f"  {stage['name']}: {progress_text(stage)}")
    return lines


def why_view(cluster: Mapping[str, Any],
             verdicts: Sequence[tuple[Mapping[str, Any], select.Explanation | str]]
             ) -> dict[str, Any]:
    """The cluster, its labels, and for every profile: selected or not, and each check."""
    meta = cluster.get("metadata") or {}
    profiles = []
    for profile, verdict in verdicts:
        entry: dict[str, Any] = {"kind": profile.get("kind", ""), "name": ref_of(profile)}
        if isinstance(verdict, str):
            entry.update(selected=False, error=verdict, checks=[])
        else:
            entry.update(selected=verdict.selected, reason=verdict.reason,
                         checks=[{"field": c.field, "holds": c.holds, "detail": c.detail}
                                 for c in verdict.checks])
        profiles.append(entry)
    return {"cluster": f"{meta.get('namespace', '')}/{meta.get('name', '')}",
            "labels": dict(meta.get("labels") or {}), "profiles": profiles}


def render_why(view: Mapping[str, Any]) -> str:
    labels = ", ".join(f"{k}={v}" for k, v in sorted(view["labels"].items())) or "none"
    lines = [f"WorkloadCluster {view['cluster']} (labels: {labels})"]
    for title, wanted in (("selected by", True), ("not selected by", False)):
        chosen = [p for p in view["profiles"] if p["selected"] is wanted]
        lines.append(f"\n{title}:" if chosen else f"\n{title}: none")
        for p in chosen:
            reason = f" ({p['reason']})" if p.get("reason") else ""
            lines.append(f"  {p['kind']} {p['name']}{reason}")
            if p.get("error"):
                lines.append(f"    ✗ {p['error']}")
            for check in p["checks"]:
                lines.append(f"    {'✓' if check['holds'] else '✗'} {check['field']}: "
                             f"{check['detail']}")
    return "\n".join(lines)
