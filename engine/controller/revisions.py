"""Numbered revisions of a profile's deployable content, kept as ControllerRevisions.

Used by the profile reconciler (which revision is the target), the summary
reconciler (deploy exactly the revision it was assigned, not whatever the
profile says now) and `flotilla rollout history|undo`. A revision is the
part of a profile spec that decides *what* gets deployed; selection and
rollout controls are left out, so relabelling or pausing never makes a new
revision. Identical content reuses its number, which is how `undo` works:
it writes revision N's content back into the profile. History is bounded.
"""

from __future__ import annotations

from typing import Any

from engine import render
from engine.controller import context

# Fields that choose clusters or steer the rollout; everything else is content.
NOT_CONTENT = ("clusterSelector", "clusterRefs", "clusterSelectorCEL", "rollout", "maxUpdate",
               "stopMatchingBehavior")
KEEP = 10
LABEL_KIND = "flotilla.dev/profile-kind"
LABEL_NAME = "flotilla.dev/profile-name"


def content_of(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sorted(spec.items()) if k not in NOT_CONTENT}


def content_hash(spec: dict[str, Any]) -> str:
    return str(render.stable_hash(content_of(spec)))


def namespace_for(profile: dict[str, Any]) -> str:
    return str(profile["metadata"].get("namespace") or "flotilla-system")


def _prefix(profile: dict[str, Any]) -> str:
    prefix = "cp-" if profile["kind"] == "ClusterProfile" else "p-"
    return prefix + str(profile["metadata"]["name"])


def history(ctx: context.Context, profile: dict[str, Any]) -> list[dict[str, Any]]:
    """This profile's ControllerRevisions, oldest first."""
    ns, kind, name = namespace_for(profile), profile["kind"], profile["metadata"]["name"]
    found = [r for r in ctx.store.all("ControllerRevision", ns)
             if (r["metadata"].get("labels") or {}).get(LABEL_KIND) == kind
             and r["metadata"]["labels"].get(LABEL_NAME) == name]
    return sorted(found, key=lambda r: int(r.get("revision", 0)))


def find(ctx: context.Context, profile: dict[str, Any], number: int) -> dict[str, Any] | None:
    for rev in history(ctx, profile):
        if int(rev.get("revision", 0)) == number:
            data: dict[str, Any] = rev.get("data") or {}
            return data
    return None


async def ensure(ctx: context.Context, profile: dict[str, Any], *, in_use: set[int]) -> int:
    """The revision number of the profile's current content, recording it when new."""
    spec = profile.get("spec") or {}
    digest = content_hash(spec)
    for attempt in ("cache", "api"):
        revs = history(ctx, profile)
        for rev in revs:
            if (rev["metadata"].get("annotations") or {}).get("flotilla.dev/hash") == digest:
                return int(rev["revision"])
        if attempt == "cache":
            # New content, or a cache still filling after a restart: ask the API before
            # numbering a revision (ControllerRevisions are immutable).
            for rev in await ctx.mgmt.list("apps/v1", "ControllerRevision",
                                           namespace=namespace_for(profile),
                                           label_selector=f"{LABEL_NAME}={profile['metadata']['name']}"):
                ctx.store.put("ControllerRevision", rev)
    number = max([int(r.get("revision", 0)) for r in revs] + [0]) + 1
    meta = profile["metadata"]
    body = {
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": f"{_prefix(profile)}-r{number}", "namespace": namespace_for(profile),
                     "labels": {LABEL_KIND: profile["kind"], LABEL_NAME: meta["name"]},
                     "annotations": {"flotilla.dev/hash": digest}},
        "revision": number,
        "data": content_of(spec),
    }
    created = await ctx.mgmt.apply(body)
    ctx.store.put("ControllerRevision", created)  # visible before the watch event arrives
    await _prune(ctx, revs, keep=in_use | {number})
    return number


async def _prune(ctx: context.Context, revs: list[dict[str, Any]], keep: set[int]) -> None:
    """Keep the newest KEEP revisions and any revision a cluster still runs."""
    excess = len(revs) + 1 - KEEP
    for rev in revs:
        if excess <= 0:
            break
        if int(rev.get("revision", 0)) in keep:
            continue
        meta = rev["metadata"]
        await ctx.mgmt.delete("apps/v1", "ControllerRevision", meta["namespace"], meta["name"])
        ctx.store.drop("ControllerRevision", meta["namespace"], meta["name"])
        excess -= 1


def spec_at(profile: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
    """The profile spec with its content replaced by a recorded revision's."""
    spec = {k: v for k, v in (profile.get("spec") or {}).items() if k in NOT_CONTENT}
    spec.update(content)
    return spec
