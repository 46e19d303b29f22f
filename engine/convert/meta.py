"""Object metadata carried from a Sveltos document to its Flotilla counterpart.

Used by every converter in `engine.convert`. Kept: name, namespace (for
namespaced kinds), labels, annotations. Left out without a word: what the API
server writes (uid, resourceVersion, managedFields, …), kubectl's
last-applied annotation, and Sveltos's finalizers — carried over, they would
keep our objects from ever being deleted. Left out with a finding: owner
references and Sveltos's pause annotation, whose meaning does not carry.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.convert.report import Report

_SERVER_FIELDS = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
                  "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds")
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
SVELTOS_PAUSED = "profile.projectsveltos.io/paused"


def name_of(document: Mapping[str, Any]) -> str:
    """`Kind/name` or `Kind/namespace/name`, how findings name a document."""
    metadata = document.get("metadata") or {}
    namespace = metadata.get("namespace")
    name = metadata.get("name") or metadata.get("generateName") or "?"
    kind = document.get("kind") or "?"
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def clean(metadata: Any, *, namespaced: bool, report: Report) -> dict[str, Any]:
    """The metadata worth carrying over, with findings for what is not."""
    if not isinstance(metadata, Mapping):
        return {}
    out = {key: value for key, value in metadata.items()
           if key not in _SERVER_FIELDS and key not in ("finalizers", "ownerReferences")}
    if not namespaced:
        out.pop("namespace", None)
    if metadata.get("ownerReferences"):
        report.dropped("metadata.ownerReferences", "owners on the management cluster are not "
                       "carried over")
    annotations = dict(metadata.get("annotations") or {})
    annotations.pop(_LAST_APPLIED, None)
    if SVELTOS_PAUSED in annotations:
        annotations.pop(SVELTOS_PAUSED)
        report.dropped(f"metadata.annotations[{SVELTOS_PAUSED}]", "pausing a whole profile "
                       "has no equivalent; spec.rollout.paused holds back new revisions only")
    if annotations:
        out["annotations"] = annotations
    else:
        out.pop("annotations", None)
    return out
