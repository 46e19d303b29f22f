"""`flotilla install`, `register`, `retry`: an administrator's writes to the management cluster.

Used by the command line (the `*_command` functions) and, through
`install` and `register`, by the demo, the tests and the benchmarks.
install and register are idempotent: server-side apply with our field
manager, so running one twice changes nothing the second time. retry
writes a fresh annotation each time, since each time asks for a new attempt.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from engine import api, errors
from engine.adapters import kube, kubeconfig


def _docs(folder: Path) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    return docs


async def _install(kc: str, crds: Path, catalog: Path) -> list[str]:
    client = kube.Client(kubeconfig.load(kc), name="management")
    out = []
    try:
        for crd in _docs(crds):
            await client.apply(crd)
            out.append(f"customresourcedefinition/{crd['metadata']['name']} applied")
        deadline = time.monotonic() + 60
        for crd in _docs(crds):
            while True:
                live = await client.get("apiextensions.k8s.io/v1", "CustomResourceDefinition",
                                        None, crd["metadata"]["name"])
                conds = {c["type"]: c["status"] for c in (live or {}).get("status", {}).get(
                    "conditions", [])}
                if conds.get("Established") == "True":
                    break
                if time.monotonic() > deadline:
                    raise errors.RetriableError(f"CRD {crd['metadata']['name']} not established")
                await asyncio.sleep(0.2)
        await client.apply({"apiVersion": "v1", "kind": "Namespace",
                            "metadata": {"name": api.SYSTEM_NAMESPACE}})
        for entry in _docs(catalog):
            out.append(await _apply_entry(client, entry))
    finally:
        await client.close()
    return out


async def _apply_entry(client: kube.Client, entry: dict[str, Any]) -> str:
    """Apply a catalog entry; replace it when the stored one predates the schema.

    Server-side apply builds a typed copy of the live object first, so an entry
    stored under an older schema (a field whose type changed in v1alpha1, e.g.
    evaluateCEL from a string to a list) makes every apply fail with a 500. A
    replace validates only the new content; the next install applies as usual.
    """
    name = entry["metadata"]["name"]
    try:
        await client.apply(entry)
        return f"catalogservice/{name} applied"
    except kube.ApiError as exc:
        if exc.status != 500 or "typed live object" not in exc.message:
            raise
    res = await client.resource(entry["apiVersion"], entry["kind"])
    live = await client.get(entry["apiVersion"], entry["kind"], None, name)
    if live is None:
        await client.apply(entry)
        return f"catalogservice/{name} applied"
    body = {**entry, "metadata": {**entry["metadata"],
                                  "resourceVersion": live["metadata"]["resourceVersion"]}}
    await client.request("PUT", res.path(None, name), body=body,
                         params={"fieldManager": kube.FIELD_MANAGER})
    return f"catalogservice/{name} replaced (stored under an older schema)"


def install(kc: str, *, crds: Path, catalog: Path) -> list[str]:
    return asyncio.run(_install(kc, crds, catalog))


async def _register(kc: str, namespace: str, name: str, cluster_kc: str,
                    labels: Mapping[str, str]) -> str:
    text = Path(cluster_kc).read_text()
    kubeconfig.parse(text)  # refuse an unusable kubeconfig before storing it
    client = kube.Client(kubeconfig.load(kc), name="management")
    try:
        await client.apply({"apiVersion": "v1", "kind": "Namespace",
                            "metadata": {"name": namespace}})
        secret = f"{name}-kubeconfig"
        await client.apply({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": secret, "namespace": namespace,
                         "labels": {api.CLUSTER_NAME_LABEL: name}},
            "data": {"kubeconfig": base64.b64encode(text.encode()).decode()}})
        await client.apply({
            "apiVersion": api.API_VERSION, "kind": api.WORKLOAD_CLUSTER,
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
            "spec": {"kubeconfigSecretRef": {"name": secret, "key": "kubeconfig"}}},
            field_manager="flotilla-register")
    finally:
        await client.close()
    return f"workloadcluster/{name} registered in namespace {namespace}"


def register(kc: str, *, namespace: str, name: str, cluster_kubeconfig: str,
             labels: Mapping[str, str]) -> str:
    return asyncio.run(_register(kc, namespace, name, cluster_kubeconfig, labels))


def retry(kc: str, profile: str, *, cluster: str | None = None) -> list[str]:
    """Ask for a new attempt of a profile's failed deployments (all clusters, or one).

    The same write kubectl could make: a fresh `flotilla.dev/retry` annotation on the
    ClusterSummaries, which restarts their failure counts, FailedNonRetriable included.
    """
    return asyncio.run(_retry(kc, profile, cluster))


async def _retry(kc: str, profile: str, cluster: str | None) -> list[str]:
    kind, name = (api.PROFILE, profile.split("/", 1)[1]) if "/" in profile else (
        api.CLUSTER_PROFILE, profile)
    selector = api.profile_selector(kind, name)
    if cluster:
        selector += f",{api.CLUSTER_NAME_LABEL}={cluster}"
    token = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    client = kube.Client(kubeconfig.load(kc), name="management")
    try:
        found = await client.list(api.API_VERSION, api.CLUSTER_SUMMARY, label_selector=selector)
        if not found:
            raise errors.NonRetriableError(
                f"no ClusterSummary of {kind} {profile}" + (f" on {cluster}" if cluster else ""),
                reason="NotFound")
        out = []
        for summary in found:
            meta = summary["metadata"]
            await client.patch(api.API_VERSION, api.CLUSTER_SUMMARY, meta["namespace"],
                               meta["name"],
                               {"metadata": {"annotations": {api.RETRY_ANNOTATION: token}}})
            out.append(f"clustersummary/{meta['name']} -n {meta['namespace']}: retry requested")
        return out
    finally:
        await client.close()


def install_command(args: argparse.Namespace) -> int:
    for line in install(args.kubeconfig, crds=Path(args.crds), catalog=Path(args.catalog)):
        print(line)
    return 0


def register_command(args: argparse.Namespace) -> int:
    labels = dict(item.split("=", 1) for item in args.label)
    print(register(args.kubeconfig, namespace=args.namespace, name=args.name,
                   cluster_kubeconfig=args.cluster_kubeconfig, labels=labels))
    return 0


def retry_command(args: argparse.Namespace) -> int:
    for line in retry(args.kubeconfig, args.profile, cluster=args.cluster):
        print(line)
    return 0
