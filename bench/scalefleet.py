"""The fleet of bench/scale.py: a lean fleet, virtual clusters K per API server, their checks.

Used by bench/scalerun.py. `Setup.start` brings up a lean fleet
(`fleet.Options(lean=True)`) with ceil(N / K) workload API servers,
installs the CRDs and catalog and registers N WorkloadClusters, K per
server, each with its own ServiceAccount token limited to the namespace
named after it (`engine.devfleet.virtual.register_virtual`). The controller
sees N clusters and is not told that they share servers.

`verify` reads what the benchmark profile deployed through each server's
admin kubeconfig (4 lists per server, not 4 per cluster), so checking 1,000
clusters costs 200 requests. `register_real` registers every lean server once
more with its admin kubeconfig, for the chart phase. `stop` stops everything.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import benchlib as bl
import scalekit as sk

from engine import errors
from engine.cli import admin
from engine.devfleet import fleet, virtual

REAL_NS = "scale-real"


@dataclass
class Virtual:
    name: str  # the WorkloadCluster, and its namespace on its server
    namespace: str  # where the WorkloadCluster lives on management
    server: str  # the lean API server (a fleet cluster's name)


@dataclass
class Setup:
    fleet: fleet.Fleet
    virtual: list[Virtual]
    fleet_up: float = 0.0
    register: float = 0.0
    real: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def start(cls, fleet_dir: Path, clusters: int, per_server: int) -> Setup:
        servers = math.ceil(clusters / per_server)
        watch = bl.Stopwatch()
        started = fleet.up(fleet_dir, fleet.Options(clusters=servers, full=0, lean=True))
        up = watch.elapsed()
        try:
            bl.note(f"lean fleet up: 1 management + {servers} workload API servers in "
                    f"{bl.seconds(up)} ({fleet_dir})")
            admin.install(started.management.kubeconfig, crds=bl.ROOT / "crds",
                          catalog=bl.ROOT / "catalog")
            watch = bl.Stopwatch()
            registered = _register(started, per_server, clusters)
            took = watch.elapsed()
            found = [Virtual(name=v.name, namespace=virtual.FLEET_NAMESPACE, server=v.server)
                     for v in registered]
            bl.note(f"registered in {bl.seconds(took)}: {virtual.describe(registered)}")
            return cls(fleet=started, virtual=found, fleet_up=up, register=took)
        except BaseException:
            with bl.shielded():
                fleet.down(fleet_dir)
            raise

    def names(self) -> list[tuple[str, str]]:
        """(management namespace, name) of every virtual WorkloadCluster."""
        return [(v.namespace, v.name) for v in self.virtual]

    def register_real(self) -> list[tuple[str, str]]:
        """Each lean server as a WorkloadCluster of its own (admin kubeconfig), unlabelled."""
        kc = self.fleet.management.kubeconfig
        for server in self.fleet.clusters:
            admin.register(kc, namespace=REAL_NS, name=f"real-{server.name}",
                           cluster_kubeconfig=server.kubeconfig, labels={})
            self.real.append((REAL_NS, f"real-{server.name}"))
        return list(self.real)

    async def verify(self, version: str) -> int:
        """How many virtual clusters hold all 20 objects at `version` in their namespace."""
        found = await sk.holdings([c.kubeconfig for c in self.fleet.clusters])
        return sum(1 for v in self.virtual
                   if found.get(v.name, Counter())[version] == sk.OBJECTS)

    async def holding(self) -> int:
        """How many virtual clusters still hold any benchmark object."""
        found = await sk.holdings([c.kubeconfig for c in self.fleet.clusters])
        return sum(1 for v in self.virtual if sum(found.get(v.name, Counter()).values()))

    def stop(self) -> None:
        with bl.shielded():
            watch = time.monotonic()
            fleet.down(self.fleet.dir)
            bl.note(f"fleet down in {bl.seconds(time.monotonic() - watch)}")


def _register(started: fleet.Fleet, per_server: int, clusters: int,
              attempts: int = 3) -> list[virtual.VirtualCluster]:
    """register_virtual, again when a loaded server timed a request out (it is idempotent)."""
    for attempt in range(attempts):
        try:
            return virtual.register_virtual(started, per_server=per_server, total=clusters,
                                            labels={})
        except errors.RetriableError as exc:
            if attempt == attempts - 1:
                raise
            bl.note(f"registration interrupted ({exc.__class__.__name__}); again")
            time.sleep(5)
    raise AssertionError("unreachable")
