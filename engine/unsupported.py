"""Which Sveltos fields a profile sets that Flotilla accepts but does not honour (yet).

Used by the profile reconciler for the profile's `Unsupported` condition
(reason `UnsupportedField`), so that a Sveltos profile applied unchanged
says what it asked for and did not get, instead of silently ignoring it.
Each finding names the exact field path and what is not done. Works on the
raw spec (the fields are not all in the typed model). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

REASON = "UnsupportedField"
FLUX_KINDS = ("GitRepository", "OCIRepository", "Bucket")


def fields(spec: Mapping[str, Any]) -> list[str]:
    """"<field path>: <what is not done>" for every unsupported field the spec sets."""
    found: list[str] = []
    if spec.get("reloader"):
        found.append("spec.reloader: rolling restarts on mounted ConfigMap/Secret changes are "
                     "not done")
    if spec.get("setRefs"):
        found.append("spec.setRefs: ClusterSets/Sets are not supported; select clusters with "
                     "clusterSelector or clusterRefs")
    for i, ref in enumerate(_list(spec.get("kustomizationRefs"))):
        kind = str(ref.get("kind", "")) if isinstance(ref, Mapping) else ""
        if kind in FLUX_KINDS:
            found.append(f"spec.kustomizationRefs[{i}] ({kind}): Flux sources are out of "
                         "scope; put the kustomization in a ConfigMap or Secret")
        elif isinstance(ref, Mapping) and ref.get("deploymentType") == "Local":
            found.append(f"spec.kustomizationRefs[{i}].deploymentType: Local (the management "
                         "cluster) is not supported; nothing from this ref is deployed")
    for i, ref in enumerate(_list(spec.get("policyRefs"))):
        if isinstance(ref, Mapping) and ref.get("deploymentType") == "Local":
            found.append(f"spec.policyRefs[{i}].deploymentType: Local (the management "
                         "cluster) is not supported; nothing from this ref is deployed")
    for i, chart in enumerate(_list(spec.get("helmCharts"))):
        if not isinstance(chart, Mapping):
            continue
        for name in ("registryCredentialsConfig", "signatureVerification"):
            if chart.get(name):
                found.append(f"spec.helmCharts[{i}].{name}: not honoured yet")
    return found


def message(found: list[str]) -> str:
    return "; ".join(found) if found else "every field set is honoured"


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []
