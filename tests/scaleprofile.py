"""The scale benchmark's profile: 20 objects templated by the cluster's name, and their check.

Used by tests/e2e/test_scale.py and bench/scale.py (through bench/scalekit.py).
A policyRef names a ConfigMap annotated as a template holding 8 ConfigMaps,
4 Secrets, 4 ServiceAccounts and 4 Services whose namespace is
`{{ cluster.metadata.name }}`: a virtual cluster's identity may only write in
the namespace named after it, so the policyRef skips namespace creation.
`holdings` reads back what is deployed through each API server's admin
kubeconfig (4 lists per server rather than 4 per cluster).
"""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from typing import Any

import yaml

from engine import api, errors
from engine.adapters import kube, kubeconfig

Obj = dict[str, Any]
PROFILE = "bench-scale"
LABEL = "scale"
NS_TEMPLATE = "{{ cluster.metadata.name }}"
# (kind, how many): 20 objects per cluster.
SHAPE = (("ConfigMap", 8), ("Secret", 4), ("ServiceAccount", 4), ("Service", 4))
OBJECTS = sum(n for _, n in SHAPE)
VERSION_KEY = "bench.flotilla.dev/version"
READ_ATTEMPTS = 5


def object_names() -> dict[str, list[str]]:
    """The names the benchmark profile deploys, by kind (the same on every cluster)."""
    return {kind: [f"scale-{kind.lower()}-{i}" for i in range(n)] for kind, n in SHAPE}


def _objects(version: str) -> list[Obj]:
    """The 20 objects, with the namespace and one value templated by the cluster's name."""
    out: list[Obj] = []
    secret = base64.b64encode(f"token-{version}".encode()).decode()
    for kind, names in object_names().items():
        for name in names:
            meta = {"name": name, "namespace": NS_TEMPLATE,
                    "annotations": {VERSION_KEY: version}}
            obj: Obj = {"apiVersion": "v1", "kind": kind, "metadata": meta}
            if kind == "ConfigMap":
                obj["data"] = {"version": version, "cluster": NS_TEMPLATE}
            elif kind == "Secret":
                obj["type"] = "Opaque"
                obj["data"] = {"token": secret}
            elif kind == "Service":
                # The API server allocates a ClusterIP itself: no controller is needed.
                obj["spec"] = {"selector": {"app": name},
                               "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
            out.append(obj)
    return out


def manifests_configmap(name: str, version: str) -> Obj:
    """The policyRef's ConfigMap in flotilla-system: 20 templated manifests."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": api.SYSTEM_NAMESPACE,
                         "annotations": {api.TEMPLATE_ANNOTATION: "true"}},
            "data": {"objects.yaml": yaml.safe_dump_all(_objects(version), sort_keys=False)}}


def manifest_profile(configmap: str, name: str = PROFILE, label: str = LABEL) -> Obj:
    """The benchmark ClusterProfile: selects `label=on`, one policyRef to `configmap`."""
    return {"apiVersion": api.API_VERSION, "kind": api.CLUSTER_PROFILE,
            "metadata": {"name": name},
            "spec": {"clusterSelector": {"matchLabels": {label: "on"}},
                     "policyRefs": [{"kind": "ConfigMap", "namespace": api.SYSTEM_NAMESPACE,
                                     "name": configmap, "skipNamespaceCreation": True}]}}


async def holdings(server_kubeconfigs: list[str]) -> dict[str, Counter[str]]:
    """Per namespace, over every server: the profile's objects found, by version annotation.

    A ConfigMap whose `cluster` value is not its namespace's name (the template
    rendered for another cluster) is counted under the version "wrong-cluster".
    """
    wanted = {kind: set(names) for kind, names in object_names().items()}
    found: dict[str, Counter[str]] = {}

    async def listed(client: kube.Client, kind: str) -> list[Obj]:
        # A loaded machine may keep a server from answering in time: ask again.
        for attempt in range(READ_ATTEMPTS):
            try:
                return await client.list("v1", kind)
            except errors.RetriableError:
                if attempt == READ_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(2.0)
        return []

    async def server(path: str) -> None:
        client = kube.Client(kubeconfig.load(path), name=path)
        try:
            for kind, names in wanted.items():
                for obj in await listed(client, kind):
                    meta = obj["metadata"]
                    if meta["name"] not in names:
                        continue
                    version = (meta.get("annotations") or {}).get(VERSION_KEY, "")
                    if kind == "ConfigMap" and (obj.get("data") or {}).get(
                            "cluster") != meta["namespace"]:
                        version = "wrong-cluster"
                    found.setdefault(meta["namespace"], Counter())[version] += 1
        finally:
            await client.close()

    await asyncio.gather(*(server(p) for p in server_kubeconfigs))
    return found
