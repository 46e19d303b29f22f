"""Many WorkloadClusters per API server: one namespace, ServiceAccount and kubeconfig each.

Used by `flotilla dev-fleet register-virtual`, bench/fleet_lean.py, the scale
benchmarks and tests/e2e/test_lean_fleet.py. A thousand real API servers do
not fit on one machine; a thousand *tenants* of a hundred servers do, and
they are honest clusters from the controller's side: each "virtual cluster"
is a namespace on a workload API server with its own ServiceAccount, a Role
and RoleBinding giving it every right in that namespace and none outside it
(plus `get` on its own Namespace object, through a ClusterRole naming only
that namespace), a year-long token from the TokenRequest API, and a
kubeconfig whose context defaults to that namespace. It is registered on the
management cluster exactly as `flotilla register` does (a kubeconfig Secret
and a WorkloadCluster with the caller's labels). Nothing tells the controller
which server a virtual cluster lives on: no label, no annotation, only the
URL inside its kubeconfig. Benchmarks must say in their output that the
clusters share servers (`describe`).

Kubeconfigs are written 0600 to `<fleet>/virtual/<name>.kubeconfig` and
listed, without tokens, in `<fleet>/virtual.json`. Writes go through the
engine's async client, many virtual clusters at once (`concurrency`), so a
thousand registrations take seconds, not the minutes of kubectl per object.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from engine import api
from engine.adapters import kube, kubeconfig
from engine.devfleet.fleet import Cluster, Fleet, FleetError

STATE_FILE = "virtual.json"
FLEET_NAMESPACE = "fleet"  # where the tests and benchmarks register clusters
SERVICE_ACCOUNT = "flotilla"
TOKEN_SECONDS = 365 * 24 * 3600
CONCURRENCY = 48
ATTEMPTS = 3  # per step, when the server does not answer (an overloaded machine)
_RBAC = "rbac.authorization.k8s.io/v1"
R = TypeVar("R")


@dataclass(frozen=True)
class VirtualCluster:
    """One registered virtual cluster. No secret here: the token is in the kubeconfig file."""

    name: str            # the WorkloadCluster's name, and its namespace on the server
    server: str          # the fleet cluster holding it (never told to the controller)
    url: str
    kubeconfig: str      # path of its kubeconfig (0600)

    @property
    def namespace(self) -> str:
        return self.name


def placement(servers: Sequence[str], *, per_server: int, total: int,
              prefix: str = "vc") -> list[tuple[str, str]]:
    """(virtual cluster name, server) pairs: servers filled in order, `per_server` each.

    Pure. Filling in order means `total` clusters use the fewest servers,
    ceil(total / per_server), and every used server but the last holds exactly
    `per_server`.
    """
    if per_server < 1 or total < 0:
        raise ValueError(f"per_server must be >= 1 and total >= 0 (got {per_server}, {total})")
    if total > per_server * len(servers):
        raise ValueError(f"{total} virtual clusters do not fit on {len(servers)} API servers at "
                         f"{per_server} each; start more servers or raise per_server")
    width = max(4, len(str(total - 1)))
    return [(f"{prefix}-{i:0{width}d}", servers[i // per_server]) for i in range(total)]


def describe(clusters: Sequence[VirtualCluster]) -> str:
    """The sentence benchmarks print, so no reader takes them for separate API servers."""
    servers = {c.server for c in clusters}
    most = max((sum(1 for c in clusters if c.server == s) for s in servers), default=0)
    return (f"{len(clusters)} virtual clusters on {len(servers)} API servers (up to {most} "
            "per server, one namespace each, namespace-scoped RBAC; the controller is not told "
            "they share servers)")


def render_kubeconfig(*, name: str, server: str, ca: bytes, token: str) -> str:
    """A self-contained token kubeconfig whose context defaults to the namespace `name`.

    Written as JSON, which every kubeconfig reader takes (JSON is YAML): a thousand
    yaml.safe_dump calls cost seconds of the registration's CPU.
    """
    doc = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": name, "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(ca).decode()}}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name,
                                                "namespace": name}}],
        "current-context": name,
    }
    return json.dumps(doc, indent=1)


def tenant_objects(name: str) -> list[dict[str, Any]]:
    """What one virtual cluster needs on its server, the namespace first. Pure."""
    subject = [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": name}]
    own_ns = f"flotilla-vc:{name}:namespace"
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": SERVICE_ACCOUNT, "namespace": name}},
        # Everything inside the namespace: what a profile's manifests and a helm release
        # there need. A Role grants nothing outside its namespace.
        {"apiVersion": _RBAC, "kind": "Role",
         "metadata": {"name": "flotilla-vc-admin", "namespace": name},
         "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]},
        {"apiVersion": _RBAC, "kind": "RoleBinding",
         "metadata": {"name": "flotilla-vc-admin", "namespace": name},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": "flotilla-vc-admin"},
         "subjects": subject},
        # Reading its own Namespace object (helm, the controller's namespace check).
        {"apiVersion": _RBAC, "kind": "ClusterRole", "metadata": {"name": own_ns},
         "rules": [{"apiGroups": [""], "resources": ["namespaces"], "resourceNames": [name],
                    "verbs": ["get"]}]},
        {"apiVersion": _RBAC, "kind": "ClusterRoleBinding", "metadata": {"name": own_ns},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": own_ns},
         "subjects": subject},
    ]


async def _create(client: kube.Client, obj: dict[str, Any]) -> None:
    """Create, or apply what exists already (a second run): a create costs the server less."""
    try:
        await client.create(obj)
    except kube.ApiError as exc:
        if exc.status != 409:
            raise
        await client.apply(obj)


async def _tenant(client: kube.Client, name: str) -> str:
    """Create one virtual cluster's objects on its server; returns its token (never log it)."""
    namespace, *rest = tenant_objects(name)
    await _create(client, namespace)
    await asyncio.gather(*(_create(client, obj) for obj in rest))
    doc = await client.request(
        "POST", f"/api/v1/namespaces/{name}/serviceaccounts/{SERVICE_ACCOUNT}/token",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
              "spec": {"expirationSeconds": TOKEN_SECONDS}})
    token = str((doc.get("status") or {}).get("token") or "")
    if not token:
        raise FleetError(f"{client.name}: the TokenRequest for {name} returned no token")
    return token


async def _register(mgmt: kube.Client, namespace: str, name: str, text: str,
                    labels: Mapping[str, str]) -> None:
    """As `flotilla register`: the kubeconfig Secret, then the WorkloadCluster."""
    secret = f"{name}-kubeconfig"
    await mgmt.apply({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": secret, "namespace": namespace,
                     "labels": {api.CLUSTER_NAME_LABEL: name}},
        "data": {"kubeconfig": base64.b64encode(text.encode()).decode()}})
    await mgmt.apply({
        "apiVersion": api.API_VERSION, "kind": api.WORKLOAD_CLUSTER,
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {"kubeconfigSecretRef": {"name": secret, "key": "kubeconfig"}}},
        field_manager="flotilla-register")


async def register_virtual_async(
    fleet: Fleet, *, per_server: int, total: int,
    management_namespace: str = FLEET_NAMESPACE, labels: Mapping[str, str] | None = None,
    prefix: str = "vc", concurrency: int = CONCURRENCY,
) -> list[VirtualCluster]:
    """`register_virtual` inside a running event loop."""
    servers = {c.name: c for c in fleet.clusters}
    pairs = placement(list(servers), per_server=per_server, total=total, prefix=prefix)
    folder = Path(fleet.dir, "virtual")
    folder.mkdir(mode=0o700, exist_ok=True)
    mgmt = kube.Client(kubeconfig.load(fleet.management.kubeconfig), name="management")
    used = sorted({server for _, server in pairs})
    configs = {s: kubeconfig.load(servers[s].kubeconfig) for s in used}
    clients = {s: kube.Client(config, name=s) for s, config in configs.items()}
    try:
        try:
            await mgmt.resource(api.API_VERSION, api.WORKLOAD_CLUSTER)
        except kube.NotFound as exc:
            raise FleetError(
                "the management cluster has no WorkloadCluster CRD: run `flotilla install "
                f"--kubeconfig {fleet.management.kubeconfig}` first") from exc
        await mgmt.apply({"apiVersion": "v1", "kind": "Namespace",
                          "metadata": {"name": management_namespace}})
        gate = asyncio.Semaphore(concurrency)
        # Discovery once per server, before hundreds of writes would each look kinds up.
        await asyncio.gather(*(_patiently(gate, functools.partial(_discover, c))
                               for c in [*clients.values(), mgmt]))

        async def one(name: str, server: Cluster) -> VirtualCluster:
            async with gate:
                token = await _patiently(None, lambda: _tenant(clients[server.name], name))
                text = render_kubeconfig(name=name, server=server.url, token=token,
                                         ca=configs[server.name].ca_data or b"")
                path = kubeconfig.write_private(folder / f"{name}.kubeconfig", text)
                await _register(mgmt, management_namespace, name, text, labels or {})
            return VirtualCluster(name=name, server=server.name, url=server.url,
                                  kubeconfig=str(path))

        # Started round-robin over the servers, so the clusters in flight at any moment
        # load every server a little rather than two or three servers fully.
        spread = sorted(range(len(pairs)), key=lambda i: (i % per_server, i // per_server))
        done = await asyncio.gather(*(one(pairs[i][0], servers[pairs[i][1]]) for i in spread))
        made = [c for _, c in sorted(zip(spread, done, strict=True))]
    finally:
        await asyncio.gather(mgmt.close(), *(c.close() for c in clients.values()))
    _save(fleet, made)
    return list(made)


def register_virtual(
    fleet: Fleet, *, per_server: int, total: int,
    management_namespace: str = FLEET_NAMESPACE, labels: Mapping[str, str] | None = None,
    prefix: str = "vc", concurrency: int = CONCURRENCY,
) -> list[VirtualCluster]:
    """Create and register `total` virtual clusters, `per_server` per workload API server.

    The management cluster must have the CRDs (`flotilla install`). Idempotent:
    every write is a server-side apply; running it again issues fresh tokens.
    """
    return asyncio.run(register_virtual_async(
        fleet, per_server=per_server, total=total, management_namespace=management_namespace,
        labels=labels, prefix=prefix, concurrency=concurrency))


async def _patiently(gate: asyncio.Semaphore | None, call: Callable[[], Awaitable[R]]) -> R:
    """`await call()`, again after a pause when the server did not answer.

    On two cores shared by a hundred API servers a TLS connection can take longer
    than the client's 5 s connect timeout; every step here is safe to repeat.
    """
    for attempt in range(ATTEMPTS):
        try:
            if gate is None:
                return await call()
            async with gate:
                return await call()
        except kube.Unreachable:
            if attempt == ATTEMPTS - 1:
                raise
            await asyncio.sleep(1.0 + attempt)
    raise AssertionError("unreachable")  # the loop returns or raises


async def _discover(client: kube.Client) -> None:
    await client.resource("v1", "Namespace")
    await client.resource(_RBAC, "Role")


def _save(fleet: Fleet, made: Sequence[VirtualCluster]) -> None:
    """Merge into <fleet>/virtual.json (names, servers, kubeconfig paths; no tokens)."""
    known = {c.name: c for c in load(fleet.dir)}
    known.update({c.name: c for c in made})
    Path(fleet.dir, STATE_FILE).write_text(
        json.dumps([asdict(c) for c in sorted(known.values(), key=lambda c: c.name)], indent=1))


def load(fleet_dir: str | Path) -> list[VirtualCluster]:
    """The virtual clusters registered on this fleet so far."""
    path = Path(fleet_dir, STATE_FILE)
    if not path.exists():
        return []
    return [VirtualCluster(**raw) for raw in json.loads(path.read_text())]
