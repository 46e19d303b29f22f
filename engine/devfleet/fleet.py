"""Bring a local fleet of real Kubernetes control planes up and down.

Used by `flotilla dev-fleet`, the pytest fixtures, the benchmarks and the
demo. One etcd serves every API server through its own `--etcd-prefix`;
the API servers start in parallel, at most ten at a time (the next one starts
when one of these is ready, so a hundred do not starve each other on two cores);
"full" clusters add kube-controller-manager, kube-scheduler and the node
simulator (`engine.devfleet.nodesim`) so Deployments and DaemonSets really
become ready. `Options(lean=True)` makes every workload cluster an API-only
"lean" server (`engine.devfleet.lean`: fewer API groups, no watch cache, …)
so 50-100 of them fit on one small machine.

The layout of a fleet folder:
    management.kubeconfig, clusters/<name>.kubeconfig   what users need
    fleet.json                                          names, URLs, roles
    pids, logs/, pki/, etcd/                            ours, for `down`/debugging
"""

from __future__ import annotations

import json
import shutil
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.adapters import kubeconfig
from engine.devfleet import certs, lean, procs, testbin

STATE_FILE = "fleet.json"
# An API server that exits during start-up is started again, up to this many times in all.
START_ATTEMPTS = 3


class FleetError(RuntimeError):
    """The fleet could not start; the message names the process and its log."""


@dataclass
class Cluster:
    name: str
    url: str
    kubeconfig: str
    full: bool
    role: str = "workload"
    pids: dict[str, int] = field(default_factory=dict)
    lean: bool = False


@dataclass
class Fleet:
    dir: str
    etcd_url: str
    management: Cluster
    clusters: list[Cluster]

    @property
    def all(self) -> list[Cluster]:
        return [self.management, *self.clusters]

    def save(self) -> None:
        Path(self.dir, STATE_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, fleet_dir: str | Path) -> Fleet:
        raw = json.loads(Path(fleet_dir, STATE_FILE).read_text())
        return cls(
            dir=raw["dir"], etcd_url=raw["etcd_url"], management=Cluster(**raw["management"]),
            clusters=[Cluster(**c) for c in raw["clusters"]],
        )


@dataclass(frozen=True)
class Options:
    clusters: int = 3
    full: int = 1
    full_management: bool = False
    cpu_nodes: int = 2
    gpu_nodes: int = 2
    gpu_product: str = "NVIDIA-H100-80GB-HBM3"
    gpus_per_node: int = 8
    # How long the node simulator lets a run-to-completion (Job, Helm hook) pod run.
    job_seconds: float = 1.0
    # Per API server from its start (and again for the full clusters' nodes).
    timeout: float = 90.0
    # Lean workload API servers (engine.devfleet.lean); they are API-only, `full` is ignored.
    lean: bool = False
    # API servers starting at once; the next starts when one of these answers /readyz.
    start_window: int = 10


def _wait_http(url: str, ctx: ssl.SSLContext | None, what: str, log: Path,
               deadline: float, pid: int) -> None:
    last = ""
    while time.monotonic() < deadline:
        if not procs.alive(pid):
            raise FleetError(f"{what} exited during start; see {log}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.1)
    raise FleetError(f"{what} not ready at {url} ({last}); see {log}:\n{_tail(log)}")


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _client_ssl(pki: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(pki / "admin.crt", pki / "admin.key")
    return ctx


def _make_pki(pki: Path) -> None:
    pki.mkdir(parents=True, exist_ok=True)
    ca = certs.make_ca()
    certs.write(ca, pki / "ca.crt", pki / "ca.key")
    certs.write(certs.make_serving(ca), pki / "apiserver.crt", pki / "apiserver.key")
    certs.write(certs.make_client(ca, "flotilla-admin", "system:masters"),
                pki / "admin.crt", pki / "admin.key")
    certs.write(certs.make_service_account_keys(), pki / "sa.pub", pki / "sa.key")


def _apiserver_argv(bins: Path, pki: Path, name: str, port: int, etcd: str,
                    extra: list[str] | None = None) -> list[str]:
    return [
        str(bins / "kube-apiserver"),
        f"--etcd-servers={etcd}", f"--etcd-prefix=/flotilla/{name}",
        "--bind-address=127.0.0.1", f"--secure-port={port}", "--advertise-address=127.0.0.1",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--service-account-issuer=https://{name}.flotilla.local",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--service-cluster-ip-range=10.96.0.0/16",
        "--authorization-mode=RBAC",
        "--allow-privileged=true",
        "--profiling=false",
        # Small fleets need neither flow control nor the endpoint reconciler's churn.
        "--enable-priority-and-fairness=false",
        "--endpoint-reconciler-type=none",
        "--v=1",
        *(extra or []),
    ]


def up(fleet_dir: str | Path, options: Options = Options(), *, bins: Path | None = None) -> Fleet:
    """Start a fleet; returns when every API server is ready and every full cluster has nodes."""
    root = Path(fleet_dir).resolve()
    if (root / procs.PID_FILE).exists() and any(procs.alive(p) for p, _ in procs.recorded(root)):
        raise FleetError(f"a fleet already runs in {root}; run `flotilla dev-fleet down` first")
    for stale in ("etcd", "logs", "clusters", "pki", "kubeconfigs"):
        shutil.rmtree(root / stale, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    bins = bins or testbin.path()
    deadline = time.monotonic() + options.timeout
    pki = root / "pki"
    _make_pki(pki)
    ctx = _client_ssl(pki)

    client_port, peer_port = procs.free_port(), procs.free_port()
    etcd_url = f"http://127.0.0.1:{client_port}"
    etcd_pid = procs.spawn(root, "etcd", [
        str(bins / "etcd"), "--name=flotilla", f"--data-dir={root / 'etcd'}",
        f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
        f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
        f"--initial-cluster=flotilla=http://127.0.0.1:{peer_port}",
        "--unsafe-no-fsync", "--log-level=warn", "--quota-backend-bytes=4294967296",
    ])
    try:
        _wait_http(f"{etcd_url}/health", None, "etcd", root / "logs/etcd.log", deadline, etcd_pid)
        specs = [Cluster(name="management", url="", kubeconfig="",
                         full=bool(options.full_management), role="management")]
        specs += [Cluster(name=f"cluster-{i + 1}", url="", kubeconfig="",
                          full=i < options.full and not options.lean, lean=options.lean)
                  for i in range(options.clusters)]
        (root / "clusters").mkdir(exist_ok=True)
        fleet = Fleet(dir=str(root), etcd_url=etcd_url, management=specs[0],
                      clusters=specs[1:])
        def start(cluster: Cluster) -> None:
            for attempt in range(START_ATTEMPTS):
                _start_apiserver(root, bins, pki, etcd_url, cluster)
                try:
                    _wait_ready(root, ctx, [cluster], time.monotonic() + options.timeout)
                    return
                except FleetError:
                    # A server whose start-up hooks timed out on an overloaded etcd exits
                    # (seen at 100 servers under load 30); it starts fine a moment later.
                    if attempt == START_ATTEMPTS - 1 or procs.alive(cluster.pids["apiserver"]):
                        raise

        lean.windowed(specs, options.start_window, start)
        fleet.save()
        for cluster in fleet.all:
            if cluster.full:
                _start_full(root, bins, pki, cluster, options)
        fleet.save()
        _wait_nodes(fleet, options, time.monotonic() + options.timeout)
        return fleet
    except BaseException:
        procs.stop_all(root)
        raise


def _start_apiserver(root: Path, bins: Path, pki: Path, etcd_url: str, cluster: Cluster,
                     without: Sequence[str] = ()) -> None:
    """Spawn one cluster's kube-apiserver and write its kubeconfig; fills url/kubeconfig/pids."""
    port = procs.free_port()
    cluster.url = f"https://127.0.0.1:{port}"
    path = root / ("management.kubeconfig" if cluster.role == "management"
                   else f"clusters/{cluster.name}.kubeconfig")
    path.write_text(kubeconfig.render(
        name=cluster.name, server=cluster.url, ca=(pki / "ca.crt").read_bytes(),
        cert=(pki / "admin.crt").read_bytes(), key=(pki / "admin.key").read_bytes()))
    cluster.kubeconfig = str(path)
    # A lower GOGC trades a little CPU for ~20% less resident memory per server.
    cluster.pids["apiserver"] = procs.spawn(
        root, f"{cluster.name}-apiserver",
        _apiserver_argv(bins, pki, cluster.name, port, etcd_url,
                        lean.flags(cluster.lean, without=without)),
        env=lean.env(cluster.lean, without=without))


def _wait_ready(root: Path, ctx: ssl.SSLContext, clusters: list[Cluster],
                deadline: float) -> None:
    """Readiness checks in parallel: the servers boot concurrently."""
    with ThreadPoolExecutor(max_workers=len(clusters)) as pool:
        list(pool.map(lambda c: _wait_http(
            f"{c.url}/readyz", ctx, f"{c.name} kube-apiserver",
            root / f"logs/{c.name}-apiserver.log", deadline, c.pids["apiserver"]), clusters))


def _start_full(root: Path, bins: Path, pki: Path, cluster: Cluster, options: Options) -> None:
    kc = cluster.kubeconfig
    cluster.pids["controller-manager"] = procs.spawn(root, f"{cluster.name}-controller-manager", [
        str(bins / "kube-controller-manager"), f"--kubeconfig={kc}",
        f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
        "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={procs.free_port()}",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'ca.crt'}", "--use-service-account-credentials=false",
        "--controllers=*",
        "--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10", "--v=1",
    ])
    cluster.pids["scheduler"] = procs.spawn(root, f"{cluster.name}-scheduler", [
        str(bins / "kube-scheduler"), f"--kubeconfig={kc}",
        f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
        "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={procs.free_port()}",
        "--v=1",
    ])
    cluster.pids["nodesim"] = procs.spawn(root, f"{cluster.name}-nodesim", [
        sys.executable, "-m", "engine.devfleet.nodesim", f"--kubeconfig={kc}",
        f"--prefix={cluster.name}", f"--cpu-nodes={options.cpu_nodes}",
        f"--gpu-nodes={options.gpu_nodes}", f"--gpu-product={options.gpu_product}",
        f"--gpus-per-node={options.gpus_per_node}", f"--job-seconds={options.job_seconds}",
    ])


def _wait_nodes(fleet: Fleet, options: Options, deadline: float) -> None:
    """Full clusters are ready when their nodes are Ready and pods can be admitted."""
    ctx = _client_ssl(Path(fleet.dir) / "pki")
    want = options.cpu_nodes + options.gpu_nodes
    for cluster in fleet.all:
        if not cluster.full:
            continue
        while True:
            nodes = _get_json(f"{cluster.url}/api/v1/nodes", ctx).get("items", [])
            ready = [n for n in nodes if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n.get("status", {}).get("conditions", []))]
            sa = _get_json(f"{cluster.url}/api/v1/namespaces/default/serviceaccounts/default", ctx)
            if len(ready) >= want and sa.get("kind") == "ServiceAccount":
                break
            for role, pid in cluster.pids.items():
                if not procs.alive(pid):
                    log = Path(fleet.dir, "logs", f"{cluster.name}-{role}.log")
                    raise FleetError(f"{cluster.name} {role} exited; see {log}:\n{_tail(log)}")
            if time.monotonic() > deadline:
                raise FleetError(f"{cluster.name}: {len(ready)}/{want} nodes ready in time")
            time.sleep(0.2)


def _get_json(url: str, ctx: ssl.SSLContext) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=5) as resp:
            doc: dict[str, Any] = json.loads(resp.read())
            return doc
    except (urllib.error.URLError, OSError, ValueError):
        return {}


def stop_server(fleet: Fleet, name: str, timeout: float = 15.0) -> list[str]:
    """Stop etcd (`name` "etcd") or one cluster's API server; returns its command line.

    For fault-injection tests and benchmarks: the data (etcd's folder, the
    server's etcd prefix) stays, so `start_server` with the same command line
    brings back the same cluster on the same port.
    """
    pid = _server_pid(fleet, name)
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    procs.stop(pid, timeout)
    return argv


def start_server(fleet: Fleet, name: str, argv: list[str], timeout: float = 60.0) -> int:
    """Start what `stop_server` stopped, with the same command line; returns when it serves."""
    root = Path(fleet.dir)
    deadline = time.monotonic() + timeout
    if name == "etcd":
        pid = procs.spawn(root, "etcd", argv)
        _wait_http(f"{fleet.etcd_url}/health", None, "etcd", root / "logs/etcd.log", deadline,
                   pid)
        return pid
    cluster = next(c for c in fleet.all if c.name == name)
    pid = procs.spawn(root, f"{name}-apiserver", argv, env=lean.env(cluster.lean))
    cluster.pids["apiserver"] = pid
    fleet.save()
    _wait_http(f"{cluster.url}/readyz", _client_ssl(root / "pki"), f"{name} kube-apiserver",
               root / f"logs/{name}-apiserver.log", deadline, pid)
    return pid


def add_server(fleet: Fleet, name: str, *, lean_server: bool = False,
               without: Sequence[str] = (), timeout: float = 90.0) -> Cluster:
    """Start one more API-only workload server on the fleet's etcd; returns when it serves.

    For benchmarks that measure one server at a time (bench/fleet_lean.py takes each
    lean setting away in turn through `without`). It is recorded in the fleet's pid
    file, so `down` stops it, but not added to `fleet.clusters`; `procs.stop(pid)`
    stops it alone.
    """
    root = Path(fleet.dir)
    pki = root / "pki"
    cluster = Cluster(name=name, url="", kubeconfig="", full=False, lean=lean_server)
    _start_apiserver(root, testbin.path(), pki, fleet.etcd_url, cluster, without)
    _wait_ready(root, _client_ssl(pki), [cluster], time.monotonic() + timeout)
    return cluster


def restart_server(fleet: Fleet, name: str, timeout: float = 60.0) -> int:
    """`stop_server` then `start_server`: etcd or one API server restarted in place."""
    return start_server(fleet, name, stop_server(fleet, name), timeout)


def _server_pid(fleet: Fleet, name: str) -> int:
    if name != "etcd":
        return next(c for c in fleet.all if c.name == name).pids["apiserver"]
    running = [pid for pid, what in procs.recorded(Path(fleet.dir))
               if what == "etcd" and procs.alive(pid)]
    if not running:
        raise FleetError(f"etcd of {fleet.dir} is not running")
    return running[-1]


def down(fleet_dir: str | Path) -> list[int]:
    """Stop every process this fleet folder recorded; safe to repeat."""
    return procs.stop_all(Path(fleet_dir).resolve())


def status(fleet_dir: str | Path) -> dict[str, object]:
    root = Path(fleet_dir).resolve()
    running = {name: pid for pid, name in procs.recorded(root) if procs.alive(pid)}
    stopped = [name for pid, name in procs.recorded(root) if not procs.alive(pid)]
    out: dict[str, object] = {"dir": str(root), "running": running, "stopped": stopped}
    if (root / STATE_FILE).exists():
        fleet = Fleet.load(root)
        ctx = _client_ssl(root / "pki")
        out["clusters"] = [
            {"name": c.name, "role": c.role, "url": c.url, "full": c.full, "lean": c.lean,
             "kubeconfig": c.kubeconfig,
             "ready": _readyz(c.url, ctx)} for c in fleet.all]
    return out


def _readyz(url: str, ctx: ssl.SSLContext) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", context=ctx, timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False
