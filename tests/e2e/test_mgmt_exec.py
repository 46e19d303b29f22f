"""The controller logs in to the management cluster through an exec credential plugin.

Running outside the management cluster (a laptop, CI, another cluster) means
a kubeconfig as the cloud hands it out: an exec plugin with short-lived
tokens. kopf's watches and our own client both log in through the plugin
(tests/e2e/plugins/mint_token.py mints ServiceAccount tokens and claims they
expire in 15 s), and the controller keeps deploying after that expiry.
"""

from __future__ import annotations

import datetime
import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fleetkit import FLEET_NS, Engine, Kubectl, bins, eventually

PLUGIN = Path(__file__).resolve().parent / "plugins" / "mint_token.py"
SA_NS, SA = "flotilla-system", "flotilla-exec-login"
EXPIRES = 15  # seconds: the expiry the plugin claims for each token


def calls(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture
def exec_engine(engine: Engine, mgmt: Kubectl, tmp_path: Path) -> Iterator[tuple[Engine, Path]]:
    """The session controller stopped; one logging in through the plugin runs instead."""
    mgmt("create", "serviceaccount", "-n", SA_NS, SA, check=False)
    mgmt("create", "clusterrolebinding", SA, "--clusterrole", "cluster-admin",
         f"--serviceaccount={SA_NS}:{SA}", check=False)
    admin = str(engine.fleet.management.kubeconfig)
    log = tmp_path / "plugin-calls.jsonl"
    doc: dict[str, Any] = yaml.safe_load(Path(admin).read_text())
    env = {"MINT_KUBECTL": str(bins() / "kubectl"), "MINT_ADMIN": admin,
           "MINT_SA": f"{SA_NS}/{SA}", "MINT_LOG": str(log), "MINT_EXPIRES": str(EXPIRES)}
    doc["users"][0]["user"] = {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
        "args": [str(PLUGIN)], "env": [{"name": k, "value": v} for k, v in env.items()],
        "interactiveMode": "Never"}}
    kubeconfig = tmp_path / "mgmt-exec.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(doc))
    kubeconfig.chmod(0o600)
    engine.stop()
    replica = Engine(engine.fleet, engine.repo, mgmt, tmp_path, kubeconfig=str(kubeconfig))
    replica.start()
    try:
        yield replica, log
    finally:
        replica.stop()
        engine.start()
        mgmt("delete", "clusterrolebinding", SA, check=False)
        mgmt("delete", "serviceaccount", "-n", SA_NS, SA, check=False)


def test_controller_logs_in_through_an_exec_plugin(exec_engine: tuple[Engine, Path],
                                                   mgmt: Kubectl) -> None:
    replica, log = exec_engine
    uid = uuid.uuid4().hex[:6]
    name, ns = f"mx-{uid}", f"mx-app-{uid}"
    cluster = [c.name for c in replica.fleet.clusters if not c.full][-1]
    workload = replica.cluster(cluster)

    def objects(version: str) -> str:
        return json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": name, "namespace": "flotilla-system"},
                           "data": {"objects.yaml": (
                               f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n"
                               f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: app, "
                               f"namespace: {ns}}}\ndata: {{version: \"{version}\"}}\n")}})

    def version() -> str | None:
        found = workload.get("configmap", "app", "-n", ns) or {}
        return (found.get("data") or {}).get("version")  # type: ignore[no-any-return]

    mgmt.apply(objects("1"))
    mgmt.apply(f"""
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  clusterSelector: {{matchLabels: {{{name}: "on"}}}}
  policyRefs: [{{kind: ConfigMap, namespace: flotilla-system, name: {name}}}]
""")
    try:
        mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{name}=on")
        eventually(lambda: version() == "1", timeout=60, what="deployed through the plugin")
        logins = calls(log)
        # The claimed expiry passes. An idle controller asks nothing of the management
        # cluster (no polling), so nothing needs a token until the next change: that change
        # still arrives (the watches stay logged in) and what it writes asks the plugin again.
        expired = datetime.datetime.fromisoformat(logins[-1]["time"]) + datetime.timedelta(
            seconds=EXPIRES + 1)
        eventually(lambda: datetime.datetime.now(datetime.UTC) > expired, timeout=EXPIRES + 5,
                   interval=0.5, what="the last token's claimed expiry")
        mgmt.apply(objects("2"))
        eventually(lambda: version() == "2", timeout=60, what="deployed after the expiry")
        assert len(calls(log)) > len(logins), "no fresh token asked for after the expiry"
        assert not any(line for line in (replica.workdir / "controller-1.log").read_text()
                       .splitlines() if "Unauthorized" in line or " 401 " in line)
    finally:
        mgmt("delete", "clusterprofile", name, "--wait=false", check=False)
        mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{name}-", check=False)
        mgmt("delete", "configmap", "-n", "flotilla-system", name, check=False)
