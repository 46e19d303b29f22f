"""On a full dev-fleet cluster Jobs finish: the node simulator ends run-to-completion pods.

The real Job controller turns a Succeeded pod into a Complete Job and a pod the
`flotilla.dev/sim-fail` annotation fails into a Failed Job; real helm gets past a
post-install hook Job; a pod that restarts Always keeps running.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fleetkit import Helm, Kubectl, condition

from engine.devfleet import fleet as devfleet
from engine.devfleet import nodesim


@pytest.fixture
def kubectl(full_cluster: devfleet.Cluster) -> Kubectl:
    return Kubectl(full_cluster.kubeconfig)


@pytest.fixture
def ns(kubectl: Kubectl) -> Iterator[str]:
    name = f"jobs-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", check=False)


def _job(name: str, ns: str, *, fail: bool = False) -> str:
    annotations = f'{{{nodesim.FAIL_ANNOTATION}: "true"}}' if fail else "{}"
    return f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: {name}, namespace: {ns}}}
spec:
  backoffLimit: 0
  template:
    metadata: {{annotations: {annotations}}}
    spec:
      restartPolicy: Never
      containers: [{{name: main, image: registry.invalid/job:1}}]
"""


def _pod_of(kubectl: Kubectl, ns: str, job: str) -> dict[str, Any]:
    pods = kubectl.json("get", "pods", "-n", ns, "-l", f"job-name={job}")["items"]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    pod: dict[str, Any] = pods[0]
    return pod


def test_job_completes_and_its_pod_succeeded(kubectl: Kubectl, ns: str) -> None:
    # A pod that restarts Always, running before the Job starts, must outlive the Job's pod.
    kubectl("run", "server", "-n", ns, "--image=registry.invalid/server:1", "--restart=Always")
    kubectl("wait", "-n", ns, "--for=condition=Ready", "pod/server", "--timeout=60s", timeout=90)
    kubectl.apply(_job("ok", ns))
    kubectl("wait", "-n", ns, "--for=condition=Complete", "job/ok", "--timeout=60s", timeout=90)

    pod = _pod_of(kubectl, ns, "ok")
    assert pod["status"]["phase"] == "Succeeded"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0 and terminated["reason"] == "Completed"
    ready = condition(pod, "Ready")
    assert ready is not None and ready["status"] == "False"
    assert ready["reason"] == "PodCompleted"
    assert kubectl.json("get", "job", "ok", "-n", ns)["status"]["succeeded"] == 1

    server = kubectl.json("get", "pod", "server", "-n", ns)
    assert server["status"]["phase"] == "Running"
    assert "running" in server["status"]["containerStatuses"][0]["state"]


def test_annotated_job_fails(kubectl: Kubectl, ns: str) -> None:
    kubectl.apply(_job("bad", ns, fail=True))
    kubectl("wait", "-n", ns, "--for=condition=Failed", "job/bad", "--timeout=60s", timeout=90)

    job = kubectl.json("get", "job", "bad", "-n", ns)
    assert job["status"]["failed"] == 1 and not job["status"].get("succeeded")
    assert condition(job, "Complete") is None
    pod = _pod_of(kubectl, ns, "bad")
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 1


def test_helm_waits_for_a_hook_job_and_finishes(full_cluster: devfleet.Cluster, ns: str,
                                                tmp_path: Path) -> None:
    chart = tmp_path / "hooked"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: hooked\nversion: 0.1.0\n")
    (chart / "templates" / "check.yaml").write_text("""
apiVersion: batch/v1
kind: Job
metadata:
  name: startupapicheck
  annotations: {"helm.sh/hook": post-install, "helm.sh/hook-delete-policy": before-hook-creation}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: OnFailure
      containers: [{name: check, image: registry.invalid/check:1}]
""")
    helm = Helm(full_cluster.kubeconfig, tmp_path / "helm")
    # Without the simulator finishing the hook's pod, helm would sit here until its timeout.
    helm("install", "hooked", str(chart), "-n", ns, "--timeout", "60s")
    release = json.loads(helm("status", "hooked", "-n", ns, "-o", "json"))
    assert release["info"]["status"] == "deployed"
    job = Kubectl(full_cluster.kubeconfig).json("get", "job", "startupapicheck", "-n", ns)
    assert condition(job, "Complete") is not None
