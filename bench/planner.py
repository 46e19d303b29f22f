"""The planner at 10,000 clusters (issue 13, part 4): time and memory of re-planning.

    .venv/bin/python bench/planner.py [--quick] [--sizes 1000,10000] [--reps N] [--seed N]

Pure: no fleet, no API server. Each size runs in a child process of its own (so
its peak RSS is its own): it builds N WorkloadCluster bodies as the watch
delivers them (labels: region, zone, env, team, tier, GPU product; status.facts
with node and GPU counts; ~3 % not ready; managedFields included, since the
cached bodies carry them) and 50 profiles (label selectors, matchExpressions,
clusterSelectorCEL, a few namespaced Profiles and dependsOn; 5 catalog
services each; rollout stages), fills the controller's own cache
(`engine.controller.store.Store`, which feeds `engine.planindex`) and measures
a full re-plan through the controller's own functions: the parsed spec and the
catalog check (`Store.profile_spec`, `Store.check_releases`: `catalog.resolve`),
the selection (`profiles._selections`: the index, with the dependsOn union), the
clusters read per row (`rollout_step.cluster_rows`), the states
(`rollout_states`) and the staged rollout decision (`rollout.decide`) of every
profile the change touched.

(a) one production cluster changes, three ways: its team label moves (selections
    change), its tier label changes (the rollout stages select by it: every
    profile selecting it re-plans), it turns unready (every rollout reads that);
    median CPU and wall time of the change plus the re-plans, over --reps each,
(b) one profile's selector change over the fleet (CPU time, by selector kind),
(c) a restart: cache fill + every profile planned (time to the first decision
    and to all of them; the cache is then `gc.freeze()`d, as the controller does
    after its preload), and the peak RSS of the process.
Evaluations are (profile, cluster) selection decisions; the growth exponent
compares the two sizes (1 = linear in the fleet, 0 = independent of it). The
machine is shared: verdicts on (a) and (b) use CPU time, wall time is printed.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from types import SimpleNamespace
from typing import Any

# The controller's own functions (no kopf; nothing here does I/O).
from engine.controller import profiles as controller_profiles
from engine.controller import rollout_states, rollout_step, store
from engine.rollout import decide, policy

REGIONS = ("us-east", "us-west", "eu-west", "eu-central", "ap-south", "ap-northeast")
TEAMS = tuple(f"team-{i:02d}" for i in range(20))
GPUS = ("NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3", "NVIDIA-L4", "AMD-MI300X")
SERVICES = ("cert-manager", "istio", "kserve", "gpu-operator", "prometheus")
TARGETS = {"a": 0.050, "b": 2.0, "c": 20.0, "rss": 1024.0}


def cluster_body(i: int, rng: random.Random) -> dict[str, Any]:
    region = REGIONS[i % len(REGIONS)]
    team = TEAMS[rng.randrange(len(TEAMS))]
    gpu_nodes = rng.choice((0, 0, 0, 1, 2, 4, 8))
    product = GPUS[rng.randrange(len(GPUS))]
    labels = {"region": region, "zone": f"{region}-{'abc'[i % 3]}",
              "env": ("prod", "prod", "staging", "dev")[i % 4], "team": team,
              "tier": str(1 + i % 3), "flotilla.dev/fleet": "edge" if i % 5 == 0 else "core"}
    if gpu_nodes:
        labels["gpu"] = product
    name = f"c{i:05d}"
    namespace = "fleet" if i % 10 else f"tenant-{team}"
    ready = rng.random() > 0.03
    stamp = "2026-12-01T10:00:00Z"
    return {
        "apiVersion": "flotilla.dev/v1alpha1", "kind": "WorkloadCluster",
        "metadata": {
            "name": name, "namespace": namespace, "labels": labels,
            "uid": f"{i:08d}-0000-4000-8000-000000000000", "resourceVersion": str(1000 + i),
            "generation": 1, "creationTimestamp": stamp,
            "managedFields": [
                {"manager": "kubectl", "operation": "Update", "apiVersion": "flotilla.dev/v1alpha1",
                 "time": stamp, "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:labels": {f"f:{k}": {} for k in labels}},
                              "f:spec": {".": {}, "f:kubeconfigSecretRef": {}}}},
                {"manager": "flotilla", "operation": "Update", "subresource": "status",
                 "apiVersion": "flotilla.dev/v1alpha1", "time": stamp, "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:status": {".": {}, "f:facts": {}, "f:ready": {}}}}]},
        "spec": {"kubeconfigSecretRef": {"name": f"{name}-kubeconfig", "key": "kubeconfig"}},
        "status": {
            "ready": ready, "version": "v1.30.4", "observedGeneration": 1,
            "facts": {"nodes": 3 + gpu_nodes + i % 7, "gpuNodes": gpu_nodes,
                      "gpus": {product: gpu_nodes * 8} if gpu_nodes else {},
                      "gpuTotal": gpu_nodes * 8},
            "connection": {"state": "Healthy" if ready else "Unreachable",
                           "failures": 0 if ready else 3, "message": "",
                           "lastProbeTime": stamp},
            "conditions": [{"type": "Ready", "status": str(ready), "reason": "Connected"
                            if ready else "Unreachable", "message": "", "observedGeneration": 1,
                            "lastTransitionTime": stamp}]},
    }


def profile_spec(i: int) -> tuple[str, str, dict[str, Any]]:
    """(kind, namespace, spec) of profile i: ten kinds of selector, five of each."""
    shape = i % 10
    spec: dict[str, Any]
    if shape in (0, 1):  # a team's production clusters (even teams have one)
        spec = {"clusterSelector": {"matchLabels": {"team": TEAMS[(i // 10 * 2 + shape) * 2],
                                                    "env": "prod"}}}
    elif shape == 2:  # regions by matchExpressions
        spec = {"clusterSelector": {"matchExpressions": [
            {"key": "region", "operator": "In", "values": [REGIONS[i % 6], REGIONS[(i + 1) % 6]]},
            {"key": "env", "operator": "NotIn", "values": ["dev"]}]}}
    elif shape == 3:  # GPU clusters of a product, with enough GPUs (labels, then CEL)
        spec = {"clusterSelector": {"matchLabels": {"gpu": GPUS[i % 4]}},
                "clusterSelectorCEL": "cluster.status.ready && cluster.status.facts.gpuTotal >= 16"}
    elif shape == 4:  # CEL only: the whole fleet is a candidate
        spec = {"clusterSelectorCEL": f"cluster.metadata.labels.tier == '{1 + i % 3}' && "
                                      "cluster.status.facts.nodes > 5"}
    elif shape == 5:  # a namespaced tenant Profile
        spec = {"clusterSelector": {"matchLabels": {"env": "prod"}}}
    elif shape == 6:  # existence and zone
        spec = {"clusterSelector": {"matchLabels": {"zone": f"{REGIONS[i % 6]}-a"},
                                    "matchExpressions": [{"key": "gpu", "operator": "Exists"}]}}
    elif shape == 7:  # an edge fleet region, depending on the region profile before it
        spec = {"clusterSelector": {"matchLabels": {"flotilla.dev/fleet": "edge",
                                                    "region": REGIONS[i % 6]}},
                "dependsOn": [f"p{i - 5:02d}"]}
    elif shape == 8:  # a tier
        spec = {"clusterSelector": {"matchLabels": {"tier": str(1 + i % 3), "env": "staging"}}}
    else:  # NotIn only: no label narrows it
        spec = {"clusterSelector": {"matchExpressions": [
            {"key": "region", "operator": "NotIn", "values": list(REGIONS[:4])}]}}
    spec["services"] = [{"name": s, "values": {"profile": i}} for s in SERVICES]
    spec["rollout"] = {"stages": [
        {"name": "canary", "clusterSelector": {"matchLabels": {"tier": "1"}}, "maxUpdate": 2},
        {"name": "early", "percent": "25%"}, {"name": "rest"}],
        "progressDeadline": "10m", "maxFailures": 1}
    kind, namespace = ("Profile", f"tenant-{TEAMS[i % 20]}") if shape == 5 else (
        "ClusterProfile", "")
    return kind, namespace, spec


def catalog_bodies() -> list[dict[str, Any]]:
    """The CatalogService objects the profiles' services resolve against."""
    return [{"apiVersion": "flotilla.dev/v1alpha1", "kind": "CatalogService",
             "metadata": {"name": name, "resourceVersion": str(100 + n)}, "spec": {
                 "releaseNamespace": f"{name}-system",
                 "dependsOn": ["cert-manager"] if name != "cert-manager" else [],
                 "versions": [{"version": v, "chart": {
                     "repositoryURL": f"https://charts.example/{name}", "chartName": name,
                     "chartVersion": v}, "values": {"image": {"tag": v}}}
                     for v in ("1.0.0", "1.1.0", "1.2.3")]}} for n, name in enumerate(SERVICES)]


def summary_body(namespace: str, name: str, version: int) -> dict[str, Any]:
    """A ClusterSummary as the rollout step reads it: revision 1 provisioned, healthy."""
    stamp = "2026-12-01T10:05:00Z"
    return {"apiVersion": "flotilla.dev/v1alpha1", "kind": "ClusterSummary",
            "metadata": {"name": f"p-{name}", "namespace": namespace,
                         "resourceVersion": str(version)},
            "spec": {"clusterRef": {"namespace": namespace, "name": name}, "revision": 1,
                     "assignedAt": stamp},
            "status": {"phase": "Provisioned", "revision": 1, "healthy": True,
                       "healthySince": stamp}}


class Planner:
    """The controller's per-profile decision, without its I/O.

    Calls what `profiles.reconcile` calls: the parsed spec (`Store.profile_spec`),
    the selection (`profiles._selections`), the catalog check
    (`Store.check_releases`), the policy (`rollout_step.policy_of`) and the
    clusters read as the rollout step reads them (`rollout_step.cluster_rows`). Cluster states
    come from the rollout step's own builder and cache
    (`engine.controller.rollout_states`), fed a ClusterSummary per cluster (one
    shared by every profile: the states only read it, and the cache is per profile).
    """

    def __init__(self, cache: store.Store):
        self.cache = cache
        self.ctx = SimpleNamespace(store=cache)  # all `_selections` reads of a Context
        self.states = rollout_states.StateCache()
        self.summaries = {key: summary_body(*key, 5 * 10**6 + i)
                          for i, key in enumerate(cache.keys("WorkloadCluster"))}

    def plan(self, kind: str, namespace: str, name: str) -> policy.Decision:
        body = self.cache.get(kind, namespace, name)
        assert body is not None
        spec = self.cache.profile_spec(kind, body)
        chosen = controller_profiles._selections(self.ctx, kind, namespace,  # type: ignore[arg-type]
                                                 name)
        self.cache.check_releases(kind, body, spec)
        keys, clusters = rollout_step.cluster_rows(self.cache, (kind, namespace, name),
                                                   tuple(chosen))
        summaries = self.summaries
        states = self.states.states((kind, namespace, name), keys,
                                    [summaries[key] for key in keys], clusters, {})
        # A re-plan towards revision 2: every cluster runs revision 1, healthy.
        return decide.decide(rollout_step.policy_of(spec), revision=2, last_good=1,
                             clusters=states, now=time.time())

    def replan_woken(self) -> int:
        """What profiles.wake queues: the touched profiles and what they depend on."""
        keys = set()
        for kind, namespace, name in self.cache.take_woken():
            keys.add((kind, namespace, name))
            body = self.cache.get(kind, namespace, name) or {}
            keys |= {(kind, namespace, d) for d in (body.get("spec") or {}).get("dependsOn", [])}
        for key in sorted(keys):
            if self.cache.get(*key) is not None:
                self.plan(*key)
        return len(keys)


# (a)'s changes: a team move (selections change), a label the rollout stages select by
# (every profile selecting the cluster re-plans), and a cluster going unready.
CHANGES = ("team", "tier", "ready")


def changed_cluster(body: dict[str, Any], change: str, rep: int) -> dict[str, Any]:
    """A new version of a cluster body, as a watch event delivers it (a new resourceVersion)."""
    version = 10**7 + rep * len(CHANGES) + CHANGES.index(change)
    out = {**body, "metadata": {**body["metadata"], "resourceVersion": str(version)}}
    labels = dict(out["metadata"]["labels"])
    if change == "team":
        labels["team"] = TEAMS[(TEAMS.index(labels["team"]) // 2 * 2 + 2 * (1 + rep % 9)) % 20]
    elif change == "tier":
        labels["tier"] = "1" if labels["tier"] != "1" else "2"
    else:
        out["status"] = {**out["status"], "ready": not out["status"]["ready"]}
    out["metadata"]["labels"] = labels
    return out


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_size(size: int, reps: int, seed: int, freeze: bool = True) -> dict[str, Any]:
    rng = random.Random(seed)
    bodies = [cluster_body(i, rng) for i in range(size)]
    profiles = [(*profile_spec(i), f"p{i:02d}") for i in range(50)]
    # (c) restart: fill the cache as the preload does (clusters, then profiles), then plan.
    wall, cpu = time.perf_counter(), time.process_time()
    cache = store.Store()
    for entry in catalog_bodies():
        cache.put("CatalogService", entry)
    for body in bodies:
        cache.put("WorkloadCluster", body)
    for kind, namespace, spec, name in profiles:
        meta = {"name": name, **({"namespace": namespace} if namespace else {})}
        cache.put(kind, {"apiVersion": "flotilla.dev/v1alpha1", "kind": kind, "metadata": meta,
                         "spec": spec})
    filled = time.perf_counter() - wall
    if freeze:
        gc.freeze()  # as the controller does after its preload (handlers.startup)
    planner = Planner(cache)
    planner.plan(profiles[0][0], profiles[0][1], profiles[0][3])
    first = time.perf_counter() - wall
    for kind, namespace, _, name in profiles[1:]:
        planner.plan(kind, namespace, name)
    restart = {"fill": filled, "first": first, "all": time.perf_counter() - wall,
               "cpu": time.process_time() - cpu, "evaluations": cache.plan.evaluations}
    cache.take_woken()
    # (a) one cluster changes; the profiles it touched are re-planned.
    current = {(b["metadata"]["namespace"], b["metadata"]["name"]): b for b in bodies}
    prod = [key for key, b in current.items() if b["metadata"]["labels"]["env"] == "prod"]
    label: dict[str, dict[str, list[float]]] = {}
    for rep in range(reps):
        for change in CHANGES:
            key = prod[rng.randrange(len(prod))]
            body = changed_cluster(current[key], change, rep)
            current[key] = body
            start, cpu, evals = time.perf_counter(), time.process_time(), cache.plan.evaluations
            cache.put("WorkloadCluster", body)
            index_took = time.perf_counter() - start
            touched = planner.replan_woken()
            figures = label.setdefault(change, {})
            figures.setdefault("time", []).append(time.perf_counter() - start)
            figures.setdefault("cpu", []).append(time.process_time() - cpu)
            figures.setdefault("index", []).append(index_took)
            figures.setdefault("evaluations", []).append(cache.plan.evaluations - evals)
            figures.setdefault("touched", []).append(touched)
    # (b) one profile's selector changes (one of each selector shape, twice).
    by_shape: dict[str, list[float]] = {}
    profile_evals = []
    names = {0: "matchLabels", 2: "In/NotIn", 3: "labels+CEL", 4: "CEL only", 5: "Profile",
             9: "NotIn only"}
    for i in [s + 10 * r for r in range(2) for s in names]:
        kind, namespace, spec, name = profiles[i]
        changed = json.loads(json.dumps(spec))
        changed["services"][0]["values"] = {"edited": i}
        if "clusterSelector" in changed:
            changed["clusterSelector"].setdefault("matchLabels", {})["tier"] = "2"
        else:
            changed["clusterSelectorCEL"] += " && cluster.status.ready"
        meta = {"name": name, **({"namespace": namespace} if namespace else {})}
        cpu, evals = time.process_time(), cache.plan.evaluations
        cache.put(kind, {"apiVersion": "flotilla.dev/v1alpha1", "kind": kind, "metadata": meta,
                         "spec": changed})
        planner.plan(kind, namespace, name)
        by_shape.setdefault(names[i % 10], []).append(time.process_time() - cpu)
        profile_evals.append(cache.plan.evaluations - evals)
    return {"size": size, "restart": restart, "rss": rss_mib(),
            "label": {change: {"median": statistics.median(f["time"]),
                               "cpu": statistics.median(f["cpu"]),
                               "p90": sorted(f["time"])[int(0.9 * (len(f["time"]) - 1))],
                               "index": statistics.median(f["index"]),
                               "evaluations": statistics.median(f["evaluations"]),
                               "touched": statistics.median(f["touched"])}
                      for change, f in label.items()},
            "profile": {"by_shape": {k: statistics.median(v) for k, v in by_shape.items()},
                        "evaluations": max(profile_evals)},
            "load": os.getloadavg()}


def exponent(small: float, big: float, ratio: float) -> float:
    return math.log(big / small) / math.log(ratio) if small > 0 and big > 0 else float("nan")


def verdict(value: float, target: float) -> str:
    return "PASS" if value <= target else "MISS"


def report(results: list[dict[str, Any]]) -> None:
    print("\nplanner (pure: controller cache + plan index + catalog + rollout decision; "
          "no API server)")
    for r in results:
        n, c, a, b = r["size"], r["restart"], r["label"], r["profile"]
        worst = max(b["by_shape"].values())
        load = " ".join(f"{x:.2f}" for x in r["load"])
        print(f"\n  {n:,} clusters x 50 profiles x 5 services (load average {load})")
        for change, f in a.items():
            print(f"  (a) {change:<5} change -> re-planned: median {f['cpu'] * 1e3:7.2f} CPU ms, "
                  f"{f['median'] * 1e3:.2f} ms wall (p90 {f['p90'] * 1e3:.2f}; index "
                  f"{f['index'] * 1e3:.2f} ms, {f['evaluations']:.0f} evaluations, "
                  f"{f['touched']:.0f} profiles re-planned)  {verdict(f['cpu'], TARGETS['a'])} "
                  "<= 50 ms")
        shapes = ", ".join(f"{k} {v:.3f}" for k, v in b["by_shape"].items())
        print(f"  (b) profile change over the fleet: CPU s by selector: {shapes}; worst "
              f"{worst:.3f} s, <= {b['evaluations']} evaluations  "
              f"{verdict(worst, TARGETS['b'])} <= 2 s")
        print(f"  (c) restart: cache filled {c['fill']:.2f} s, first decision {c['first']:.2f} s,"
              f" all 50 planned {c['all']:.2f} s wall; {c['cpu']:.2f} CPU s, {c['evaluations']:,} "
              f"evaluations  {verdict(c['first'], TARGETS['c'])} <= 20 s to the first decision")
        print(f"      peak RSS {r['rss']:.0f} MiB  {verdict(r['rss'], TARGETS['rss'])} <= 1 GiB")
    if len(results) >= 2:
        s, big = results[0], results[-1]
        ratio = big["size"] / s["size"]
        print(f"\n  growth {s['size']:,} -> {big['size']:,} (exponent: 1 = linear in the fleet)")
        rows = (*((f"(a) {change} change CPU", s["label"][change]["cpu"],
                   big["label"][change]["cpu"]) for change in CHANGES),
                *((f"(a) {change} evaluations", s["label"][change]["evaluations"],
                   big["label"][change]["evaluations"]) for change in CHANGES),
                ("(b) worst profile change", max(s["profile"]["by_shape"].values()),
                 max(big["profile"]["by_shape"].values())),
                ("(c) restart, CPU", s["restart"]["cpu"], big["restart"]["cpu"]),
                ("peak RSS", s["rss"], big["rss"]))
        for label, x, y in rows:
            print(f"  {label:<26} {x:10.4g} -> {y:10.4g}   exponent {exponent(x, y, ratio):5.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 label changes, not 40")
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child: one size, JSON
    args = parser.parse_args(argv)
    reps = args.reps or (10 if args.quick else 40)
    if args.one:
        print(json.dumps(one_size(args.one, reps, args.seed)))
        return 0
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        out = subprocess.run([sys.executable, __file__, "--one", str(size), "--reps", str(reps),
                              "--seed", str(args.seed)], check=True, capture_output=True,
                             text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
