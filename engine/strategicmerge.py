"""Strategic merge patches, as `kubectl patch` and kustomize apply them to one object.

Used by `engine.patches` for a profile's `patches` whose text is a YAML
mapping. A strategic merge is a JSON merge patch (maps merge key by key, a
null deletes the key, anything else replaces) plus one refinement: some
lists of Kubernetes' built-in kinds merge element by element, matched on a
*merge key* (containers by `name`, volumeMounts by `mountPath`, ...), instead
of being replaced whole. The API server knows the merge keys from its
OpenAPI schema; this module carries the ones of the workload kinds (see
`BUILTIN_KEYS`) so that patches merge without asking a cluster. For kinds it
has no schema for (custom resources), it does what kustomize does: a list
whose elements all have a `name` merges by `name`, any other list is
replaced.

Directives honoured: `$patch: delete` (on the object: drop it; on a list
element: remove the element with that merge key; on a map: remove it),
`$patch: replace` (on a map or as a list element: replace instead of
merge), `$deleteFromPrimitiveList/<field>` and `$retainKeys`. `$setElementOrder`
is accepted and ignored (the order of a merged list is the original's, new
elements last).

Pure: plain dicts in, new plain dicts out; the inputs are never modified. The
output shares the subtrees the patch does not touch with the input (nothing here
changes a dict or list in place), which keeps a merge over a large object cheap.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DELETE = object()  # the result of merging `$patch: delete` into an object


@dataclass(frozen=True)
class Shape:
    """What the schema says about one field: its sub-fields and, for a list, how it merges.

    `known` is False where there is no schema (custom resources): lists then merge by
    `name` when every element has one, as kustomize infers.
    """

    fields: Mapping[str, Shape] = field(default_factory=dict)
    key: str = ""  # merge key of a list of objects; "" replaces the list whole
    primitive_set: bool = False  # a list of scalars merged as a set (finalizers)
    items: Shape | None = None  # the shape of a list's elements
    known: bool = True

    def child(self, name: str) -> Shape:
        found = self.fields.get(name)
        if found is not None:
            return found
        return _ATOMIC if self.known else _UNKNOWN


_ATOMIC = Shape()
_UNKNOWN = Shape(known=False)


def _keyed(key: str, items: Shape = _ATOMIC) -> Shape:
    return Shape(key=key, items=items)


_CONTAINER = Shape(fields={
    "env": _keyed("name"),
    "ports": _keyed("containerPort"),
    "volumeMounts": _keyed("mountPath"),
    "volumeDevices": _keyed("devicePath"),
})
_POD_SPEC = Shape(fields={
    "containers": _keyed("name", _CONTAINER),
    "initContainers": _keyed("name", _CONTAINER),
    "ephemeralContainers": _keyed("name", _CONTAINER),
    "volumes": _keyed("name"),
    "imagePullSecrets": _keyed("name"),
    "hostAliases": _keyed("ip"),
    "topologySpreadConstraints": _keyed("topologyKey"),
    "resourceClaims": _keyed("name"),
    "schedulingGates": _keyed("name"),
})
_META = Shape(fields={"ownerReferences": _keyed("uid"),
                      "finalizers": Shape(primitive_set=True)})
_UNKNOWN_ROOT = Shape(fields={"metadata": _META}, known=False)
_POD_TEMPLATE = Shape(fields={"metadata": _META, "spec": _POD_SPEC})
_WITH_TEMPLATE = Shape(fields={"metadata": _META,
                               "spec": Shape(fields={"template": _POD_TEMPLATE})})

# (group, kind) -> the shape of the whole object, for kinds whose lists merge by key.
BUILTIN_KEYS: Mapping[tuple[str, str], Shape] = {
    ("", "Pod"): Shape(fields={"metadata": _META, "spec": _POD_SPEC}),
    ("", "PodTemplate"): Shape(fields={"metadata": _META, "template": _POD_TEMPLATE}),
    ("", "ReplicationController"): _WITH_TEMPLATE,
    ("apps", "Deployment"): _WITH_TEMPLATE,
    ("apps", "StatefulSet"): _WITH_TEMPLATE,
    ("apps", "DaemonSet"): _WITH_TEMPLATE,
    ("apps", "ReplicaSet"): _WITH_TEMPLATE,
    ("batch", "Job"): _WITH_TEMPLATE,
    ("batch", "CronJob"): Shape(fields={"metadata": _META, "spec": Shape(fields={
        "jobTemplate": Shape(fields={"metadata": _META, "spec": Shape(fields={
            "template": _POD_TEMPLATE})})})}),
    ("", "Service"): Shape(fields={"metadata": _META, "spec": Shape(fields={
        "ports": _keyed("port")})}),
    ("", "ServiceAccount"): Shape(fields={"metadata": _META, "secrets": _keyed("name"),
                                          "imagePullSecrets": _keyed("name")}),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): Shape(fields={
        "metadata": _META, "webhooks": _keyed("name")}),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): Shape(fields={
        "metadata": _META, "webhooks": _keyed("name")}),
}
# Groups served by the API server itself: their lists without a merge key are atomic.
BUILTIN_GROUPS = frozenset({
    "", "apps", "batch", "autoscaling", "policy", "rbac.authorization.k8s.io",
    "networking.k8s.io", "storage.k8s.io", "scheduling.k8s.io", "coordination.k8s.io",
    "admissionregistration.k8s.io", "apiextensions.k8s.io", "apiregistration.k8s.io",
    "certificates.k8s.io", "discovery.k8s.io", "node.k8s.io", "events.k8s.io",
    "flowcontrol.apiserver.k8s.io", "resource.k8s.io",
})


def shape_of(api_version: str, kind: str) -> Shape:
    """The merge shape of a kind: its keyed lists, atomic lists, or "no schema"."""
    group = api_version.rpartition("/")[0]
    found = BUILTIN_KEYS.get((group, kind))
    if found is not None:
        return found
    return Shape(fields={"metadata": _META}) if group in BUILTIN_GROUPS else _UNKNOWN_ROOT


def apply(obj: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any] | None:
    """`obj` with the strategic merge `patch` applied; None when the patch deletes it."""
    shape = shape_of(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    merged = _merge_map(obj, patch, shape)
    if merged is DELETE:
        return None
    result: dict[str, Any] = merged
    return result


def _merge(original: Any, patch: Any, shape: Shape) -> Any:
    if isinstance(patch, Mapping):
        return _merge_map(original if isinstance(original, Mapping) else {}, patch, shape)
    if isinstance(patch, list):
        return _merge_list(original if isinstance(original, list) else [], patch, shape)
    return copy.deepcopy(patch)


def _merge_map(original: Mapping[str, Any], patch: Mapping[str, Any], shape: Shape) -> Any:
    directive = patch.get("$patch")
    if directive == "delete":
        return DELETE
    body = {k: v for k, v in patch.items() if not k.startswith("$")}
    if directive == "replace":
        return _clean(body)
    out = dict(original)
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            if isinstance(out.get(name), list) and isinstance(value, list):
                out[name] = [v for v in out[name] if v not in value]
    for key, value in body.items():
        if value is None:
            out.pop(key, None)
            continue
        merged = _merge(out.get(key), value, shape.child(key))
        if merged is DELETE:
            out.pop(key, None)
        else:
            out[key] = merged
    return out


def _merge_list(original: list[Any], patch: list[Any], shape: Shape) -> list[Any]:
    if any(isinstance(e, Mapping) and e.get("$patch") == "replace" for e in patch):
        return [_clean(e) for e in patch
                if not (isinstance(e, Mapping) and e.get("$patch") == "replace")]
    if shape.primitive_set:
        return list(original) + [copy.deepcopy(e) for e in patch if e not in original]
    key = shape.key or ("" if shape.known else _inferred_key(original, patch))
    if not key:
        return [_clean(e) for e in patch]
    items = shape.items or (_ATOMIC if shape.known else _UNKNOWN)
    out = list(original)
    for element in patch:
        if not isinstance(element, Mapping) or key not in element:
            out.append(copy.deepcopy(element))
            continue
        index = next((i for i, e in enumerate(out)
                      if isinstance(e, Mapping) and e.get(key) == element[key]), None)
        if element.get("$patch") == "delete":
            if index is not None:
                del out[index]
            continue
        if index is None:
            out.append(_clean(element))
        else:
            out[index] = _merge_map(out[index], element, items)
    return out


def _inferred_key(original: list[Any], patch: list[Any]) -> str:
    """kustomize's rule without a schema: merge by `name` when every element has one."""
    elements = [*original, *patch]
    if elements and all(isinstance(e, Mapping) and "name" in e for e in elements):
        return "name"
    return ""


def _clean(value: Any) -> Any:
    """A patch value with its directives removed, for places it is taken as it is."""
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return copy.deepcopy(value)
