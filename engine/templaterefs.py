"""Sveltos' templateResourceRefs: management-cluster objects that templates read by identifier.

Used by the controller twice. The revision store (`controller.revisions`)
resolves each ref for every cluster the profile selects (names and
namespaces may be templates over `cluster`), reads the objects and keeps them
in the revision's snapshot — a Secret in its Secret part — so an edit of one
is a new revision rolled out like any other. The desired state of one cluster
(`controller.desired`) then puts `getResource("<identifier>")` into every
template's context: values, valuesFrom, patches, templated policyRefs and
kustomization values all see the same objects.

What is captured is the object without `metadata.managedFields` and
`metadata.resourceVersion` (they change on every write), and without `status`
when the ref sets `ignoreStatusChanges` (so status updates never make a
revision; such templates see no status). An optional object that is absent
reads as an empty map. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine import errors, render, snapshot
from engine.model import types

# Snapshot keys of captured objects; `/` separates fields no Kubernetes name contains.
PREFIX = snapshot.RESOURCE_PREFIX
_OBJECT = "object"


@dataclass(frozen=True)
class Resolved:
    """One ref resolved for one cluster: which object, under which identifier."""

    identifier: str
    api_version: str
    kind: str
    namespace: str
    name: str
    optional: bool
    ignore_status: bool
    field: str

    @property
    def key(self) -> str:
        return f"{PREFIX}{self.api_version}/{self.kind}/{self.namespace}/{self.name}"

    @property
    def secret(self) -> bool:
        """Secrets are kept in the snapshot's Secret part, never in the revision itself."""
        return self.kind == "Secret" and self.api_version == "v1"

    def cluster_scoped(self) -> Resolved:
        return Resolved(self.identifier, self.api_version, self.kind, "", self.name,
                        self.optional, self.ignore_status, self.field)


def resolve(refs: Sequence[types.TemplateResourceRef], cluster: Mapping[str, Any], *,
            profile_kind: str, profile_namespace: str) -> list[Resolved]:
    """The objects `refs` name for one cluster; templated names rendered over `cluster`."""
    context = {"cluster": cluster}
    cluster_ns = str((cluster.get("metadata") or {}).get("namespace") or "")
    found = []
    for index, ref in enumerate(refs):
        where = f"spec.templateResourceRefs[{index}]"
        name = str(render.template_values(ref.name, context, field=f"{where}.resource.name"))
        namespace = str(render.template_values(ref.namespace, context,
                                               field=f"{where}.resource.namespace"))
        if profile_kind == "Profile":
            namespace = profile_namespace  # tenant scope: its own namespace only
        elif not namespace:
            namespace = cluster_ns
        if not name:
            raise errors.SpecError("the name renders empty for cluster "
                                   f"{cluster_ns}/{(cluster.get('metadata') or {}).get('name')}",
                                   field=f"{where}.resource.name")
        found.append(Resolved(ref.identifier, ref.api_version, ref.kind, namespace, name,
                              ref.optional, ref.ignore_status_changes, where))
    return found


def capture(obj: Mapping[str, Any] | None, ref: Resolved) -> Mapping[str, str] | None:
    """What a snapshot keeps of a read object (None: absent)."""
    if obj is None:
        return None
    kept = {k: v for k, v in obj.items() if not (k == "status" and ref.ignore_status)}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items()
            if k not in ("managedFields", "resourceVersion")}
    kept["metadata"] = meta
    return {_OBJECT: json.dumps(kept, sort_keys=True, separators=(",", ":"))}


def release(data: Mapping[str, str] | None) -> dict[str, Any] | None:
    """The object a snapshot kept (None: absent)."""
    if data is None or _OBJECT not in data:
        return None
    obj: dict[str, Any] = json.loads(data[_OBJECT])
    return obj


def getter(objects: Mapping[str, Mapping[str, Any] | None]) -> Callable[[str], Any]:
    """`getResource(identifier)` for templates: the object, or {} for an absent optional one."""
    def get_resource(identifier: str) -> Any:
        if identifier not in objects:
            known = ", ".join(sorted(objects)) or "none"
            raise errors.SpecError(f"getResource({identifier!r}): no templateResourceRefs "
                                   f"entry has that identifier (known: {known})",
                                   field="spec.templateResourceRefs", reason="TemplateError")
        return objects[identifier] or {}
    return get_resource
