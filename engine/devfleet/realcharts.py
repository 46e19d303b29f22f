"""The real upstream charts on the dev fleet: what it needs that a real cluster would not.

Used by the real-chart tests, `bench/real_charts.py` and `flotilla demo
--charts DIR`. The catalog stays exactly what a platform team would ship;
the dev fleet's limits are met here instead:

* admission webhooks have no server behind them on simulated nodes, so the
  services that register webhooks get values that point the webhooks'
  selectors away or turn them off (`DEV_FLEET_VALUES`);
* two operators create objects at run time that the catalog's health
  checks look for, and they do not really run: `play_operators` does their
  part (the ClusterPolicy reports ready; Prometheus and Alertmanager get
  their StatefulSets).

`example_profiles` reads the example profiles of `profiles/`, points their
selectors at one label and adds those values.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from engine.devfleet import testbin

ROOT = Path(__file__).resolve().parents[2]
NO_WEBHOOKS = {"matchLabels": {"flotilla.dev/dev-fleet-webhooks": "on"}}
DEV_FLEET_VALUES: dict[str, dict[str, Any]] = {
    "cert-manager": {"webhook": {
        "validatingWebhookConfiguration": {"namespaceSelector": NO_WEBHOOKS},
        "mutatingWebhookConfiguration": {"namespaceSelector": NO_WEBHOOKS}}},
    "kube-prometheus-stack": {"prometheusOperator": {"admissionWebhooks": {
        "enabled": False, "patch": {"enabled": False}}}},
    "istiod": {"global": {"operatorManageWebhooks": True}},
}
# release -> namespace, for every chart the example profiles install
RELEASES = {
    "gpu-operator": "gpu-operator", "cert-manager": "cert-manager", "kserve-crd": "kserve",
    "kserve": "kserve", "kube-prometheus-stack": "monitoring", "istio-base": "istio-system",
    "istiod": "istio-system", "istio-ingress": "istio-ingress",
}
# CRDs the charts install from their crds/ folders, which Helm never deletes.
CRD_GROUPS = ("nvidia.com", "monitoring.coreos.com", "cert-manager.io", "istio.io",
              "kserve.io", "nfd.k8s-sigs.io")
STATEFULSETS = ("prometheus-kube-prometheus-stack-prometheus",
                "alertmanager-kube-prometheus-stack-alertmanager")


def example_profiles(label: str, suffix: str = "", *,
                     root: Path = ROOT) -> dict[str, list[dict[str, Any]]]:
    """profiles/*.yaml by file stem, selecting clusters labelled `label=on`, with dev values.

    ClusterProfiles and their ConfigMaps get `suffix` on their names; rollouts
    lose their canary ring (one cluster) and every profile withdraws when its
    cluster stops matching.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((root / "profiles").glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        for doc in docs:
            if doc["kind"] == "ConfigMap":
                doc["metadata"]["name"] += suffix
            if doc["kind"] == "ClusterProfile":
                doc["metadata"]["name"] = f"{path.stem}{suffix}"
                _adapt(doc["spec"], label, suffix)
        out[path.stem] = docs
    return out


def _adapt(spec: dict[str, Any], label: str, suffix: str) -> None:
    spec.pop("clusterSelectorCEL", None)
    spec["clusterSelector"] = {"matchLabels": {label: "on"}}
    spec["rollout"] = {"progressDeadline": "10m", "onFailure": "Pause"}
    spec["stopMatchingBehavior"] = "WithdrawPolicies"
    for ref in spec.get("policyRefs") or []:
        ref["name"] += suffix
    for service in spec.get("services") or []:
        extra = DEV_FLEET_VALUES.get(service["name"])
        if extra:
            service["values"] = {**service.get("values", {}), **extra}


def dump(docs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


def _kubectl(kubeconfig: str, *args: str, stdin: str | None = None,
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(testbin.path() / "kubectl"), "--kubeconfig", kubeconfig, *args],
                          capture_output=True, text=True, input=stdin, timeout=60)


def play_operators(kubeconfig: str) -> bool:
    """Do what the GPU and Prometheus operators would do once their objects exist.

    True when there was nothing left to do (both operators' objects were there).
    """
    done = True
    policy = _kubectl(kubeconfig, "get", "clusterpolicy", "cluster-policy", "-o", "json")
    if policy.returncode != 0:
        done = False
    elif (json.loads(policy.stdout).get("status") or {}).get("state") != "ready":
        _kubectl(kubeconfig, "patch", "clusterpolicy", "cluster-policy", "--subresource=status",
                 "--type=merge", "-p", json.dumps({"status": {"state": "ready"}}))
    if _kubectl(kubeconfig, "get", "namespace", "monitoring").returncode != 0:
        return False
    for name in STATEFULSETS:
        if _kubectl(kubeconfig, "get", "statefulset", name, "-n", "monitoring").returncode:
            _kubectl(kubeconfig, "apply", "-f", "-", stdin=_statefulset(name))
            done = False
    return done


def _statefulset(name: str) -> str:
    app = name.split("-")[0]
    return yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": "monitoring"},
        "spec": {"serviceName": f"{app}-operated", "replicas": 1,
                 "selector": {"matchLabels": {"app.kubernetes.io/name": app}},
                 "template": {"metadata": {"labels": {"app.kubernetes.io/name": app}},
                              "spec": {"containers": [{
                                  "name": app,
                                  "image": f"registry.invalid/{app}:played-by-the-dev-fleet"}]}}},
    })


def mirror_configmap(mirrors: dict[str, str], *, namespace: str = "flotilla-system",
                     name: str = "flotilla-chart-mirrors") -> dict[str, Any]:
    """The controller's mirror ConfigMap (UPSTREAM=LOCAL lines) for these mirrors."""
    lines = "\n".join(f"{upstream}={local}" for upstream, local in sorted(mirrors.items()))
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace},
            "data": {"real-charts": lines}}


def remove_crds(kubeconfig: str, *, wait: bool = False) -> None:
    """Delete the CRDs of the catalog's API groups on a cluster.

    Helm never deletes crds/ folder CRDs, and Flotilla keeps every CRD a chart
    renders: after a withdrawal they stay. Before the real charts go onto a
    cluster, CRDs that stand-in charts left there (other versions) must go too.
    """
    found = _kubectl(kubeconfig, "get", "crd", "-o", "json")
    for crd in json.loads(found.stdout or "{}").get("items", []):
        if crd["spec"]["group"].endswith(CRD_GROUPS):
            _kubectl(kubeconfig, "delete", "crd", crd["metadata"]["name"],
                     "--wait=true" if wait else "--wait=false", "--timeout=60s")
