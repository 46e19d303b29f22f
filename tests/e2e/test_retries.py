"""Failed deployments are retried with growing spacing, given up after 5, and retried on request.

The failure is real and retriable: a policyRef object of a kind the workload
cluster does not serve (its CRD might appear later). Spacing is read from
the status the controller writes (each failed attempt's time and the next
retry time it announced), never from the test's own clock.
"""

from __future__ import annotations

import datetime
import subprocess
import sys
import uuid
from typing import Any

from fleetkit import FLEET_NS, Engine, Kubectl, eventually

CLUSTER = "cluster-5"


def _ts(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class TestBoundedRetries:
    """1 s, 2 s, 4 s, 8 s (±20 %) between attempts; FailedNonRetriable at the fifth."""

    def test_backoff_give_up_and_retry(self, engine: Engine, mgmt: Kubectl) -> None:
        name, label = f"rt-{uuid.uuid4().hex[:6]}", f"t-{uuid.uuid4().hex[:6]}"
        summary = f"cp-{name}-{CLUSTER}"
        mgmt.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: flotilla-system}}
data:
  bad.yaml: |
    apiVersion: example.invalid/v1
    kind: NotServed
    metadata: {{name: x, namespace: default}}
---
apiVersion: flotilla.dev/v1alpha1
kind: ClusterProfile
metadata: {{name: {name}}}
spec:
  clusterSelector: {{matchLabels: {{{label}: "on"}}}}
  policyRefs: [{{kind: ConfigMap, namespace: flotilla-system, name: {name}}}]
""")
        mgmt("label", "workloadcluster", "-n", FLEET_NS, CLUSTER, f"{label}=on")
        try:
            seen: dict[int, tuple[float, float | None]] = {}  # failures -> (attempt, next)

            def row() -> dict[str, Any] | None:
                st = (mgmt.get("clustersummary", summary, "-n", FLEET_NS) or {}).get(
                    "status") or {}
                rows = st.get("services") or []
                if rows and rows[0].get("consecutiveFailures"):
                    nxt = st.get("nextRetryTime")
                    seen.setdefault(rows[0]["consecutiveFailures"],
                                    (_ts(rows[0]["lastAttemptTime"]), _ts(nxt) if nxt else None))
                return rows[0] if rows and rows[0]["status"] == "FailedNonRetriable" else None

            final = eventually(row, timeout=60, interval=0.1, what="FailedNonRetriable")
            assert final["consecutiveFailures"] == 5 and final["reason"] == "UnknownKind"
            assert "gave up after 5 consecutive failures" in final["message"]
            assert 5 in seen and len(seen) >= 4, seen
            for k in sorted(seen):
                if k + 1 not in seen:
                    continue
                attempt, announced = seen[k]
                following = seen[k + 1][0]
                wanted = 2.0 ** (k - 1)  # after the k-th failure
                assert following - attempt >= 0.8 * wanted - 0.25, (k, seen)
                assert announced is not None and following >= announced - 0.25, (k, seen)
            last = _ts(final["lastAttemptTime"])

            subprocess.run([sys.executable, "-m", "engine.cli", "retry", name, "--cluster",
                            CLUSTER, "--kubeconfig", engine.fleet.management.kubeconfig],
                           check=True, capture_output=True)

            def restarted() -> dict[str, Any] | None:
                st = (mgmt.get("clustersummary", summary, "-n", FLEET_NS) or {}).get(
                    "status") or {}
                r = (st.get("services") or [{}])[0]
                fresh = r.get("lastAttemptTime") and _ts(r["lastAttemptTime"]) > last
                return r if fresh and r["consecutiveFailures"] < 5 else None

            again = eventually(restarted, timeout=30, interval=0.1, what="retried on request")
            assert again["status"] == "Failed"
        finally:
            mgmt("delete", "clusterprofile", name, "--timeout=60s", check=False)
            mgmt("delete", "configmap", name, "-n", "flotilla-system", check=False)
            mgmt("label", "workloadcluster", "-n", FLEET_NS, CLUSTER, f"{label}-", check=False)
