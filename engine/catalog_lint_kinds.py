"""Pure check that a catalog health check watches something the chart can produce.

Used by `flotilla catalog lint` (through `catalog_lint_run`) on the objects
`helm template --include-crds` rendered. A health check's group/version/kind
is fine when the chart renders such objects, when the chart ships the CRD
serving it (the objects are then made at runtime, by the operator or users),
or when it is a built-in Kubernetes kind (a StatefulSet the Prometheus
Operator creates, for instance) — the last two said as notes. Anything else
is an error: the check could never pass. When the kind is rendered but no
rendered object has the check's name, namespace or labels, that is a warning
(an operator may still create it; most often the name is wrong).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine import labels
from engine.catalog_lint import Finding
from engine.model import types

# (group, kind) -> versions served, for the built-in kinds health checks name.
BUILTIN: Mapping[tuple[str, str], frozenset[str]] = {
    **{("", kind): frozenset({"v1"}) for kind in (
        "ConfigMap", "Endpoints", "Event", "LimitRange", "Namespace", "Node", "PersistentVolume",
        "PersistentVolumeClaim", "Pod", "ReplicationController", "ResourceQuota", "Secret",
        "Service", "ServiceAccount")},
    **{("apps", kind): frozenset({"v1"}) for kind in (
        "ControllerRevision", "DaemonSet", "Deployment", "ReplicaSet", "StatefulSet")},
    ("batch", "Job"): frozenset({"v1"}),
    ("batch", "CronJob"): frozenset({"v1"}),
    ("autoscaling", "HorizontalPodAutoscaler"): frozenset({"v1", "v2"}),
    ("policy", "PodDisruptionBudget"): frozenset({"v1"}),
    **{("networking.k8s.io", kind): frozenset({"v1"}) for kind in (
        "Ingress", "IngressClass", "NetworkPolicy")},
    **{("rbac.authorization.k8s.io", kind): frozenset({"v1"}) for kind in (
        "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")},
    ("apiextensions.k8s.io", "CustomResourceDefinition"): frozenset({"v1"}),
    **{("admissionregistration.k8s.io", kind): frozenset({"v1"}) for kind in (
        "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
        "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")},
    ("apiregistration.k8s.io", "APIService"): frozenset({"v1"}),
    ("coordination.k8s.io", "Lease"): frozenset({"v1"}),
    ("discovery.k8s.io", "EndpointSlice"): frozenset({"v1"}),
    ("scheduling.k8s.io", "PriorityClass"): frozenset({"v1"}),
    ("storage.k8s.io", "StorageClass"): frozenset({"v1"}),
    ("storage.k8s.io", "CSIDriver"): frozenset({"v1"}),
    ("node.k8s.io", "RuntimeClass"): frozenset({"v1"}),
}


def api_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def health_check_findings(
    check: types.HealthCheck, rendered: Sequence[Mapping[str, Any]], *, release_namespace: str
) -> list[Finding]:
    """Whether the chart (as rendered) can ever produce what `check` watches."""
    gvk = f"{check.kind} {api_version(check.group, check.version)}"
    what = f"health check {check.name} ({gvk})"
    same_kind = [obj for obj in rendered if obj.get("kind") == check.kind]
    matching = [obj for obj in same_kind
                if obj.get("apiVersion") == api_version(check.group, check.version)]
    if matching:
        return _object_findings(check, matching, what=what, release_namespace=release_namespace)
    crd = _shipped_crd(check, rendered)
    if crd is not None:
        served = _served_versions(crd)
        if check.version not in served:
            return [Finding("error", f"{what}: the chart's CRD {crd['metadata']['name']} serves"
                            f" {', '.join(sorted(served)) or 'no version'}, not {check.version}")]
        return [Finding("note", f"{what}: not rendered; the chart ships its CRD (objects are"
                        " created at runtime)")]
    builtin = BUILTIN.get((check.group, check.kind))
    if builtin is not None:
        if check.version not in builtin:
            wanted = ", ".join(api_version(check.group, v) for v in sorted(builtin))
            return [Finding("error", f"{what}: built-in {check.kind} is served as {wanted}")]
        return [Finding("note", f"{what}: not rendered by the chart; a built-in kind, expected"
                        " to be created at runtime (by an operator)")]
    if same_kind:
        versions = sorted({str(obj.get("apiVersion")) for obj in same_kind})
        return [Finding("error", f"{what}: the chart renders {check.kind} only as"
                        f" {', '.join(versions)}")]
    return [Finding("error", f"{what}: the chart never renders this kind, ships no CRD for it,"
                    " and it is not a built-in kind")]


def _object_findings(
    check: types.HealthCheck, objects: Sequence[Mapping[str, Any]], *, what: str,
    release_namespace: str,
) -> list[Finding]:
    """Warnings when no rendered object of the right kind has the check's name/namespace/labels."""
    candidates = list(objects)
    wanted: list[str] = []
    if check.namespace:
        wanted.append(f"in namespace {check.namespace}")
        candidates = [obj for obj in candidates
                      if _namespace(obj, release_namespace) == check.namespace]
    if check.object_name:
        wanted.append(f"named {check.object_name}")
        candidates = [obj for obj in candidates if _name(obj) == check.object_name]
    selector = check.list_selector  # labelSelector and labelFilters together
    if selector:
        requirements = labels.parse(selector)
        if requirements is None:
            return []  # set-based selector: not judged here
        wanted.append(f"labelled {selector}")
        candidates = [obj for obj in candidates
                      if labels.matches(_labels(obj), match_expressions=requirements)]
    if candidates:
        return []
    names = ", ".join(sorted(f"{_namespace(o, release_namespace)}/{_name(o)}"
                             for o in objects)[:6])
    return [Finding("warning", f"{what}: the chart renders {check.kind} but none"
                    f" {' and '.join(wanted)} (rendered: {names}); an operator may create it"
                    " at runtime")]


def _shipped_crd(check: types.HealthCheck,
                 rendered: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    for obj in rendered:
        if obj.get("kind") != "CustomResourceDefinition":
            continue
        spec = obj.get("spec") or {}
        if spec.get("group") == check.group and (spec.get("names") or {}).get("kind") == check.kind:
            return obj
    return None


def _served_versions(crd: Mapping[str, Any]) -> set[str]:
    versions = (crd.get("spec") or {}).get("versions") or []
    return {str(version.get("name")) for version in versions
            if isinstance(version, Mapping) and version.get("served", True)}


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _namespace(obj: Mapping[str, Any], release_namespace: str) -> str:
    # helm installs objects without metadata.namespace into the release namespace.
    return str((obj.get("metadata") or {}).get("namespace") or release_namespace)


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    found = (obj.get("metadata") or {}).get("labels") or {}
    return {str(key): str(value) for key, value in found.items()}

