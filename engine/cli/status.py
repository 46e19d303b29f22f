"""`flotilla status [PROFILE]` and `flotilla why CLUSTER`: the fleet as profiles see it.

Used by the command line (`status_command`, `why_command`), also as
`kubectl flotilla status|why`. Reads only: profiles, their ClusterSummaries
and the WorkloadClusters from the management cluster, turned into views by
`engine.cli.views` (status: profile → stage → cluster → service; why: each
profile's selection checks from `engine.select.explain`).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from engine import api, errors, select
from engine.cli import mgmt, views
from engine.model import types


async def profiles(client: Any, ref: str | None) -> list[dict[str, Any]]:
    """One profile (NAME, or NAMESPACE/NAME for a Profile), or every profile of both kinds."""
    if ref is None:
        found = await client.list(api.API_VERSION, api.CLUSTER_PROFILE)
        found += await client.list(api.API_VERSION, api.PROFILE)
        return sorted(found, key=lambda p: (p["kind"] != api.CLUSTER_PROFILE, views.ref_of(p)))
    kind, ns, name = (api.PROFILE, *ref.split("/", 1)) if "/" in ref else (
        api.CLUSTER_PROFILE, None, ref)
    body = await client.get(api.API_VERSION, kind, ns, name)
    if body is None:
        raise errors.NonRetriableError(f"{kind} {ref} not found", reason="NotFound")
    body.setdefault("kind", kind)
    return [body]


def summaries_of(profile: dict[str, Any], summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    meta = profile["metadata"]
    return [s for s in summaries
            if (ref := (s.get("spec") or {}).get("profileRef") or {}).get("kind") == profile["kind"]
            and ref.get("name") == meta["name"]
            and (ref.get("namespace") or "") == (meta.get("namespace") or "")]


async def status_views(args: argparse.Namespace) -> list[dict[str, Any]]:
    client = mgmt.client(args)
    try:
        chosen = await profiles(client, args.profile)
        summaries = await client.list(api.API_VERSION, api.CLUSTER_SUMMARY)
        clusters = await client.list(api.API_VERSION, api.WORKLOAD_CLUSTER)
    finally:
        await client.close()
    now = time.time()
    return [views.profile_view(p, summaries_of(p, summaries), clusters, now=now)
            for p in chosen]


def status_command(args: argparse.Namespace) -> int:
    found = asyncio.run(status_views(args))
    human = views.render_tree(found) if found else "no ClusterProfile or Profile found"
    print(mgmt.emit(found if args.profile is None else found[0], args.output, human))
    return 0


async def why_view(args: argparse.Namespace) -> dict[str, Any]:
    ns, name = args.cluster.split("/", 1) if "/" in args.cluster else (args.namespace,
                                                                        args.cluster)
    client = mgmt.client(args)
    try:
        clusters = await client.list(api.API_VERSION, api.WORKLOAD_CLUSTER, namespace=ns)
        chosen = await profiles(client, None)
    finally:
        await client.close()
    matching = [c for c in clusters if c["metadata"]["name"] == name]
    if not matching:
        raise errors.NonRetriableError(f"WorkloadCluster {name} not found"
                                       + (f" in namespace {ns}" if ns else ""),
                                       reason="NotFound")
    if len(matching) > 1:
        raise errors.NonRetriableError(
            f"WorkloadCluster {name} is in several namespaces ("
            f"{', '.join(sorted(c['metadata']['namespace'] for c in matching))}): "
            "give NAMESPACE/NAME or -n", reason="Ambiguous")
    cluster = matching[0]
    verdicts: list[tuple[dict[str, Any], select.Explanation | str]] = []
    for profile in chosen:
        try:
            spec = types.ProfileSpec.from_dict(profile.get("spec") or {})
            scope = profile["metadata"].get("namespace") if profile["kind"] == api.PROFILE \
                else None
            verdicts.append((profile, select.explain(spec, cluster, namespace=scope)))
        except errors.SpecError as exc:
            verdicts.append((profile, str(exc)))
    return views.why_view(cluster, verdicts)


def why_command(args: argparse.Namespace) -> int:
    view = asyncio.run(why_view(args))
    print(mgmt.emit(view, args.output, views.render_why(view)))
    return 0
