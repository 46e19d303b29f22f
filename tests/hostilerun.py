"""The hostile-input scenario: apply generated objects to a running fleet, count, check.

Used by tests/e2e/test_hostile_input.py (bounded) and bench/hostile.py (the
table). A good ClusterProfile (tier 10) deploys one ConfigMap to cluster-1;
cluster-1 is also registered in the tenant namespace and, with cluster-2,
labelled `hostile=on`, so hostile profiles reach the good object's cluster.
Then every drawn object is created through the API server's REST interface
and sorted by its answer: rejected by the schema, rejected by a CEL rule
(its message is one of the CRDs' x-kubernetes-validations messages), or
accepted. Each accepted wrong variant must get a condition naming its field.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from typing import Any

import hostilekit
from fleetkit import FLEET_NS, Engine, Kubectl, condition, eventually
from hypothesis import HealthCheck, Phase, given, seed, settings

from engine.adapters import kube, kubeconfig
from engine.cli import admin

GOOD = "hx-good"


@dataclasses.dataclass
class Table:
    generated: int = 0
    schema: int = 0
    cel: int = 0
    accepted: int = 0
    conditions: int = 0
    missing: list[str] = dataclasses.field(default_factory=list)  # accepted, no named condition
    crashes: int = 0
    good_touched: int = 0
    seconds: float = 0.0


def draw(count: int, seed_: int, repo_url: str,
         tenant: str) -> list[tuple[dict[str, Any], str, str]]:
    """`count` objects: half drawn from the schemas alone, half spread over every wrong
    variant (each its own hypothesis run, so none is left out by chance)."""
    out: list[tuple[dict[str, Any], str, str]] = []
    variants = sorted(hostilekit.WRONG)
    per = max(1, (count - count // 2) // len(variants))
    plan = [("schema", count - per * len(variants))] + [(v, per) for v in variants]
    for i, (variant, n) in enumerate(plan):
        @seed(seed_ + i)
        @settings(max_examples=n, database=None, phases=[Phase.generate], deadline=None,
                  suppress_health_check=list(HealthCheck))
        @given(hostilekit.objects(repo_url, variant, tenant))
        def collect(obj: tuple[dict[str, Any], str, str]) -> None:
            out.append(obj)
        collect()
    # Hypothesis draws the same small names again and again: number them, so each object
    # is judged for what it is, not refused as AlreadyExists.
    for k, (body, _, _) in enumerate(out):
        old = body["metadata"]["name"]
        body["metadata"]["name"] = f"{old}-{k}"
        spec = body["spec"]
        if isinstance(spec.get("dependsOn"), list):  # the cyclic variant names itself
            spec["dependsOn"] = [f"{old}-{k}" if d == old else d for d in spec["dependsOn"]]
    return out


async def _create_all(path: str, objs: list[dict[str, Any]]) -> list[str]:
    """"accepted", or the API server's error text, for each object in order."""
    client = kube.Client(kubeconfig.load(path), name="management")
    out = []
    try:
        for obj in objs:
            try:
                await client.create(obj)
                out.append("accepted")
            except kube.ApiError as exc:
                out.append(str(exc))
    finally:
        await client.close()
    return out


def _setup(engine: Engine, mgmt: Kubectl, tenant: str) -> str:
    mgmt("create", "namespace", tenant, check=False)
    mgmt("annotate", "namespace", tenant, "flotilla.dev/min-tier=100", "--overwrite")
    c1 = next(c for c in engine.fleet.clusters if c.name == "cluster-1")
    admin.register(engine.fleet.management.kubeconfig, namespace=tenant, name="cluster-1",
                   cluster_kubeconfig=c1.kubeconfig, labels={"hostile": "on"})
    mgmt("label", "workloadcluster", "-n", FLEET_NS, "cluster-2", "hostile=on", "--overwrite")
    mgmt("label", "workloadcluster", "-n", FLEET_NS, "cluster-1", "hx-good=on", "--overwrite")
    good_cm = (f"{{apiVersion: v1, kind: ConfigMap, metadata: {{name: {GOOD}, "
               f"namespace: default}}, data: {{v: '1'}}}}")
    mgmt.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {GOOD}, namespace: {FLEET_NS}}}
data: {{cm.yaml: "{good_cm}"}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: hx-steal, namespace: {tenant}}}
data: {{cm.yaml: "{good_cm.replace("'1'", "stolen")}"}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: hx-clusterrole, namespace: {tenant}}}
data: {{cr.yaml: "{{apiVersion: rbac.authorization.k8s.io/v1, kind: ClusterRole,
        metadata: {{name: hx-tenant-role}}, rules: []}}"}}
---
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {GOOD}}}
spec:
  tier: 10
  clusterSelector: {{matchLabels: {{hx-good: "on"}}}}
  policyRefs: [{{kind: ConfigMap, namespace: {FLEET_NS}, name: {GOOD}}}]
""")
    # Ready, not merely present: creating an object is three writes (create, apply, then
    # dropping the create's field ownership), and a resourceVersion read between them
    # would change later with no hostile profile involved.
    engine.wait_ready(GOOD, 1, timeout=90)
    good = engine.cluster("cluster-1").get("configmap", GOOD, "-n", "default")
    assert good is not None, "the good profile is Ready but its object is missing"
    return str(good["metadata"]["resourceVersion"])


def _messages(mgmt: Kubectl, tenant: str) -> dict[tuple[str, str], str]:
    """(kind, name) → every message the profile shows: its Ready condition, and the
    status, rows and conditions of its summaries (three listings, whatever the count)."""
    out: dict[tuple[str, str], str] = {}
    for kind, args in (("ClusterProfile", ["clusterprofiles"]),
                       ("Profile", ["profiles", "-n", tenant])):
        for item in mgmt.json("get", *args)["items"]:
            cond = condition(item, "Ready") or {}
            out[(kind, item["metadata"]["name"])] = str(cond.get("message"))
    for summary in mgmt.json("get", "clustersummaries", "-A")["items"]:
        ref = summary["spec"].get("profileRef") or {}
        st = summary.get("status") or {}
        texts = [str(st.get("message"))]
        texts += [str(r.get("message")) for r in st.get("services") or []]
        texts += [str(c.get("message")) for c in st.get("conditions") or []]
        key = (str(ref.get("kind")), str(ref.get("name")))
        out[key] = " | ".join([out.get(key, ""), *texts])
    return out


def run(engine: Engine, mgmt: Kubectl, *, count: int, seed_: int,
        wait: float = 60.0) -> Table:
    """Apply `count` drawn objects while the good profile is deployed; the table."""
    table = Table()
    start = time.monotonic()
    cleanup(mgmt)  # an earlier run stopped halfway must not decide this one
    # A namespace of the management cluster never finishes deleting here (no namespace
    # controller): each run has its own tenant namespace.
    tenant = f"{hostilekit.TENANT}-{uuid.uuid4().hex[:6]}"
    rv = _setup(engine, mgmt, tenant)
    target = engine.cluster("cluster-1")
    print(f"hostile: setup {time.monotonic() - start:.1f} s")
    drawn = draw(count, seed_, engine.repo.url, tenant)
    answers = asyncio.run(_create_all(str(engine.fleet.management.kubeconfig),
                                      [body for body, _, _ in drawn]))
    cel = hostilekit.cel_messages()
    expect: dict[tuple[str, str], str] = {}
    for (body, variant, field), answer in zip(drawn, answers, strict=True):
        table.generated += 1
        assert "AlreadyExists" not in answer, f"left over from an earlier run: {answer}"
        if answer == "accepted":
            table.accepted += 1
            if field:
                expect[(body["kind"], body["metadata"]["name"])] = f"{variant}:{field}"
        elif any(msg in answer for msg in cel):
            table.cel += 1
        else:
            table.schema += 1
    print(f"hostile: drawn and created {time.monotonic() - start:.1f} s")
    deadline = time.monotonic() + wait
    pending = dict(expect)
    while pending and time.monotonic() < deadline:
        shown = _messages(mgmt, tenant)
        for key, what in list(pending.items()):
            if what.split(":", 1)[1] in shown.get(key, ""):
                table.conditions += 1
                del pending[key]
        time.sleep(1)
    table.missing = sorted(f"{k} {n} ({w})" for (k, n), w in pending.items())
    assert engine.proc is not None and engine.proc.poll() is None, "the controller died"
    log = (engine.workdir / f"controller-{engine.starts}.log").read_text(errors="replace")
    table.crashes = log.count("Traceback (most recent call last)")
    after = target.get("configmap", GOOD, "-n", "default") or {}
    table.good_touched = int((after.get("metadata") or {}).get("resourceVersion") != rv)
    table.seconds = time.monotonic() - start
    return table


def positive_control(engine: Engine, mgmt: Kubectl) -> str:
    """Editing the good profile's content does change its object's resourceVersion."""
    target = engine.cluster("cluster-1")
    before = (target.get("configmap", GOOD, "-n", "default") or {})["metadata"]["resourceVersion"]
    edited = (f"{{apiVersion: v1, kind: ConfigMap, metadata: {{name: {GOOD}, "
              f"namespace: default}}, data: {{v: '2'}}}}")
    mgmt("patch", "configmap", GOOD, "-n", FLEET_NS, "--type=merge", "-p",
         json.dumps({"data": {"cm.yaml": edited}}))
    after = eventually(lambda: (target.get("configmap", GOOD, "-n", "default") or {}).get(
        "data", {}).get("v") == "2" and target.get("configmap", GOOD, "-n", "default"),
        timeout=60, what="the good profile's edit applied")
    rv = str(after["metadata"]["resourceVersion"])
    assert rv != before
    return rv


def cleanup(mgmt: Kubectl) -> None:
    """Everything the scenario made, profiles first (their withdrawal needs the clusters)."""
    for kind in ("clusterprofile", "catalogservice"):
        names = [i["metadata"]["name"] for i in mgmt.json("get", kind)["items"]
                 if i["metadata"]["name"].startswith(hostilekit.PREFIX)]
        if names:
            mgmt("delete", kind, *names, "--timeout=180s", check=False)
    for ns in [i["metadata"]["name"] for i in mgmt.json("get", "namespaces")["items"]
               if i["metadata"]["name"].startswith(hostilekit.TENANT)]:
        mgmt("delete", "profiles", "--all", "-n", ns, "--timeout=180s", check=False)
        mgmt("delete", "workloadclusters,configmaps", "--all", "-n", ns, "--timeout=60s",
             check=False)
        mgmt("delete", "namespace", ns, "--wait=false", check=False)
    mgmt("label", "workloadcluster", "-n", FLEET_NS, "cluster-2", "hostile-", check=False)
    mgmt("label", "workloadcluster", "-n", FLEET_NS, "cluster-1", "hx-good-", check=False)
