"""The controller's chart, linted and rendered by the real helm binary (no fleet needed).

`helm lint` and `helm template` run with the defaults, with every documented
value set (tests/chart/values-all.yaml) and with the switches off; the
rendered objects are checked where mistakes would hurt in production: probes
on the health port, the restricted Pod Security context and the read-only
root filesystem's emptyDirs, the downward API, the exact RBAC (no `*`), one
Deployment and Lease per shard, and controller flags the real command line
accepts.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml
from fleetkit import ROOT, bins

from engine import cli

CHART = ROOT / "deploy" / "chart" / "flotilla"
ALL_VALUES = ROOT / "tests" / "chart" / "values-all.yaml"
KUBE_VERSION = "v1.37.2"  # helm's built-in default is older than the chart's kubeVersion

# (apiGroup, resource) -> verbs: what tests/e2e/test_chart_install.py found the controller
# uses. A change here is a change of what every installation grants: review it as one.
CLUSTER_RULES = {
    ("flotilla.dev", "workloadclusters"): {"list", "watch"},
    ("flotilla.dev", "catalogservices"): {"list", "watch"},
    ("flotilla.dev", "clusterprofiles"): {"list", "watch", "patch"},
    ("flotilla.dev", "profiles"): {"list", "watch", "patch"},
    ("flotilla.dev", "clustersummaries"): {"list", "watch", "create", "patch", "delete"},
    ("flotilla.dev", "workloadclusters/status"): {"patch"},
    ("flotilla.dev", "clusterprofiles/status"): {"patch"},
    ("flotilla.dev", "profiles/status"): {"patch"},
    ("flotilla.dev", "clustersummaries/status"): {"patch"},
    ("apps", "controllerrevisions"): {"list", "watch", "create", "patch", "delete"},
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
    ("", "configmaps"): {"get", "list", "watch"},
    ("", "secrets"): {"get", "list", "watch", "create", "patch"},
    ("", "namespaces"): {"get"},
    ("", "events"): {"create"},
}


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bins() / "helm"), *args], capture_output=True, text=True,
                          timeout=120)


def render(*args: str) -> list[dict[str, Any]]:
    proc = helm("template", "flotilla", str(CHART), "-n", "flotilla-system",
                "--kube-version", KUBE_VERSION, *args)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def flat_rules(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def leaves(values: Any, prefix: str = "") -> set[str]:
    """Dotted paths of a values tree; lists and empty maps count as one value."""
    if isinstance(values, dict) and values:
        return set().union(*(leaves(v, f"{prefix}{k}.") for k, v in values.items()))
    return {prefix.rstrip(".")}


@pytest.fixture(scope="module")
def defaults() -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="module")
def everything() -> list[dict[str, Any]]:
    return render("-f", str(ALL_VALUES))


@pytest.mark.parametrize("values", [[], ["-f", str(ALL_VALUES)]], ids=["defaults", "all"])
def test_helm_lint(values: list[str]) -> None:
    proc = helm("lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION, *values)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_values_all_sets_every_documented_value() -> None:
    documented = leaves(yaml.safe_load((CHART / "values.yaml").read_text()))
    given = leaves(yaml.safe_load(ALL_VALUES.read_text()))
    missing = [d for d in documented if not any(g == d or g.startswith(d + ".") for g in given)]
    assert not missing, f"{ALL_VALUES.name} does not set {sorted(missing)}"


class TestDeployment:
    """Probes, security context, scratch space and the downward API, as a pod needs them."""

    def test_probes_on_the_health_port(self, defaults: list[dict[str, Any]]) -> None:
        container = of_kind(defaults, "Deployment")[0]["spec"]["template"]["spec"][
            "containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"metrics": 8080, "health": 8081}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
        assert "--health-port=8081" in container["args"]
        assert "--metrics-port=8080" in container["args"]
        assert "--bind-address=0.0.0.0" in container["args"]

    @pytest.mark.parametrize("which", ["defaults", "everything"])
    def test_restricted_pod_security(self, which: str, request: pytest.FixtureRequest) -> None:
        for deployment in of_kind(request.getfixturevalue(which), "Deployment"):
            pod = deployment["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
            for container in pod["containers"]:
                ctx = container["securityContext"]
                assert ctx["allowPrivilegeEscalation"] is False
                assert ctx["readOnlyRootFilesystem"] is True
                assert ctx["capabilities"] == {"drop": ["ALL"]}
                assert ctx["runAsNonRoot"] is True

    def test_writable_paths_are_empty_dirs(self, defaults: list[dict[str, Any]]) -> None:
        pod = of_kind(defaults, "Deployment")[0]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        empty = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        env = {e["name"]: e for e in container["env"]}
        assert "--workdir=/var/lib/flotilla" in container["args"]
        for path in ("/var/lib/flotilla", env["HOME"]["value"], "/tmp"):
            assert mounts[path] in empty, path

    def test_workdir_size(self, everything: list[dict[str, Any]]) -> None:
        pod = of_kind(everything, "Deployment")[0]["spec"]["template"]["spec"]
        work = next(v for v in pod["volumes"] if v["name"] == "work")
        assert work["emptyDir"] == {"sizeLimit": "5Gi"}

    def test_downward_api_names_the_lease_holder(self, defaults: list[dict[str, Any]]) -> None:
        env = {e["name"]: e for e in of_kind(defaults, "Deployment")[0]["spec"]["template"][
            "spec"]["containers"][0]["env"]}
        assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"

    def test_image_tag_follows_the_helm_version(self, defaults: list[dict[str, Any]],
                                                everything: list[dict[str, Any]]) -> None:
        image = of_kind(defaults, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
        assert image["image"] == "flotilla:0.1.0-helm-v3.22.0"
        custom = of_kind(everything, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
        assert custom["image"] == "registry.example.com/platform/flotilla:0.1.0-custom"
        assert custom["imagePullPolicy"] == "Always"
        assert "--helm=/opt/helm/bin/helm" in custom["args"]
        assert "--kubectl=/opt/kubernetes/bin/kubectl" in custom["args"]

    @pytest.mark.parametrize("which", ["defaults", "everything"])
    def test_the_command_line_accepts_the_arguments(self, which: str,
                                                    request: pytest.FixtureRequest) -> None:
        for deployment in of_kind(request.getfixturevalue(which), "Deployment"):
            args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
            parsed = cli.parser().parse_args(["controller", *args])
            assert parsed.command == "controller"


class TestShards:
    """One Deployment, one Lease and one --shard-key per entry of `shards`."""

    def test_one_deployment_per_shard(self, everything: list[dict[str, Any]]) -> None:
        deployments = {d["metadata"]["name"]: d for d in of_kind(everything, "Deployment")}
        assert set(deployments) == {"flotilla", "flotilla-eu-west"}
        default_args = deployments["flotilla"]["spec"]["template"]["spec"]["containers"][0][
            "args"]
        shard_args = deployments["flotilla-eu-west"]["spec"]["template"]["spec"]["containers"][
            0]["args"]
        assert not [a for a in default_args if a.startswith("--shard-key")]
        assert "--shard-key=eu-west" in shard_args
        assert "--lease-name=flotilla-controller" in default_args
        assert "--lease-name=flotilla-controller-eu-west" in shard_args
        for args in (default_args, shard_args):
            assert {"--leader-elect", "--lease-duration=30", "--renew-deadline=20",
                    "--retry-period=4", "--log-format=text", "--log-level=debug",
                    "--withdraw-timeout=120", "--max-helm=2", "--max-workload-requests=32",
                    "--chart-mirror=https://charts.jetstack.io=https://mirror.example.com/"
                    "jetstack", "--mirror-configmap=flotilla-system/flotilla-chart-mirrors"
                    } <= set(args)
            assert args[-1] == "--verbose"  # extraArgs come last
        selectors = [d["spec"]["selector"]["matchLabels"] for d in deployments.values()]
        assert selectors[0] != selectors[1]  # two ReplicaSets never adopt each other's pods
        for d in deployments.values():
            assert d["spec"]["replicas"] == 3

    def test_the_role_names_every_shards_lease(self, everything: list[dict[str, Any]]) -> None:
        role = of_kind(everything, "Role")[0]
        named = next(r for r in role["rules"] if r.get("resourceNames"))
        assert named["resourceNames"] == ["flotilla-controller", "flotilla-controller-eu-west"]

    def test_repeated_invalid_or_no_default_shard_fails(self) -> None:
        for bad in (["--set", "shards={,a,a}"], ["--set", "shards={,Bad_Key}"],
                    ["--set", "shards=null"], ["--set", "shards={eu}"]):
            proc = helm("template", "flotilla", str(CHART), "--kube-version", KUBE_VERSION, *bad)
            assert proc.returncode != 0, bad


class TestRBAC:
    """Exactly the verbs the controller uses; nothing `*`; leases only in the release namespace."""

    def test_cluster_role_is_exact(self, defaults: list[dict[str, Any]]) -> None:
        (role,) = of_kind(defaults, "ClusterRole")
        assert flat_rules(role["rules"]) == CLUSTER_RULES
        binding = of_kind(defaults, "ClusterRoleBinding")[0]
        assert binding["roleRef"]["name"] == role["metadata"]["name"]
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "flotilla",
                                        "namespace": "flotilla-system"}]

    def test_extra_rules_are_appended(self, everything: list[dict[str, Any]]) -> None:
        (role,) = of_kind(everything, "ClusterRole")
        assert flat_rules(role["rules"]) == {**CLUSTER_RULES,
                                             ("cluster.x-k8s.io", "clusters"): {"get"}}

    @pytest.mark.parametrize("which", ["defaults", "everything"])
    def test_no_wildcards(self, which: str, request: pytest.FixtureRequest) -> None:
        for doc in request.getfixturevalue(which):
            for rule in doc.get("rules") or []:
                for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                    assert "*" not in (rule.get(field) or []), (doc["kind"], rule)

    def test_leader_election_role(self, defaults: list[dict[str, Any]]) -> None:
        (role,) = of_kind(defaults, "Role")
        assert role["metadata"]["namespace"] == "flotilla-system"
        assert role["rules"] == [
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "resourceNames": ["flotilla-controller"], "verbs": ["get", "patch"]}]

    def test_switches_off(self) -> None:
        docs = render("--set", "rbac.create=false", "--set", "serviceAccount.create=false",
                      "--set", "serviceAccount.name=byo", "--set", "metrics.enabled=false",
                      "--set", "leaderElection.enabled=false", "--set", "replicas=1",
                      "--set", "catalog.install=false")
        assert {d["kind"] for d in docs} == {"Deployment"}
        pod = docs[0]["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "byo"
        args = pod["containers"][0]["args"]
        assert "--metrics-port=0" in args and "--leader-elect" not in args
        assert [p["name"] for p in pod["containers"][0]["ports"]] == ["health"]

    def test_several_replicas_need_leader_election(self) -> None:
        proc = helm("template", "flotilla", str(CHART), "--kube-version", KUBE_VERSION,
                    "--set", "leaderElection.enabled=false", "--set", "replicas=2")
        assert proc.returncode != 0 and "leaderElection" in proc.stderr


class TestOptionalParts:
    """Metrics Service and ServiceMonitor, the catalog, extra env and volumes."""

    def test_metrics_service_and_monitor(self, defaults: list[dict[str, Any]],
                                         everything: list[dict[str, Any]]) -> None:
        assert of_kind(defaults, "Service")[0]["spec"]["ports"][0]["targetPort"] == "metrics"
        assert not of_kind(defaults, "ServiceMonitor")
        (monitor,) = of_kind(everything, "ServiceMonitor")
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics",
                                                 "interval": "15s", "scrapeTimeout": "5s"}]
        service = of_kind(everything, "Service")[0]
        assert service["spec"]["type"] == "NodePort"
        assert service["spec"]["ports"][0]["port"] == 9091

    def test_catalog_switch(self, defaults: list[dict[str, Any]],
                            everything: list[dict[str, Any]]) -> None:
        names = {d["metadata"]["name"] for d in of_kind(defaults, "CatalogService")}
        expected = {yaml.safe_load(p.read_text())["metadata"]["name"]
                    for p in (ROOT / "catalog").glob("*.yaml")}
        assert names == expected
        assert not of_kind(everything, "CatalogService")

    def test_extra_env_and_volumes(self, everything: list[dict[str, Any]]) -> None:
        pod = of_kind(everything, "Deployment")[0]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert {"name": "AWS_REGION", "value": "eu-west-1"} in container["env"]
        assert {"name": "gcp-credentials", "mountPath": "/var/run/gcp",
                "readOnly": True} in container["volumeMounts"]
        assert any(v["name"] == "gcp-credentials" for v in pod["volumes"])
        assert pod["priorityClassName"] == "system-cluster-critical"
        sa = of_kind(everything, "ServiceAccount")[0]
        assert sa["metadata"]["name"] == "flotilla-controller"
        assert "eks.amazonaws.com/role-arn" in sa["metadata"]["annotations"]

