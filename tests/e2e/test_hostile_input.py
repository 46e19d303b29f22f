"""Generated hostile input (tests/hostilekit.py) against the real API server and controller.

≥ 200 objects, drawn with a fixed seed (printed) while a good profile is deployed:
each is rejected by the schema, rejected by a CEL rule, or accepted; every accepted
wrong variant gets a Ready=False condition naming its field. Afterwards: the
controller is alive with no unhandled traceback in its log, and the good profile's
objects kept their resourceVersion (which, as a positive control, does change when
the good profile itself is edited).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

import hostilekit
import pytest
from fleetkit import FLEET_NS, Engine, Kubectl, condition, eventually
from hypothesis import HealthCheck, Phase, given, seed, settings

# Unfinished (issue 12 item 2): too slow (one kubectl per object, ~4.6 min for 60) and a
# Profile's wrong values only fail once a cluster in its namespace matches; see the report.
pytestmark = pytest.mark.skip(reason="unfinished: runtime and per-variant expectations")

SEED = int(os.environ.get("FLOTILLA_HOSTILE_SEED", "20261202"))
COUNT = int(os.environ.get("FLOTILLA_HOSTILE_COUNT", "220"))
GOOD = "hx-good"


def draw(count: int = COUNT,
         namespace: str = "hx-tenant") -> list[tuple[dict[str, Any], str, str]]:
    out: list[tuple[dict[str, Any], str, str]] = []

    @seed(SEED)
    @settings(max_examples=count, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(hostilekit.objects(namespace))
    def collect(obj: tuple[dict[str, Any], str, str]) -> None:
        out.append(obj)
    collect()
    return out


def apply(mgmt: Kubectl, body: dict[str, Any]) -> tuple[str, str]:
    """("accepted"|"schema"|"cel", error text) for one object."""
    proc = mgmt.run("apply", "-f", "-", input=json.dumps(body), check=False)
    if proc.returncode == 0:
        return "accepted", ""
    err = proc.stderr
    if any(msg in err for msg in CEL):
        return "cel", err
    return "schema", err


CEL = hostilekit.cel_messages()


def run(engine: Engine, mgmt: Kubectl) -> dict[str, int]:
    """The whole scenario; returns the table (used by bench/hostile.py too)."""
    ns = "hx-tenant"
    mgmt("create", "namespace", ns, check=False)
    mgmt("label", "workloadcluster", "-n", FLEET_NS, "cluster-2", "hostile=on", "--overwrite")
    mgmt("label", "workloadcluster", "-n", FLEET_NS, "cluster-1", "hx-good=on", "--overwrite")
    mgmt.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {GOOD}, namespace: {FLEET_NS}}}
data:
  cm.yaml: "{{apiVersion: v1, kind: ConfigMap, metadata: {{name: {GOOD}, namespace: default}},
            data: {{v: '1'}}}}"
---
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {GOOD}}}
spec:
  tier: 10
  clusterSelector: {{matchLabels: {{hx-good: "on"}}}}
  policyRefs: [{{kind: ConfigMap, namespace: {FLEET_NS}, name: {GOOD}}}]
""")
    target = engine.cluster("cluster-1")
    good = eventually(lambda: target.get("configmap", GOOD, "-n", "default"), timeout=60,
                      what="good profile deployed")
    rv = good["metadata"]["resourceVersion"]
    counts: Counter[str] = Counter()
    expect: list[tuple[str, str, str, str]] = []
    drawn = draw(namespace=ns)
    print(f"hostile input: seed {SEED}, {len(drawn)} objects")
    try:
        for body, _variant, field in drawn:
            counts["generated"] += 1
            verdict, _ = apply(mgmt, body)
            counts[verdict] += 1
            if verdict == "accepted" and field:
                meta = body["metadata"]
                expect.append((body["kind"], meta.get("namespace", ""), meta["name"], field))
        for kind, namespace, name, field in expect:
            args = [kind.lower(), name] + (["-n", namespace] if namespace else [])

            def named(args: list[str] = args, field: str = field) -> dict[str, Any] | None:
                cond = condition(mgmt.get(*args), "Ready")
                return cond if cond and cond["status"] == "False" and field in cond.get(
                    "message", "") else None
            eventually(named, timeout=60, what=f"{kind} {name}: a condition naming {field}")
            counts["conditions"] += 1
        assert engine.proc is not None and engine.proc.poll() is None, "controller died"
        log = (engine.workdir / f"controller-{engine.starts}.log").read_text(errors="replace")
        counts["crashes"] = log.count("Traceback (most recent call last)")
        after = target.get("configmap", GOOD, "-n", "default") or {}
        counts["good_touched"] = int(after["metadata"]["resourceVersion"] != rv)
        # Positive control: editing the good profile's content does change the rV.
        mgmt("patch", "configmap", GOOD, "-n", FLEET_NS, "--type=merge", "-p", json.dumps(
            {"data": {"cm.yaml": f"{{apiVersion: v1, kind: ConfigMap, metadata: {{name: {GOOD},"
                                 f" namespace: default}}, data: {{v: '2'}}}}"}}))
        eventually(lambda: (target.get("configmap", GOOD, "-n", "default") or {}).get(
            "data", {}).get("v") == "2", timeout=60, what="the good profile's edit applied")
    finally:
        for kind in ("clusterprofile", "catalogservice"):
            names = [i["metadata"]["name"] for i in mgmt.json("get", kind)["items"]
                     if i["metadata"]["name"].startswith(hostilekit.PREFIX)]
            if names:
                mgmt("delete", kind, *names, "--wait=false", check=False)
        mgmt("delete", "namespace", ns, "--wait=false", check=False)
        mgmt("label", "workloadcluster", "-n", FLEET_NS, "cluster-2", "hostile-", check=False)
    return dict(counts)


def test_hostile_input(engine: Engine, mgmt: Kubectl) -> None:
    table = run(engine, mgmt)
    print(table)
    assert table["generated"] >= 200
    assert table["crashes"] == 0 and table["good_touched"] == 0
