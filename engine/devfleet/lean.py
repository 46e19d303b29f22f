"""The "lean" kube-apiserver: the flag set that lets 50-100 workload API servers share a laptop.

Used by `engine.devfleet.fleet` (`Options(lean=True)`, `flotilla dev-fleet up --lean`)
and by bench/fleet_lean.py, which measures each setting on its own. Pure: it
builds command-line flags and environment variables from plain values and
starts nothing.

Every fleet API server already runs without profiling, priority-and-fairness
or the endpoint reconciler (`fleet._apiserver_argv`). A lean server also:

- serves only the API groups a workload cluster of our tests and benchmarks
  needs (core, apps, batch, policy, RBAC, TokenRequest and access reviews,
  CRDs, leases), plus the few the server itself cannot start without
  (admissionregistration and discovery for its internal informers,
  networking for the Service IP allocator, apiregistration for the
  aggregator). Dropping the rest removes their storage, informers and
  OpenAPI models from the heap;
- turns off the admission plugins that need a group it no longer serves
  (StorageClass, RuntimeClass, PriorityClass, IngressClass, certificates…);
  NamespaceLifecycle, ServiceAccount, LimitRanger, ResourceQuota, PodSecurity
  and the webhook/policy plugins stay, so objects are admitted as on a real
  cluster;
- keeps no watch cache (watches and lists go to etcd; the fleet's one etcd
  serves them well at this size, and the caches were ~17 MiB per server);
- stops polling etcd for object counts and database size (with a hundred
  servers on one etcd that was a steady background load for metrics nobody
  reads);
- runs with GOMAXPROCS=1 (a hundred servers on two cores gain nothing from
  more Go threads each) and GOGC=25 (the heap is collected at +25% instead of
  the fleet's usual +50%: -20 MiB per server, no measurable idle CPU).

GOMEMLIMIT is deliberately absent: a limit below the live heap (~70-100 MiB)
makes Go collect continuously, which cost 80-875 ms of CPU per second per idle
server when measured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

# group/version → served. Everything else is switched off by api/all=false.
API_GROUPS = (
    "v1",
    "apps/v1",
    "batch/v1",
    "policy/v1",
    "rbac.authorization.k8s.io/v1",
    "authentication.k8s.io/v1",        # TokenRequest, TokenReview, SelfSubjectReview
    "authorization.k8s.io/v1",         # SelfSubjectAccessReview (kubectl auth can-i)
    "apiextensions.k8s.io/v1",         # charts may bring CRDs
    "coordination.k8s.io/v1",          # the server's own identity lease
    # The server does not start without these: its internal informers list them.
    "apiregistration.k8s.io/v1",
    "admissionregistration.k8s.io/v1",
    "discovery.k8s.io/v1",
    "networking.k8s.io/v1",            # ServiceCIDR/IPAddress: the Service IP allocator
)

# Default-enabled admission plugins that read a group a lean server does not serve,
# or that only matter with nodes and storage (which a lean, API-only server never has).
DISABLED_ADMISSION = (
    "DefaultStorageClass",
    "StorageObjectInUseProtection",
    "PersistentVolumeClaimResize",
    "RuntimeClass",
    "Priority",
    "DefaultIngressClass",
    "CertificateApproval",
    "CertificateSigning",
    "CertificateSubjectRestriction",
    "ClusterTrustBundleAttest",
    "PodTopologyLabels",
    "NodeDeclaredFeatureValidator",
    "PodResizeValidator",
    "PodGroupProtection",
    "MutatingAdmissionPolicy",
)

MAX_REQUESTS_INFLIGHT = 100
MAX_MUTATING_REQUESTS_INFLIGHT = 50
EVENT_TTL = "10m"
GOGC = "25"
GOMAXPROCS = "1"
# The fleet's usual garbage-collector setting for every other API server.
DEFAULT_GOGC = "50"
BATCH_SIZE = 10


@dataclass(frozen=True)
class Setting:
    """One lean setting: its flags and environment, and why, for the benchmark's table."""

    name: str
    flags: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    why: str = ""


def runtime_config(groups: Sequence[str] = API_GROUPS) -> str:
    return ",".join(["api/all=false", *(f"{g}=true" for g in groups)])


def settings() -> tuple[Setting, ...]:
    """Every lean setting, in the order the benchmark adds them."""
    return (
        Setting("runtime-config", (f"--runtime-config={runtime_config()}",
                                   "--disable-admission-plugins=" + ",".join(DISABLED_ADMISSION)),
                why="only the API groups workload clusters need (and their admission plugins)"),
        Setting("watch-cache", ("--watch-cache=false",), why="no watch cache"),
        Setting("etcd-polls", ("--etcd-count-metric-poll-period=0",
                               "--etcd-db-metric-poll-interval=0"),
                why="no periodic etcd object-count and size polls"),
        Setting("inflight", (f"--max-requests-inflight={MAX_REQUESTS_INFLIGHT}",
                             f"--max-mutating-requests-inflight={MAX_MUTATING_REQUESTS_INFLIGHT}"),
                why="bounded concurrent requests (priority-and-fairness is off in every server)"),
        Setting("event-ttl", (f"--event-ttl={EVENT_TTL}",), why="Events kept 10 min, not 1 h"),
        Setting("gomaxprocs", env=(("GOMAXPROCS", GOMAXPROCS),), why="one Go scheduler thread"),
        Setting("gogc", env=(("GOGC", GOGC),), why=f"GC at +{GOGC}% heap (fleet default "
                f"+{DEFAULT_GOGC}%)"),
    )


def flags(lean: bool, *, without: Sequence[str] = ()) -> list[str]:
    """Extra kube-apiserver flags: none for a default server; the lean ones minus `without`."""
    if not lean:
        return []
    return [f for s in settings() if s.name not in without for f in s.flags]


def env(lean: bool, *, without: Sequence[str] = ()) -> dict[str, str]:
    """The API server's environment additions (the fleet's GOGC, or the lean values)."""
    out = {"GOGC": DEFAULT_GOGC}
    if lean:
        for s in settings():
            if s.name not in without:
                out.update(s.env)
    return out


def windowed(items: Sequence[T], size: int, run: Callable[[T], None]) -> None:
    """`run(item)` for every item in its own thread, at most `size` at a time, in order.

    The fleet starts API servers this way: a server's start-up costs ~2 CPU seconds,
    so a hundred starting at once on two cores all take minutes to answer /readyz and
    their start-up timeouts fire. A window (not batches) starts the next server as
    soon as any one is ready, so one slow server does not hold back the rest. The
    first failure stops the servers not yet started and is raised.
    """
    if size < 1:
        raise ValueError(f"the window must hold at least 1, not {size}")
    pool = ThreadPoolExecutor(max_workers=size)
    try:
        futures = [pool.submit(run, item) for item in items]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            if future in done and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
