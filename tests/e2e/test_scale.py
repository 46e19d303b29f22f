"""Thirty WorkloadClusters on three lean API servers: one label deploys to all, unlabel withdraws.

The small version of bench/scale.py that `make test` keeps green. The
fixture starts a lean fleet of its own (management + 3 lean workload API
servers) in a temp folder and registers 30 virtual clusters, 10 per server,
each with its own ServiceAccount token limited to the namespace named after
it (`engine.devfleet.virtual.register_virtual`); a controller of its own
serves them. The benchmark profile (tests/scaleprofile.py: 20 objects whose
namespace and one value are templated by the cluster's name) must land in
every cluster's own namespace and nowhere else, and go again when the label
goes. Behaviour only: the timings are bench/scale.py's.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import scaleprofile as sp
from fleetkit import ChartRepo, Engine, Kubectl, eventually

from engine import api
from engine.cli import admin
from engine.devfleet import fleet as devfleet
from engine.devfleet import virtual

ROOT = Path(__file__).resolve().parents[2]
SERVERS = 3
PER_SERVER = 10
CLUSTERS = SERVERS * PER_SERVER


@dataclass
class ScaleFleet:
    fleet: devfleet.Fleet
    engine: Engine
    mgmt: Kubectl
    names: set[str]

    def holdings(self) -> dict[str, Counter[str]]:
        return asyncio.run(sp.holdings([c.kubeconfig for c in self.fleet.clusters]))


@pytest.fixture
def scale_fleet(tmp_path: Path, chart_repo: ChartRepo) -> Iterator[ScaleFleet]:
    """A lean fleet of its own with 30 virtual clusters and a controller; all stopped after."""
    fleet_dir = tmp_path / "fleet"
    engine: Engine | None = None
    try:
        started = devfleet.up(fleet_dir, devfleet.Options(clusters=SERVERS, full=0, lean=True))
        mgmt_kc = started.management.kubeconfig
        admin.install(mgmt_kc, crds=ROOT / "crds", catalog=ROOT / "catalog")
        registered = virtual.register_virtual(started, per_server=PER_SERVER, total=CLUSTERS,
                                              labels={})
        names = {v.name for v in registered}
        assert len(names) == CLUSTERS
        mgmt = Kubectl(mgmt_kc)
        workdir = tmp_path / "controller"
        workdir.mkdir()
        engine = Engine(started, chart_repo, mgmt, workdir)
        engine.start()

        def ready() -> bool:
            items = mgmt.json("get", "workloadclusters", "-A")["items"]
            return {c["metadata"]["name"] for c in items
                    if (c.get("status") or {}).get("ready") is True} >= names

        eventually(ready, timeout=90, what=f"{CLUSTERS} virtual clusters ready")
        yield ScaleFleet(fleet=started, engine=engine, mgmt=mgmt, names=names)
    finally:
        if engine is not None:
            engine.stop()
        devfleet.down(fleet_dir)


def _profile_status(mgmt: Kubectl) -> dict[str, object]:
    body = mgmt.get("clusterprofile", sp.PROFILE) or {}
    return body.get("status") or {}  # type: ignore[no-any-return]


def test_one_label_deploys_to_thirty_clusters_and_unlabel_withdraws(
        scale_fleet: ScaleFleet) -> None:
    mgmt, names = scale_fleet.mgmt, scale_fleet.names
    mgmt.apply(json.dumps(sp.manifests_configmap("bench-scale-v1", "v1")))
    mgmt.apply(json.dumps(sp.manifest_profile("bench-scale-v1")))
    assert scale_fleet.holdings() == {}  # nothing is deployed before the label

    mgmt("label", "workloadclusters", "--all", "-A", f"{sp.LABEL}=on")
    eventually(lambda: (st := _profile_status(mgmt)).get("ready") == CLUSTERS
               and st.get("matched") == CLUSTERS, timeout=120,
               what=f"the profile ready on {CLUSTERS} clusters")
    found = scale_fleet.holdings()
    # Every cluster holds the 20 objects, rendered for itself, in its own namespace; no
    # object landed anywhere else.
    assert set(found) == names
    wrong = {ns: dict(c) for ns, c in found.items() if c != Counter({"v1": sp.OBJECTS})}
    assert wrong == {}

    mgmt("label", "workloadclusters", "--all", "-A", f"{sp.LABEL}-")
    eventually(lambda: _profile_status(mgmt).get("matched") == 0, timeout=60,
               what="the profile matching no cluster")
    selector = api.profile_selector(api.CLUSTER_PROFILE, sp.PROFILE)
    eventually(lambda: not mgmt.json("get", "clustersummaries", "-A", "-l", selector)["items"],
               timeout=120, what="every ClusterSummary gone")
    eventually(lambda: scale_fleet.holdings() == {}, timeout=60,
               what="the objects withdrawn from every cluster")
