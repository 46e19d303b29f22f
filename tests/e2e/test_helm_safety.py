"""Helm on real charts: CRDs survive upgrades and withdrawal; long helm calls show in status.

The CRD test installs the real upstream kserve-crd chart (found through
$FLOTILLA_CHARTS, else ../shared/charts, served on loopback as the Helm
repository it is). Its `clusterstoragecontainers` CRD is rendered only when a
`lookup` finds none, so every upgrade drops it from the release's manifest and
Helm would delete it with every object of its kind. The hook test uses the
stand-in `hook-app` chart on an API-only cluster, where its post-install hook
Job never completes, so helm waits on it until the profile's timeout.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fleetkit import FLEET_NS, ChartRepo, Engine, Helm, Kubectl, eventually

from engine import api
from engine.devfleet.chartrepo import real_charts

CSC_CRD = "clusterstoragecontainers.serving.kserve.io"
KEEP = "helm.sh/resource-policy"


def _uid() -> str:
    return uuid.uuid4().hex[:6]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartRepo]:
    folder = real_charts()
    if folder is None:
        pytest.fail("the real upstream charts are missing: set FLOTILLA_CHARTS to their folder "
                    "(a Helm repository with index.yaml) or put them in ../shared/charts",
                    pytrace=False)
    repo = ChartRepo(tmp_path_factory.mktemp("upstream"), charts=folder)
    try:
        yield repo
    finally:
        repo.close()


def _profile(name: str, cluster: str, chart: str, *, sync: str = "Continuous") -> str:
    return f"""
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  syncMode: {sync}
  clusterRefs: [{{namespace: {FLEET_NS}, name: {cluster}}}]
  helmCharts:
{chart}"""


def _summary(mgmt: Kubectl, profile: str) -> dict[str, Any] | None:
    items = mgmt.json("get", "clustersummaries", "-n", FLEET_NS, "-l",
                      f"{api.PROFILE_NAME_LABEL}={profile}")["items"]
    return items[0] if items else None


def _row(mgmt: Kubectl, profile: str, release: str) -> dict[str, Any]:
    summary = _summary(mgmt, profile) or {}
    rows = (summary.get("status") or {}).get("services") or []
    return next((r for r in rows if r.get("name") == release), {})


def _pause(mgmt: Kubectl, cluster: str, paused: bool) -> None:
    mgmt("patch", "workloadcluster", cluster, "-n", FLEET_NS, "--type=merge",
         "-p", json.dumps({"spec": {"paused": paused}}))


class TestCrdsSurviveUpgrades:
    """kserve-crd's upgrade drops a CRD from its manifest; the CRD and its objects stay."""

    def test_upgrade_and_withdrawal_keep_the_crd_and_its_objects(
            self, engine: Engine, mgmt: Kubectl, upstream: ChartRepo, tmp_path: Path) -> None:
        name, cluster, ns = f"kcrd-{_uid()}", "cluster-5", f"kserve-{_uid()}"
        target = engine.cluster(cluster)
        helm = Helm(engine.kubeconfig(cluster), tmp_path)

        def chart(value: str) -> str:
            return (f"  - {{repositoryURL: '{upstream.url}', chartName: kserve-crd, chartVersion: "
                    f"v0.18.0, releaseName: kserve-crd, releaseNamespace: {ns}, "
                    f"values: {{flotillaTest: '{value}'}}}}\n")

        try:
            mgmt.apply(_profile(name, cluster, chart("1")))
            engine.wait_ready(name, 1, timeout=180)
            crd = target.get("crd", CSC_CRD)
            assert crd and crd["metadata"]["annotations"].get(KEEP) == "keep"
            assert CSC_CRD in helm("get", "manifest", "kserve-crd", "-n", ns)
            target.apply("""
apiVersion: serving.kserve.io/v1alpha1
kind: ClusterStorageContainer
metadata: {name: flotilla-e2e}
spec:
  container: {name: storage-initializer, image: registry.invalid/storage:1}
  supportedUriFormats: [{prefix: "flotilla://"}]
""")

            # DryRun records what the upgrade would do to the CRD, and does nothing.
            mgmt.apply(_profile(name, cluster, chart("2"), sync="DryRun"))

            def would() -> str | None:
                message = str(_row(mgmt, name, "kserve-crd").get("message", ""))
                return message if "would upgrade" in message else None

            message = eventually(would, timeout=120, what="DryRun report")
            assert f"would remove CRD {CSC_CRD} from the release; kept" in message, message
            assert json.loads(helm("status", "kserve-crd", "-n", ns, "-o", "json"))["version"] \
                == 1

            # Held back (paused cluster), `flotilla plan` says what the upgrade would do.
            _pause(mgmt, cluster, True)
            mgmt.apply(_profile(name, cluster, chart("2")))
            plan = subprocess.run([sys.executable, "-m", "engine.cli", "plan", "--kubeconfig",
                                   engine.fleet.management.kubeconfig, name],
                                  capture_output=True, text=True, timeout=180)
            assert plan.returncode == 0, plan.stderr
            assert f"would remove CRD {CSC_CRD} from the release; kept" in plan.stdout, \
                plan.stdout
            _pause(mgmt, cluster, False)

            def upgraded() -> bool:
                status = json.loads(helm("status", "kserve-crd", "-n", ns, "-o", "json"))
                return status["version"] == 2 and status["info"]["status"] == "deployed"

            eventually(upgraded, timeout=180, what="kserve-crd upgraded to revision 2")
            # The scenario happened: the new revision no longer lists the CRD...
            assert CSC_CRD not in helm("get", "manifest", "kserve-crd", "-n", ns)
            # ...and yet the CRD and the object of its kind are still there.
            assert target.get("crd", CSC_CRD) is not None
            assert target.get("clusterstoragecontainer", "flotilla-e2e") is not None
            engine.wait_ready(name, 1, timeout=120)

            # Withdrawal uninstalls the release; annotated CRDs stay, with their objects.
            mgmt("delete", "clusterprofile", name, "--timeout=120s", timeout=150)
            eventually(lambda: json.loads(helm("list", "-n", ns, "-o", "json")) == [],
                       what="release uninstalled")
            assert target.get("crd", "inferenceservices.serving.kserve.io") is not None
            assert target.get("clusterstoragecontainer", "flotilla-e2e") is not None
        finally:
            _pause(mgmt, cluster, False)
            mgmt("delete", "clusterprofile", name, "--ignore-not-found", "--timeout=120s",
                 timeout=150, check=False)
            target("delete", "clusterstoragecontainer", "flotilla-e2e", "--ignore-not-found",
                   check=False)
            crds = target("get", "crd", "-o", "name", check=False).split()
            kserve = [c for c in crds if c.endswith(".serving.kserve.io")]
            if kserve:
                # Not waited for: the API server removes the CRDs' objects first, which can
                # take longer than a test should, and nothing later needs them gone at once.
                target("delete", *kserve, "--ignore-not-found", "--wait=false", check=False,
                       timeout=120)
            target("delete", "namespace", ns, "--ignore-not-found", "--wait=false", check=False)


class TestHelmHooks:
    """A hook helm waits on is visible while it waits, fails as such, and is not papered over."""

    def test_hook_progress_timeout_and_install_retry(self, engine: Engine, mgmt: Kubectl,
                                                     tmp_path: Path) -> None:
        name, cluster, ns = f"hook-{_uid()}", "cluster-6", f"hook-{_uid()}"
        target = engine.cluster(cluster)
        helm = Helm(engine.kubeconfig(cluster), tmp_path)

        def chart(hook: bool) -> str:
            return (f"  - {{repositoryURL: '{engine.repo.url}', chartName: hook-app, "
                    f"chartVersion: 0.1.0, releaseName: hooked, releaseNamespace: {ns}, "
                    f"values: {{hook: {{enabled: {str(hook).lower()}}}}}, "
                    f"options: {{timeout: 25s, description: flotilla-e2e}}}}\n")

        try:
            mgmt.apply(_profile(name, cluster, chart(hook=True)))

            def waiting() -> dict[str, Any] | None:
                row = _row(mgmt, name, "hooked")
                message = str(row.get("message", ""))
                return row if row.get("status") == "Provisioning" and "helm install running" \
                    in message and "waiting for hook Job hooked-check (post-install)" \
                    in message else None

            row = eventually(waiting, timeout=30, interval=0.5, what="progress in the row")
            summary = _summary(mgmt, name) or {}
            assert summary["status"]["phase"] == "Provisioning"

            def failed(count: int) -> Any:
                def probe() -> dict[str, Any] | None:
                    row = _row(mgmt, name, "hooked")
                    done = row.get("status") == "Failed" and \
                        int(row.get("consecutiveFailures", 0)) >= count
                    return row if done else None
                return probe

            row = eventually(failed(1), timeout=60, interval=0.5, what="hook timeout reported")
            assert row["reason"] == "HookTimeout", row
            assert "hook Job hooked-check (post-install)" in row["message"], row
            # The retry is an install again (the failed revision 1 replaced by a new
            # revision 1), never an upgrade that would skip the hook and pass.
            row = eventually(failed(2), timeout=90, interval=0.5, what="second attempt")
            assert row["reason"] == "HookTimeout", row
            history = json.loads(helm("history", "hooked", "-n", ns, "-o", "json"))
            assert [h["revision"] for h in history] == [1], history
            assert history[0]["status"] == "failed"

            # Without the hook the install goes through, as an install.
            mgmt.apply(_profile(name, cluster, chart(hook=False)))
            engine.wait_ready(name, 1, timeout=90)
            status = json.loads(helm("status", "hooked", "-n", ns, "-o", "json"))
            assert status["version"] == 1 and status["info"]["status"] == "deployed"
            assert status["info"]["description"] == "flotilla-e2e"
            assert _row(mgmt, name, "hooked")["status"] == "Provisioned"
        finally:
            mgmt("delete", "clusterprofile", name, "--ignore-not-found", "--timeout=120s",
                 timeout=150, check=False)
            target("delete", "namespace", ns, "--ignore-not-found", "--wait=false", check=False)

    def test_failed_hook_job_on_a_full_cluster(self, engine: Engine, mgmt: Kubectl,
                                               tmp_path: Path) -> None:
        """The node simulator fails the hook's pod: HookFailed, naming the Job; then it passes."""
        name, cluster, ns = f"hookf-{_uid()}", "cluster-2", f"hookf-{_uid()}"
        target = engine.cluster(cluster)
        helm = Helm(engine.kubeconfig(cluster), tmp_path)

        def chart(fail: bool) -> str:
            return (f"  - {{repositoryURL: '{engine.repo.url}', chartName: hook-app, "
                    f"chartVersion: 0.1.0, releaseName: checked, releaseNamespace: {ns}, "
                    f"values: {{hook: {{fail: {str(fail).lower()}}}}}, "
                    f"options: {{timeout: 60s}}}}\n")

        try:
            mgmt.apply(_profile(name, cluster, chart(fail=True)))

            def failed() -> dict[str, Any] | None:
                row = _row(mgmt, name, "checked")
                return row if row.get("status") == "Failed" else None

            row = eventually(failed, timeout=90, interval=0.5, what="hook failure reported")
            assert row["reason"] == "HookFailed", row
            assert "hook Job checked-check (post-install) failed" in row["message"], row

            mgmt.apply(_profile(name, cluster, chart(fail=False)))
            engine.wait_ready(name, 1, timeout=90)
            status = json.loads(helm("status", "checked", "-n", ns, "-o", "json"))
            assert status["version"] == 1 and status["info"]["status"] == "deployed"
            job = target.get("job", "checked-check", "-n", ns)
            assert job and (job.get("status") or {}).get("succeeded") == 1
        finally:
            mgmt("delete", "clusterprofile", name, "--ignore-not-found", "--timeout=120s",
                 timeout=150, check=False)
            target("delete", "namespace", ns, "--ignore-not-found", "--wait=false", check=False)
