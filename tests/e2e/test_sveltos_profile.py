"""Issue 11's acceptance: ClusterProfiles written the Sveltos way, as Sveltos's documentation
writes them, applied with only their apiVersion changed, behave as Sveltos documents.

The documents below are Sveltos `config.projectsveltos.io/v1beta1` ClusterProfiles (field
names and shapes checked against Sveltos v1.14). The test applies them with the apiVersion
string replaced, and with their Go template actions replaced by what `flotilla convert`
translates them to — the one exception DESIGN.md makes (Flotilla templates are Jinja2); the
test asserts that nothing else differs. Then, on the two full clusters (simulated nodes make
Deployments available):

- dependsOn: the app profile waits, on every cluster, until its prerequisite is provisioned
  *and healthy* (its validateHealths passed), as Sveltos's "dependsOn with health checks";
- preDeployChecks (Flotilla's) hold the app's deployment until they pass;
- maxUpdate 50% of two clusters: one cluster in flight at a time, the next one only after
  the first passed validateHealths (a featureID Helm check with two named evaluateCEL rules,
  and a Lua script written the way Sveltos's examples write it, with a global `hs`);
- several charts with values and valuesFrom, templateResourceRefs feeding a value per cluster
  (getResource), patches (JSON 6902 and strategic merge) on a chart's Deployment, extraLabels
  on everything;
- tier and continueOnConflict: a fleet-wide profile loses a shared object to the app's lower
  tier, and still deploys the rest of what it lists.

And continueOnError (on an API-only cluster): the refs after a failing one are deployed with
it, and not without it.
"""

from __future__ import annotations

import difflib
import time
import uuid
from typing import Any

import yaml
from fleetkit import FLEET_NS, Engine, Kubectl, eventually

from engine import api
from engine.convert import jinja

SVELTOS_API = "config.projectsveltos.io/v1beta1"
CLUSTERS = ("cluster-1", "cluster-2")  # the full clusters in every test fleet shape
REPLICAS = {"cluster-1": 2, "cluster-2": 1}  # from each cluster's templateResourceRefs object

LUA = """\
function evaluate()
  hs = {}
  hs.healthy = false
  hs.message = "available replicas not matching requested replicas"
  if obj.status ~= nil then
    if obj.status.availableReplicas ~= nil then
      if obj.status.availableReplicas == obj.spec.replicas then
        hs.healthy = true
        hs.message = "all replicas available"
      end
    end
  end
  return hs
end
"""


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.splitlines())


class Names:
    def __init__(self) -> None:
        uid = uuid.uuid4().hex[:6]
        self.uid = uid
        self.base, self.app, self.fleet = f"sv-db-{uid}", f"sv-app-{uid}", f"sv-fleet-{uid}"
        self.label, self.ns, self.gates = f"sv-{uid}", f"sv-{uid}", f"sv-gates-{uid}"
        self.gate_label = "sveltos-e2e/gate"


def _gate_check(n: Names, name: str, key: str) -> str:
    """A check on the test's gate ConfigMap, selected the Sveltos way (namespace + labelFilters)."""
    return f"""  - name: {name}
    featureID: Resources
    group: ""
    version: v1
    kind: ConfigMap
    namespace: {n.gates}
    labelFilters:
    - key: {n.gate_label}
      operation: Equal
      value: "{n.uid}"
    evaluateCEL:
    - name: {key}-yes
      rule: has(resource.data.{key}) && resource.data.{key} == 'yes'
"""


def _configmaps(n: Names) -> str:
    """What the profiles reference on the management cluster (plain v1 objects)."""
    settings = "".join(f"""---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {cluster}-{n.app}-settings
  namespace: {FLEET_NS}
data:
  replicas: "{REPLICAS[cluster]}"
""" for cluster in CLUSTERS)

    def manifests(name: str, obj: str, data: str) -> str:
        return f"""---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  namespace: flotilla-system
data:
  objects.yaml: |
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: {obj}
      namespace: {n.ns}
    data:
      {data}
"""
    return settings + f"""---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {n.app}-values
  namespace: flotilla-system
data:
  values.yaml: |
    data:
      tier: gold
""" + manifests(f"{n.base}-manifests", "db-settings", "owner: db") \
        + manifests(f"{n.app}-shared", "shared-settings", "by: app") \
        + manifests(f"{n.fleet}-shared", "shared-settings", "by: fleet") \
        + manifests(f"{n.fleet}-only", "fleet-only", "by: fleet")


def _sveltos_profiles(n: Names, repo: str) -> str:
    """The prerequisite and the app, exactly as one writes them for Sveltos."""
    return f"""apiVersion: {SVELTOS_API}
kind: ClusterProfile
metadata:
  name: {n.base}
spec:
  clusterSelector:
    matchLabels:
      {n.label}: "on"
  syncMode: Continuous
  policyRefs:
  - kind: ConfigMap
    name: {n.base}-manifests
    namespace: flotilla-system
  validateHealths:
{_gate_check(n, "db-ready", "db")}---
apiVersion: {SVELTOS_API}
kind: ClusterProfile
metadata:
  name: {n.app}
spec:
  clusterSelector:
    matchLabels:
      {n.label}: "on"
  syncMode: Continuous
  tier: 50
  continueOnConflict: true
  maxUpdate: 50%
  dependsOn:
  - {n.base}
  extraLabels:
    team: platform
  templateResourceRefs:
  - resource:
      apiVersion: v1
      kind: ConfigMap
      name: "{{{{ .Cluster.metadata.name }}}}-{n.app}-settings"
    identifier: Settings
  helmCharts:
  - repositoryURL:    {repo}
    repositoryName:   standin
    chartName:        standin/standin-app
    chartVersion:     0.1.0
    releaseName:      web
    releaseNamespace: {n.ns}
    helmChartAction:  Install
    values: |
      replicas: {{{{ (getResource "Settings").data.replicas }}}}
      data:
        greeting: hello
    valuesFrom:
    - kind: ConfigMap
      name: {n.app}-values
      namespace: flotilla-system
  - repositoryURL:    {repo}
    repositoryName:   standin
    chartName:        standin/multi-a
    chartVersion:     0.1.0
    releaseName:      extras
    releaseNamespace: {n.ns}
    helmChartAction:  Install
    values: |
      value: from-sveltos
  policyRefs:
  - kind: ConfigMap
    name: {n.app}-shared
    namespace: flotilla-system
  patches:
  - target:
      group: apps
      version: v1
      kind: Deployment
      name: "web"
    patch: |
      - op: add
        path: /metadata/labels/environment
        value: production
  - target:
      group: apps
      version: v1
      kind: Deployment
      name: "web"
    patch: |
      apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: web
      spec:
        template:
          spec:
            containers:
            - name: app
              env:
              - name: LOG_LEVEL
                value: debug
  validateHealths:
  - name: web-available
    featureID: Helm
    group: apps
    version: v1
    kind: Deployment
    namespace: {n.ns}
    labelFilters:
    - key: app.kubernetes.io/instance
      operation: Equal
      value: web
    evaluateCEL:
    - name: scaled-to-zero
      rule: resource.spec.replicas == 0
    - name: all-available
      rule: >-
        has(resource.status.availableReplicas) &&
        resource.status.availableReplicas == resource.spec.replicas
  - name: web-lua
    featureID: Helm
    group: apps
    version: v1
    kind: Deployment
    namespace: {n.ns}
    labelFilters:
    - key: app.kubernetes.io/instance
      operation: Equal
      value: web
    script: |
{_indent(LUA, 6)}
  preDeployChecks:
{_gate_check(n, "change-window", "deploy")}"""


def _sveltos_fleet_profile(n: Names, *, with_rest: bool) -> str:
    """A fleet-wide profile at the default tier (100); `with_rest` adds a second policyRef."""
    rest = f"""  - kind: ConfigMap
    name: {n.fleet}-only
    namespace: flotilla-system
""" if with_rest else ""
    return f"""apiVersion: {SVELTOS_API}
kind: ClusterProfile
metadata:
  name: {n.fleet}
spec:
  clusterSelector:
    matchLabels:
      {n.label}: "on"
  continueOnConflict: true
  policyRefs:
  - kind: ConfigMap
    name: {n.fleet}-shared
    namespace: flotilla-system
{rest}"""


def _as_flotilla(sveltos: str) -> str:
    """Only the apiVersion changes; Go template actions become what convert makes of them."""
    out = sveltos.replace(SVELTOS_API, api.API_VERSION)
    for go_action in ("{{ .Cluster.metadata.name }}",
                      '{{ (getResource "Settings").data.replicas }}'):
        translated = jinja.translate(go_action)
        assert translated.complete and not translated.problems, translated
        out = out.replace(go_action, translated.text)
    changed = [line for line in difflib.ndiff(sveltos.splitlines(), out.splitlines())
               if line.startswith(("- ", "+ "))]
    assert all("apiVersion:" in line or "{{" in line for line in changed), changed
    templated = sum(line.count("{{") for line in sveltos.splitlines())
    assert len(changed) == 2 * (sveltos.count(SVELTOS_API) + templated), changed
    # Still YAML of the same documents (the translated templates are quoted where needed).
    assert [d["kind"] for d in yaml.safe_load_all(out)] == \
        [d["kind"] for d in yaml.safe_load_all(sveltos)]
    return out


def _summaries(mgmt: Kubectl, profile: str) -> dict[str, dict[str, Any]]:
    items = mgmt.json("get", "clustersummaries", "-n", FLEET_NS, "-l",
                      f"{api.PROFILE_NAME_LABEL}={profile}")["items"]
    return {s["spec"]["clusterRef"]["name"]: s for s in items}


def _in_flight(summaries: dict[str, dict[str, Any]], revision: int) -> set[str]:
    """Clusters assigned `revision` that have not yet passed their health checks at it."""
    return {c for c, s in summaries.items() if s["spec"].get("revision") == revision
            and not ((s.get("status") or {}).get("revision") == revision
                     and s["status"].get("phase") == "Provisioned"
                     and s["status"].get("healthy"))}


def _open(engine: Engine, n: Names, key: str) -> None:
    for cluster in CLUSTERS:
        engine.cluster(cluster)("patch", "configmap", "gate", "-n", n.gates, "-p",
                                f'{{"data":{{"{key}":"yes"}}}}')


class TestSveltosClusterProfile:
    def test_behaves_as_sveltos_documents(self, engine: Engine, mgmt: Kubectl) -> None:
        n = Names()
        started = time.monotonic()
        for cluster in CLUSTERS:
            target = engine.cluster(cluster)
            target("create", "namespace", n.gates)
            target("create", "configmap", "gate", "-n", n.gates)
            target("label", "configmap", "gate", "-n", n.gates, f"{n.gate_label}={n.uid}")
        try:
            mgmt.apply(_configmaps(n))
            mgmt.apply(_as_flotilla(_sveltos_fleet_profile(n, with_rest=False)))
            mgmt.apply(_as_flotilla(_sveltos_profiles(n, engine.repo.url)))
            for cluster in CLUSTERS:
                mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{n.label}=on")
            self._dependency_and_pre_deploy_checks(engine, mgmt, n)
            self._one_cluster_at_a_time(engine, mgmt, n)
            self._deployed_as_written(engine, mgmt, n)
            self._tier_and_continue_on_conflict(engine, mgmt, n)
            assert time.monotonic() - started < 120
        finally:
            for cluster in CLUSTERS:
                mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{n.label}-",
                     check=False)
            for profile in (n.fleet, n.app, n.base):
                mgmt("delete", "clusterprofile", profile, "--ignore-not-found",
                     "--timeout=90s", check=False)
            mgmt("delete", "configmap", "-n", "flotilla-system", f"{n.app}-values",
                 f"{n.base}-manifests", f"{n.app}-shared", f"{n.fleet}-shared",
                 f"{n.fleet}-only", "--ignore-not-found", check=False)
            mgmt("delete", "configmap", "-n", FLEET_NS,
                 *(f"{c}-{n.app}-settings" for c in CLUSTERS), "--ignore-not-found",
                 check=False)
            for cluster in CLUSTERS:
                engine.cluster(cluster)("delete", "namespace", n.gates, n.ns,
                                        "--ignore-not-found", "--wait=false", check=False)

    def _dependency_and_pre_deploy_checks(self, engine: Engine, mgmt: Kubectl,
                                          n: Names) -> None:
        # The prerequisite is deployed everywhere, but not healthy: the app waits for it.
        eventually(lambda: all((s.get("status") or {}).get("phase") == "Provisioned"
                               for s in _summaries(mgmt, n.base).values())
                   and len(_summaries(mgmt, n.base)) == 2, timeout=30,
                   what="prerequisite deployed")
        eventually(lambda: any(f"waiting for profile(s) {n.base}" in
                               (s.get("status") or {}).get("message", "")
                               for s in _summaries(mgmt, n.app).values()),
                   timeout=30, what="app waits for its unhealthy prerequisite")
        time.sleep(2)  # a wrongly eager controller would deploy in this time
        for cluster in CLUSTERS:
            target = engine.cluster(cluster)
            assert target.get("configmap", "db-settings", "-n", n.ns) is not None
            assert target.get("deployment", "web", "-n", n.ns) is None, cluster

        # Healthy now: the app moves on, and is held by its preDeployChecks instead.
        _open(engine, n, "db")

        def held() -> dict[str, Any] | None:
            for s in _summaries(mgmt, n.app).values():
                st = s.get("status") or {}
                if st.get("message", "").startswith("waiting for preDeployChecks change-window"):
                    return s
            return None

        summary = eventually(held, timeout=30, what="app held by preDeployChecks")
        assert summary["status"]["phase"] == "Provisioning"
        # maxUpdate 50% of 2: only one cluster has been given the app so far.
        revision = summary["spec"]["revision"]
        assigned = [c for c, s in _summaries(mgmt, n.app).items()
                    if s["spec"].get("revision") == revision]
        assert assigned == [summary["spec"]["clusterRef"]["name"]], assigned
        for cluster in CLUSTERS:
            assert engine.cluster(cluster).get("deployment", "web", "-n", n.ns) is None

    def _one_cluster_at_a_time(self, engine: Engine, mgmt: Kubectl, n: Names) -> None:
        revision = engine.profile(n.app)["status"]["revision"]
        _open(engine, n, "deploy")
        order: list[str] = []   # clusters in the order they were first seen in flight
        healthy_at: dict[str, float] = {}
        flying_at: dict[str, float] = {}
        most = 0
        deadline = time.monotonic() + 90
        while len(healthy_at) < len(CLUSTERS):
            assert time.monotonic() < deadline, f"in flight {order}, healthy {healthy_at}"
            summaries = _summaries(mgmt, n.app)
            now = time.monotonic()
            flight = _in_flight(summaries, revision)
            most = max(most, len(flight))
            for cluster in flight:
                if cluster not in flying_at:
                    flying_at[cluster] = now
                    order.append(cluster)
            for cluster, s in summaries.items():
                if cluster in flying_at and cluster not in flight \
                        and s["spec"].get("revision") == revision:
                    healthy_at.setdefault(cluster, now)
            time.sleep(0.2)
        assert most == 1, f"{most} clusters in flight with maxUpdate 50% of 2"
        first, second = order
        # Health gating: the second cluster got the app only once the first passed its checks.
        assert flying_at[second] >= healthy_at[first]
        engine.wait_ready(n.app, 2, timeout=30)

    def _deployed_as_written(self, engine: Engine, mgmt: Kubectl, n: Names) -> None:
        summaries = _summaries(mgmt, n.app)
        for cluster in CLUSTERS:
            target = engine.cluster(cluster)
            web = target.json("get", "deployment", "web", "-n", n.ns)
            # templateResourceRefs: the replicas come from this cluster's object.
            assert web["spec"]["replicas"] == REPLICAS[cluster]
            assert web["status"].get("availableReplicas") == REPLICAS[cluster]
            # patches: JSON 6902 and strategic merge on the chart's Deployment.
            assert web["metadata"]["labels"]["environment"] == "production"
            (app,) = web["spec"]["template"]["spec"]["containers"]
            assert {"name": "LOG_LEVEL", "value": "debug"} in app["env"]
            assert app["envFrom"]  # the chart's own container fields are kept
            # values and valuesFrom merged; the second chart's values.
            web_cm = target.json("get", "configmap", "web", "-n", n.ns)
            assert web_cm["data"] == {"greeting": "hello", "tier": "gold"}
            extras = target.json("get", "configmap", "extras", "-n", n.ns)
            assert extras["data"]["value"] == "from-sveltos"
            shared = target.json("get", "configmap", "shared-settings", "-n", n.ns)
            # extraLabels on everything the app deployed, charts and policyRefs alike.
            for obj in (web, web_cm, extras, shared):
                assert obj["metadata"]["labels"]["team"] == "platform", obj["metadata"]
            status = summaries[cluster]["status"]
            assert "validateHealths web-available: Deployment " \
                f"{n.ns}/web healthy (rule all-available)" in status["message"]
            assert f"validateHealths web-lua: Deployment {n.ns}/web healthy" in status["message"]
            # The prerequisite's objects carry none of the app's labels.
            db = target.json("get", "configmap", "db-settings", "-n", n.ns)
            assert "team" not in (db["metadata"].get("labels") or {})

    def _tier_and_continue_on_conflict(self, engine: Engine, mgmt: Kubectl, n: Names) -> None:
        # The fleet-wide profile deployed its copy first (the app was held); tier 50 took
        # the object over. Now the fleet profile also lists something nobody else owns:
        # with continueOnConflict it is deployed although the first ref is in conflict.
        for cluster in CLUSTERS:
            shared = engine.cluster(cluster).json("get", "configmap", "shared-settings",
                                                  "-n", n.ns)
            assert shared["data"] == {"by": "app"}
        mgmt.apply(_as_flotilla(_sveltos_fleet_profile(n, with_rest=True)))
        for cluster in CLUSTERS:
            target = engine.cluster(cluster)
            eventually(lambda t=target: t.get("configmap", "fleet-only", "-n", n.ns),
                       timeout=30, what=f"the rest deployed on {cluster}")
            assert target.json("get", "configmap", "shared-settings", "-n", n.ns)[
                "data"] == {"by": "app"}
        summaries = _summaries(mgmt, n.fleet)
        for cluster in CLUSTERS:
            status = summaries[cluster]["status"]
            rows = {r["name"]: r for r in status["services"]}
            conflict = [r for r in rows.values() if r["status"] == "Conflict"]
            assert len(conflict) == 1 and n.app in conflict[0]["message"], rows
            assert status["phase"] == "Conflict"


def _error_profiles(uid: str, label: str) -> str:
    """Two Sveltos profiles listing a ref that cannot deploy before one that can; only the
    first sets continueOnError."""
    out = ""
    for name, flag in ((f"sv-onerror-{uid}", "\n  continueOnError: true"),
                       (f"sv-stop-{uid}", "")):
        out += f"""---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}-broken
  namespace: flotilla-system
data:
  broken.yaml: |
    apiVersion: example.invalid/v1
    kind: NoSuchKind
    metadata:
      name: broken
      namespace: {name}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}-good
  namespace: flotilla-system
data:
  good.yaml: |
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: good
      namespace: {name}
    data:
      deployed: "yes"
---
apiVersion: {SVELTOS_API}
kind: ClusterProfile
metadata:
  name: {name}
spec:
  clusterSelector:
    matchLabels:
      {label}: "on"{flag}
  policyRefs:
  - kind: ConfigMap
    name: {name}-broken
    namespace: flotilla-system
  - kind: ConfigMap
    name: {name}-good
    namespace: flotilla-system
"""
    return out


class TestContinueOnError:
    """Sveltos: with continueOnError the add-ons after a failing one are still deployed."""

    def test_the_rest_is_deployed_past_a_failure(self, engine: Engine, mgmt: Kubectl) -> None:
        uid = uuid.uuid4().hex[:6]
        label, cluster = f"sv-{uid}", "cluster-3"
        going, stopping = f"sv-onerror-{uid}", f"sv-stop-{uid}"
        target = engine.cluster(cluster)
        try:
            mgmt.apply(_as_flotilla(_error_profiles(uid, label)))
            mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{label}=on")
            eventually(lambda: target.get("configmap", "good", "-n", going), timeout=30,
                       what="continueOnError: the ref after the failing one deployed")
            for name in (going, stopping):
                status = eventually(
                    lambda n=name: (st := (_summaries(mgmt, n).get(cluster) or {})
                                    .get("status") or {}).get("phase") == "Failed" and st,
                    timeout=30, what=f"{name} reports the failing ref")
                assert "does not serve NoSuchKind" in status["message"], status["message"]
            # Without it, nothing after the failure is deployed.
            assert target.get("configmap", "good", "-n", stopping) is None
        finally:
            mgmt("label", "workloadcluster", "-n", FLEET_NS, cluster, f"{label}-", check=False)
            for name in (going, stopping):
                mgmt("delete", "clusterprofile", name, "--ignore-not-found", "--timeout=60s",
                     check=False)
                mgmt("delete", "configmap", "-n", "flotilla-system", f"{name}-broken",
                     f"{name}-good", "--ignore-not-found", check=False)
                target("delete", "namespace", name, "--ignore-not-found", "--wait=false",
                       check=False)
