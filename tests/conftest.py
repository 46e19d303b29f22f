"""Shared fixtures: one real local fleet per test session, namespaces, kubectl, helm, charts.

The fleet is real etcd + kube-apiserver processes (full clusters add the
controller-manager, scheduler and simulated nodes). A test that needs it
fails — never skips — when it cannot start. Teardown stops every process by
pid, also when tests fail, on Ctrl-C, on SIGTERM and at interpreter exit.

Set FLOTILLA_TEST_FLEET=DIR to reuse a fleet you started yourself with
`flotilla dev-fleet up --dir DIR --clusters 6 --full 2` (it is left running; run pytest
with `-n 0` then). `make test` runs two pytest-xdist workers, each with its own fleet.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleetkit import FLEET_NS, ROOT, ChartRepo, Engine, Helm, Kubectl, eventually
from fleetkit import bins as fleetkit_bins

from engine.cli import admin
from engine.devfleet import fleet as devfleet

WORKLOAD_CLUSTERS = 6
FULL_CLUSTERS = 2


def _stop_on_sigterm(fleet_dir: Path) -> None:
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, frame: FrameType | None) -> None:
        devfleet.down(fleet_dir)
        if callable(previous):
            previous(signum, frame)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


@pytest.fixture(scope="session", autouse=True)
def test_helm() -> Iterator[Path]:
    """The test binaries' helm, named through FLOTILLA_HELM for every command a test runs.

    Product code never looks for test binaries itself (an import-linter contract), so
    `flotilla plan` and `flotilla catalog lint` find helm the way a user's machine would.
    """
    path = Path(os.environ.get("FLOTILLA_HELM") or fleetkit_bins() / "helm")
    previous = os.environ.get("FLOTILLA_HELM")
    os.environ["FLOTILLA_HELM"] = str(path)
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop("FLOTILLA_HELM", None)


@pytest.fixture(scope="session", autouse=True)
def test_kubectl() -> Iterator[Path]:
    """The test binaries' kubectl, named through FLOTILLA_KUBECTL (kustomizationRefs build
    with it) for every controller a test runs, as `test_helm` does for helm."""
    path = Path(os.environ.get("FLOTILLA_KUBECTL") or fleetkit_bins() / "kubectl")
    previous = os.environ.get("FLOTILLA_KUBECTL")
    os.environ["FLOTILLA_KUBECTL"] = str(path)
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop("FLOTILLA_KUBECTL", None)


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devfleet.Fleet]:
    reuse = os.environ.get("FLOTILLA_TEST_FLEET")
    if reuse and os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") != "1":
        pytest.fail("FLOTILLA_TEST_FLEET is one fleet: run with -n 0 (pytest-xdist workers "
                    "would share it)", pytrace=False)
    if reuse:
        yield devfleet.Fleet.load(reuse)
        return
    fleet_dir = tmp_path_factory.mktemp("fleet")
    atexit.register(devfleet.down, fleet_dir)
    _stop_on_sigterm(fleet_dir)
    try:
        started = devfleet.up(fleet_dir, devfleet.Options(clusters=WORKLOAD_CLUSTERS,
                                                          full=FULL_CLUSTERS))
    except Exception as exc:  # fail loudly: a fleet test never skips
        pytest.fail(f"the local fleet could not start: {exc}", pytrace=False)
    try:
        yield started
    finally:
        devfleet.down(fleet_dir)


@pytest.fixture(scope="session")
def mgmt(fleet: devfleet.Fleet) -> Kubectl:
    return Kubectl(fleet.management.kubeconfig)


@pytest.fixture(scope="session")
def workload(fleet: devfleet.Fleet) -> dict[str, Kubectl]:
    return {c.name: Kubectl(c.kubeconfig) for c in fleet.clusters}


@pytest.fixture(scope="session")
def full_cluster(fleet: devfleet.Fleet) -> devfleet.Cluster:
    return next(c for c in fleet.clusters if c.full)


@pytest.fixture(scope="session")
def chart_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartRepo]:
    repo = ChartRepo(tmp_path_factory.mktemp("charts"))
    try:
        yield repo
    finally:
        repo.close()


@pytest.fixture
def helm_home(tmp_path: Path) -> Path:
    return tmp_path / "helm"


@pytest.fixture
def namespace(mgmt: Kubectl) -> Iterator[str]:
    """A fresh namespace on the management cluster for one test."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    mgmt("create", "namespace", name)
    try:
        yield name
    finally:
        # The management cluster runs no namespace controller: what a deleted namespace
        # holds stays, and the controller would go on serving it. Remove ours explicitly.
        mgmt("delete", "profiles,workloadclusters", "--all", "-n", name, "--timeout=60s",
             check=False, timeout=90)
        mgmt("delete", "namespace", name, "--wait=false", check=False)


def helm_for(kubeconfig: str, home: Path) -> Helm:
    return Helm(kubeconfig, home)


@pytest.fixture(scope="session")
def engine(fleet: devfleet.Fleet, chart_repo: ChartRepo, mgmt: Kubectl,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """CRDs and catalog installed, every workload cluster registered, the controller running."""
    admin.install(fleet.management.kubeconfig, crds=ROOT / "crds", catalog=ROOT / "catalog")
    for cluster in fleet.clusters:
        admin.register(fleet.management.kubeconfig, namespace=FLEET_NS, name=cluster.name,
                       cluster_kubeconfig=cluster.kubeconfig, labels={})
    running = Engine(fleet, chart_repo, mgmt, tmp_path_factory.mktemp("controller"))
    running.start()
    try:
        for cluster in fleet.clusters:
            eventually(lambda c=cluster: (mgmt.get("workloadcluster", c.name, "-n", FLEET_NS)
                                          or {}).get("status", {}).get("ready"),
                       timeout=60, what=f"{cluster.name} connected")
        yield running
    finally:
        running.stop()
