"""Generated hostile input (tests/hostilekit.py, tests/hostilerun.py) on the real fleet.

≥ 200 objects drawn with a fixed seed (printed; FLOTILLA_HOSTILE_SEED replays
another) are created while a good profile is deployed. Each is rejected by the
schema, rejected by a CEL rule, or accepted; every accepted wrong variant gets
a condition naming its field; the controller stays up with no unhandled
traceback; the good profile's object keeps its resourceVersion, which (the
positive control) does change when the good profile itself is edited.
"""

from __future__ import annotations

import os

import hostilerun
from fleetkit import Engine, Kubectl

SEED = int(os.environ.get("FLOTILLA_HOSTILE_SEED", "20261202"))
COUNT = int(os.environ.get("FLOTILLA_HOSTILE_COUNT", "220"))


def test_hostile_input(engine: Engine, mgmt: Kubectl) -> None:
    print(f"hostile input: seed {SEED} (replay with FLOTILLA_HOSTILE_SEED={SEED})")
    try:
        table = hostilerun.run(engine, mgmt, count=COUNT, seed_=SEED)
        print(table)
        assert table.generated >= min(COUNT, 200)
        assert table.schema > 0 and table.accepted > 0
        assert table.crashes == 0, "unhandled traceback in the controller log"
        assert table.good_touched == 0, "a hostile profile touched the good profile's object"
        assert not table.missing, f"accepted without a condition naming the field: " \
                                  f"{table.missing}"
        hostilerun.positive_control(engine, mgmt)
    finally:
        hostilerun.cleanup(mgmt)


def test_apply_with_characters_beyond_the_bmp(mgmt: Kubectl, namespace: str) -> None:
    """Regression: server-side apply of a value with an emoji was a 400 from the API server
    (a Profile with one in its spec could never store its revision)."""
    import asyncio

    from engine.adapters import kube, kubeconfig

    async def go() -> None:
        client = kube.Client(kubeconfig.load(mgmt.kubeconfig), name="management")
        try:
            await client.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
                "name": "astral", "namespace": namespace}, "data": {"k": "😀 \x85 日本"}})
        finally:
            await client.close()
    asyncio.run(go())
    assert (mgmt.get("configmap", "astral", "-n", namespace) or {})["data"]["k"] == "😀 \x85 日本"


def test_cluster_in_a_namespace_being_deleted(engine: Engine, mgmt: Kubectl) -> None:
    """Regression: a ClusterProfile selecting a cluster whose namespace is being deleted
    failed its whole reconcile (403) over and over, holding up its other clusters."""
    import uuid

    from fleetkit import FLEET_NS, eventually

    from engine.cli import admin

    uid = uuid.uuid4().hex[:6]
    ns, name, label = f"gone-{uid}", f"gone-{uid}", f"gone-{uid}"
    cluster = next(c for c in engine.fleet.clusters if c.name == "cluster-2")
    mgmt("create", "namespace", ns)
    admin.register(engine.fleet.management.kubeconfig, namespace=ns, name="cluster-2",
                   cluster_kubeconfig=cluster.kubeconfig, labels={label: "on"})
    # No namespace controller runs on the dev fleet's management cluster: the namespace
    # stays Terminating with its WorkloadCluster in it, as a slow deletion would.
    mgmt("delete", "namespace", ns, "--wait=false")
    mgmt("label", "workloadcluster", "-n", FLEET_NS, "cluster-1", f"{label}=on")
    log = engine.workdir / f"controller-{engine.starts}.log"
    before = log.read_text(errors="replace").count(f"'{name}') failed")
    mgmt.apply(f"""
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
""")
    try:
        summary = f"cp-{name}-cluster-1"
        eventually(lambda: ((mgmt.get("clustersummary", summary, "-n", FLEET_NS) or {}).get(
            "status") or {}).get("phase") == "Provisioned" or None, timeout=60,
            what="deployed to the cluster that is not going away")
        assert engine.profile(name)["status"]["matched"] == 2
        assert log.read_text(errors="replace").count(f"'{name}') failed") == before
    finally:
        mgmt("delete", "clusterprofile", name, "--timeout=60s", check=False)
        mgmt("delete", "workloadcluster", "--all", "-n", ns, check=False)
        mgmt("label", "workloadcluster", "-n", FLEET_NS, "cluster-1", f"{label}-", check=False)
