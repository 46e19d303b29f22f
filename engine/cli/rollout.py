"""`flotilla rollout status|history|pause|resume|approve|undo` against the management cluster.

Used by the command line (`rollout_command`); `status --watch` is
`engine.cli.rolloutwatch`, and `-o json|yaml` prints status (the view of
`engine.cli.views`) and history as data. Every action is an ordinary
write that plain kubectl could make too, so nothing here is magic:

    pause / resume   kubectl patch clusterprofile P --type=merge \
                         -p '{"spec":{"rollout":{"paused":true}}}'
    approve          kubectl annotate clusterprofile P flotilla.dev/approved=r<REV>:<stage>[,…]
    undo --to N      writes revision N's spec content (from its ControllerRevision) back into
                     the spec and annotates flotilla.dev/restore-revision=N, so the controller
                     deploys N's whole snapshot (ConfigMap, Secret and catalog content too)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import time
from typing import Any

from engine import api, errors, snapshot
from engine.adapters import kube
from engine.cli import mgmt, views

SECRET_SUFFIX = "-secrets"


def _ref(profile: str) -> tuple[str, str | None, str]:
    if "/" in profile:
        ns, name = profile.split("/", 1)
        return api.PROFILE, ns, name
    return api.CLUSTER_PROFILE, None, profile


async def _get(client: kube.Client, profile: str) -> dict[str, Any]:
    kind, ns, name = _ref(profile)
    body = await client.get(api.API_VERSION, kind, ns, name)
    if body is None:
        raise errors.NonRetriableError(f"{kind} {profile} not found", reason="NotFound")
    return body


async def _history(client: kube.Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    ns = body["metadata"].get("namespace") or api.SYSTEM_NAMESPACE
    revs = await client.list("apps/v1", "ControllerRevision", namespace=ns,
                             label_selector=api.profile_selector(body["kind"],
                                                                 body["metadata"]["name"]))
    return sorted(revs, key=lambda r: int(r.get("revision", 0)))


async def _summaries(client: kube.Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    selector = api.profile_selector(body["kind"], body["metadata"]["name"])
    return await client.list(api.API_VERSION, api.CLUSTER_SUMMARY, label_selector=selector)


async def _snapshot(client: kube.Client, rev: dict[str, Any]) -> snapshot.Snapshot:
    data = rev.get("data") or {}
    secret = None
    if data.get("secretRefs"):
        meta = rev["metadata"]
        found = await client.get("v1", "Secret", meta["namespace"], meta["name"] + SECRET_SUFFIX)
        secret = {k: base64.b64decode(v).decode()
                  for k, v in ((found or {}).get("data") or {}).items()}
    return snapshot.join(data, secret)


async def _history_data(client: kube.Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every revision, the clusters running it, and what changed from the one before."""
    summaries = await _summaries(client, body)
    out: list[dict[str, Any]] = []
    before: snapshot.Snapshot | None = None
    for rev in await _history(client, body):
        number = int(rev.get("revision", 0))
        on = [s["spec"]["clusterRef"]["name"] for s in summaries
              if (s.get("status") or {}).get("revision") == number]
        snap = await _snapshot(client, rev)
        changed: list[str] = []
        if before is not None:
            changed = snapshot.changes(before, snap) if before.complete and snap.complete \
                else [f"spec {p}" for p in snapshot.changes(
                    snapshot.Snapshot(spec=before.spec), snapshot.Snapshot(spec=snap.spec))]
        out.append({"revision": number, "created": rev["metadata"].get("creationTimestamp", ""),
                    "clusters": sorted(on), "changed": changed})
        before = snap
    return out


def _history_text(history: list[dict[str, Any]]) -> str:
    lines = [f"{'REVISION':>8}  {'CREATED':<21} CLUSTERS"]
    for rev in history:
        lines.append(f"{rev['revision']:>8}  {rev['created']:<21} "
                     f"{', '.join(rev['clusters']) or '-'}")
        lines.extend(f"{'':>10}changed: {c}" for c in rev["changed"][:20])
        if len(rev["changed"]) > 20:
            lines.append(f"{'':>10}… and {len(rev['changed']) - 20} more")
    return "\n".join(lines)


def _status_text(body: dict[str, Any], summaries: list[dict[str, Any]]) -> str:
    st = body.get("status") or {}
    ro = st.get("rollout") or {}
    lines = [
        f"{body['kind']} {body['metadata']['name']}: phase {st.get('phase', '-')}, "
        f"rollout {ro.get('phase', '-')}, stage {ro.get('stage', '-')}",
        f"revision {ro.get('targetRevision', st.get('revision', '-'))} "
        f"(last good {ro.get('lastGoodRevision', '-')}); "
        f"{st.get('updated', 0)}/{st.get('matched', 0)} updated, {st.get('ready', 0)} ready, "
        f"{st.get('failed', 0)} failed",
    ]
    if ro.get("message"):
        lines.append(f"message: {ro['message']}")
    for failed in ro.get("failedClusters") or []:
        lines.append(f"failed: {failed.get('cluster')}: {failed.get('reason')}")
    lines.append(f"{'CLUSTER':<24} {'CURRENT':>7} {'TARGET':>6}  {'PHASE':<13} HEALTHY")
    for s in sorted(summaries, key=lambda s: s["spec"]["clusterRef"]["name"]):
        sst = s.get("status") or {}
        lines.append(f"{s['metadata']['namespace'] + '/' + s['spec']['clusterRef']['name']:<24} "
                     f"{sst.get('revision', '-')!s:>7} {s['spec'].get('revision', '-')!s:>6}  "
                     f"{sst.get('phase', '-'):<13} {sst.get('healthy', False)}")
    return "\n".join(lines)


async def _run(args: argparse.Namespace) -> str:
    action, profile, to_revision, stage = args.action, args.profile, args.to_revision, args.stage
    output = getattr(args, "output", None)
    client = mgmt.client(args)
    try:
        body = await _get(client, profile)
        body.setdefault("kind", _ref(profile)[0])
        kind, ns, name = _ref(profile)
        if action == "status":
            summaries = await _summaries(client, body)
            if output is None:
                return _status_text(body, summaries)
            clusters = await client.list(api.API_VERSION, api.WORKLOAD_CLUSTER)
            return mgmt.emit(views.profile_view(body, summaries, clusters, now=time.time()),
                             output, "")
        if action == "history":
            history = await _history_data(client, body)
            return mgmt.emit(history, output, _history_text(history))
        if action in ("pause", "resume"):
            await client.patch(api.API_VERSION, kind, ns, name, {"spec": {"rollout": {
                "paused": action == "pause"}}})
            return f"{profile}: rollout {'paused' if action == 'pause' else 'resumed'}"
        if action == "approve":
            ro = (body.get("status") or {}).get("rollout") or {}
            target = ro.get("targetRevision") or (body.get("status") or {}).get("revision")
            wanted = stage or ro.get("stage")
            if not wanted:
                raise errors.NonRetriableError("no stage is waiting; give --stage",
                                               reason="NothingToApprove")
            given = ((body["metadata"].get("annotations") or {})
                     .get(api.APPROVED_ANNOTATION) or "").split(",")
            entry = f"r{target}:{wanted}"
            value = ",".join(sorted({g for g in given if g} | {entry}))
            await client.patch(api.API_VERSION, kind, ns, name,
                               {"metadata": {"annotations": {api.APPROVED_ANNOTATION: value}}})
            return f"{profile}: stage {wanted} approved for revision {target}"
        if action == "undo":
            revs = await _history(client, body)
            if not revs:
                raise errors.NonRetriableError("no revisions recorded yet", reason="NoHistory")
            current = (body.get("status") or {}).get("revision")
            if to_revision is None:
                older = [r for r in revs if int(r["revision"]) != current]
                if not older:
                    raise errors.NonRetriableError("no earlier revision", reason="NoHistory")
                chosen = older[-1]
            else:
                chosen = next((r for r in revs if int(r["revision"]) == to_revision), {})
                if not chosen:
                    raise errors.NonRetriableError(
                        f"revision {to_revision} is not in the history "
                        f"({', '.join(str(r['revision']) for r in revs)})", reason="NoRevision")
            spec = {k: v for k, v in (body.get("spec") or {}).items()
                    if k in snapshot.NOT_CONTENT}
            spec.update((await _snapshot(client, chosen)).spec)
            annotations = dict(body["metadata"].get("annotations") or {})
            annotations[api.RESTORE_REVISION_ANNOTATION] = str(chosen["revision"])
            replaced = {**body, "spec": spec,
                        "metadata": {**body["metadata"], "annotations": annotations}}
            resource = await client.resource(api.API_VERSION, kind)
            await client.request("PUT", resource.path(ns, name), body=replaced)
            return f"{profile}: rolling back to revision {chosen['revision']} through the stages"
        raise errors.NonRetriableError(f"unknown action {action}", reason="BadAction")
    finally:
        await client.close()


def rollout_command(args: argparse.Namespace) -> int:
    if getattr(args, "watch", False):
        if args.action != "status":
            raise errors.NonRetriableError("--watch goes with rollout status only",
                                           reason="BadFlag")
        from engine.cli import rolloutwatch  # only the watch needs its machinery

        return asyncio.run(rolloutwatch.watch(args))
    print(asyncio.run(_run(args)))
    return 0
