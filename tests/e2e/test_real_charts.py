"""The example profiles with the catalog's REAL upstream charts, on a full dev-fleet cluster.

The charts come from `../shared/charts` (or $FLOTILLA_CHARTS), served on
loopback and reached through the controller's mirror ConfigMap, exactly as
an air-gapped site would. One deploy is shared by every test of the module
(the charts are big): install, a values change, a chart-version change,
drift idle after a real hand edit was caught, and withdrawal.

What the dev fleet cannot run is met by `engine.devfleet.realcharts`, never
in the catalog: values that turn admission webhooks away (no server answers
them there), and the part of two operators that do not really run.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fleetkit import FLEET_NS, ROOT, Engine, Kubectl, eventually

from engine.devfleet import chartrepo, realcharts
from engine.devfleet import fleet as devfleet

MIRRORS = ("flotilla-system", "flotilla-chart-mirrors")
IDLE_SECONDS = 60  # bench/real_charts.py watches 10 minutes
RELEASES = realcharts.RELEASES
# Installing the real charts is minutes of helm on 2 cores: more than pytest's default.
pytestmark = pytest.mark.timeout(900)


def _uid() -> str:
    return uuid.uuid4().hex[:6]


class RealFleet:
    """The deploy every test of this module shares."""

    def __init__(self, engine: Engine, mgmt: Kubectl, cluster: devfleet.Cluster) -> None:
        self.engine, self.mgmt, self.name = engine, mgmt, cluster.name
        self.kubectl, self.kubeconfig = Kubectl(cluster.kubeconfig), str(cluster.kubeconfig)
        self.label, self.suffix = f"realcharts-{_uid()}", f"-{_uid()}"
        self.docs = realcharts.example_profiles(self.label, self.suffix)

    def profile_name(self, stem: str) -> str:
        return f"{stem}{self.suffix}"

    def spec(self, stem: str) -> dict[str, Any]:
        return next(d for d in self.docs[stem] if d["kind"] == "ClusterProfile")["spec"]

    def apply(self, stem: str) -> None:
        self.mgmt.apply(realcharts.dump(self.docs[stem]))

    def helm_revisions(self) -> dict[str, int]:
        """release -> revision of every release deployed by the profiles (helm's own record)."""
        out = {}
        for release, ns in RELEASES.items():
            listed = self.kubectl.json("get", "secrets", "-n", ns, "-l",
                                       f"owner=helm,name={release}")["items"] \
                if self.kubectl.get("namespace", ns) else []
            if listed:
                out[release] = max(int(s["metadata"]["labels"]["version"]) for s in listed)
        return out

    def history(self, release: str) -> list[tuple[int, str]]:
        """(revision, status) of every recorded revision of one release, from helm's Secrets."""
        listed = self.kubectl.json("get", "secrets", "-n", RELEASES[release], "-l",
                                   f"owner=helm,name={release}")["items"]
        return sorted((int(s["metadata"]["labels"]["version"]), s["metadata"]["labels"]["status"])
                      for s in listed)

    def summaries(self) -> list[dict[str, Any]]:
        found = []
        for stem in self.docs:
            items = self.mgmt.json("get", "clustersummaries", "-n", FLEET_NS, "-l",
                                   f"flotilla.dev/profile-name={self.profile_name(stem)}")
            found += items["items"]
        return found

    def wait_ready(self, stem: str, timeout: float = 420) -> None:
        def ready() -> bool:
            realcharts.play_operators(self.kubeconfig)
            body = self.engine.profile(self.profile_name(stem))
            st = body.get("status") or {}
            return st.get("phase") == "Ready" and st.get("ready") == 1
        try:
            eventually(ready, timeout=timeout, interval=2,
                       what=f"{stem} Ready on {self.name} with the real charts")
        except AssertionError as exc:
            rows = [(r["name"], r["status"], r.get("healthy"), r.get("message", "")[:300])
                    for s in self.summaries() for r in (s.get("status") or {}).get("services")
                    or []]
            raise AssertionError(f"{exc}\nservice rows: {rows}") from None


@pytest.fixture(scope="module")
def real(engine: Engine, mgmt: Kubectl, fleet: devfleet.Fleet,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealFleet]:
    charts = chartrepo.real_charts()
    if charts is None:
        pytest.fail(f"the real upstream charts are missing: set ${chartrepo.REAL_CHARTS_ENV} "
                    f"or put them in {ROOT.parent / 'shared' / 'charts'}", pytrace=False)
    repo = chartrepo.ChartRepo(tmp_path_factory.mktemp("real-charts"), charts=Path(charts))
    cluster = [c for c in fleet.clusters if c.full][-1]
    run = RealFleet(engine, mgmt, cluster)
    # Stand-in charts deployed here by earlier tests leave their CRDs (kept on withdrawal).
    realcharts.remove_crds(run.kubeconfig, wait=True)
    mgmt("create", "namespace", MIRRORS[0], check=False)
    mgmt.apply(yaml.safe_dump(realcharts.mirror_configmap(repo.mirrors())))
    try:
        yield run
    finally:
        mgmt("label", "workloadcluster", "-n", FLEET_NS, run.name, f"{run.label}-", check=False)
        for stem in run.docs:
            mgmt("delete", "clusterprofile", run.profile_name(stem), "--timeout=180s",
                 check=False)
        mgmt("delete", "configmap", MIRRORS[1], "-n", MIRRORS[0], check=False)
        repo.close()
        # Helm never deletes the CRDs of crds/ folders: later tests on this cluster start clean.
        realcharts.remove_crds(run.kubeconfig)


class TestRealCharts:
    """Install, upgrade, chart-version change, drift idle and withdrawal, in that order."""

    def test_1_install(self, real: RealFleet) -> None:
        gpu = real.spec("gpu-inference")
        # Start one minor version back, so the chart-version change below is a real upgrade.
        versions = {"gpu-operator": "25.10.1", "cert-manager": "1.20.3"}
        for service in gpu["services"]:
            service["version"] = versions.get(service["name"], service["version"])
        for stem in real.docs:
            real.apply(stem)
        real.mgmt("label", "workloadcluster", "-n", FLEET_NS, real.name, f"{real.label}=on")
        for stem in real.docs:
            real.wait_ready(stem)
        revisions = real.helm_revisions()
        assert sorted(revisions) == sorted(RELEASES), revisions
        charts = {r: real.kubectl.json("get", "secret", "-n", RELEASES[r], "-l",
                                       f"owner=helm,name={r},status=deployed")["items"]
                  for r in ("gpu-operator", "cert-manager")}
        assert all(len(v) == 1 for v in charts.values()), charts
        for summary in real.summaries():
            assert summary["status"]["phase"] == "Provisioned", summary["status"]

    def test_2_values_change_upgrades(self, real: RealFleet) -> None:
        before = real.helm_revisions()
        mon = real.spec("monitoring-baseline")
        mon["services"][0]["parameters"]["retention"] = "10d"
        real.apply("monitoring-baseline")

        def upgraded() -> dict[str, int] | None:
            now = real.helm_revisions()
            return now if now["kube-prometheus-stack"] > before["kube-prometheus-stack"] \
                else None
        after = eventually(upgraded, timeout=180, interval=2, what="kube-prometheus-stack upgraded")
        real.wait_ready("monitoring-baseline")
        prom = real.kubectl.json("get", "prometheus", "-n", "monitoring")["items"]
        assert prom and prom[0]["spec"]["retention"] == "10d"
        # Only the release whose values changed moved.
        assert {r: v for r, v in after.items() if r != "kube-prometheus-stack"} == \
            {r: v for r, v in before.items() if r != "kube-prometheus-stack"}

    def test_3_chart_version_change(self, real: RealFleet) -> None:
        before = real.helm_revisions()
        gpu = real.spec("gpu-inference")
        wanted = {"gpu-operator": "26.3.3", "cert-manager": "~1.21.0"}
        for service in gpu["services"]:
            service["version"] = wanted.get(service["name"], service["version"])
        real.apply("gpu-inference")

        def charts() -> dict[str, str] | None:
            found = {}
            for release in ("gpu-operator", "cert-manager"):
                items = real.kubectl.json("get", "deployment", release, "-n",
                                          RELEASES[release])
                found[release] = items["metadata"]["labels"].get("helm.sh/chart", "")
            done = found["gpu-operator"].endswith("v26.3.3") and \
                found["cert-manager"].endswith("v1.21.1")
            return found if done else None
        eventually(charts, timeout=240, interval=2, what="gpu-operator and cert-manager upgraded")
        real.wait_ready("gpu-inference")
        after = real.helm_revisions()
        for release in ("gpu-operator", "cert-manager"):
            assert after[release] == before[release] + 1, (
                release, real.history(release),
                [(s["metadata"]["name"], s["status"].get("drift"), [
                    (r["name"], r.get("lastAppliedTime")) for r in s["status"]["services"]])
                 for s in real.summaries()])
        # kserve-crd was not upgraded, and the CRD it renders only once is still there.
        assert after["kserve-crd"] == before["kserve-crd"]
        assert real.kubectl.get("crd", "clusterstoragecontainers.serving.kserve.io")

    def test_4_idle_after_a_hand_edit_was_caught(self, real: RealFleet) -> None:
        # Prove the detector is live first: a real hand edit on a release object is
        # reported and corrected by one helm upgrade of that release alone.
        before = real.helm_revisions()
        real.kubectl("scale", "deployment", "kube-prometheus-stack-kube-state-metrics", "-n",
                     "monitoring", "--replicas=3")

        def corrected() -> bool:
            dep = real.kubectl.json("get", "deployment",
                                    "kube-prometheus-stack-kube-state-metrics", "-n", "monitoring")
            return dep["spec"]["replicas"] == 1 and \
                real.helm_revisions()["kube-prometheus-stack"] == \
                before["kube-prometheus-stack"] + 1
        eventually(corrected, timeout=60, interval=1, what="hand edit corrected")
        settled = real.helm_revisions()
        assert {r: v for r, v in settled.items() if r != "kube-prometheus-stack"} == \
            {r: v for r, v in before.items() if r != "kube-prometheus-stack"}
        real.wait_ready("monitoring-baseline")
        # Now idle: for 60 s no drift is reported and no release moves. (A false report,
        # as the real charts used to produce, shows within seconds of any watch event.)
        detected = _drift_total(real.engine)
        deadline = time.monotonic() + IDLE_SECONDS
        while time.monotonic() < deadline:
            drifted = [(s["metadata"]["name"], s["status"]["drift"]) for s in real.summaries()
                       if (s.get("status") or {}).get("drift")]
            assert not drifted, drifted
            assert real.helm_revisions() == settled
            time.sleep(2)
        assert _drift_total(real.engine) == detected

    def test_5_withdrawal(self, real: RealFleet) -> None:
        real.mgmt("label", "workloadcluster", "-n", FLEET_NS, real.name, f"{real.label}-")

        def gone() -> bool:
            return not real.helm_revisions() and not real.summaries()
        eventually(gone, timeout=240, interval=2, what="every real release withdrawn")
        # Helm keeps CRDs it installed from a chart's crds/ folder; nothing else is left.
        assert real.kubectl.get("crd", "clusterpolicies.nvidia.com")


def _drift_total(engine: Engine) -> float:
    total = 0.0
    for line in engine.metrics().splitlines():
        if line.startswith("flotilla_drift_detected_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total
