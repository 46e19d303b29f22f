"""Building blocks for the CRD schemas assembled in `engine.model.schema`.

Small constructors for structural OpenAPI v3 schema nodes, the shapes several
kinds share (LabelSelector, Condition, IntOrPercent, durations,
ConfigMap/Secret references) and the larger pieces of the profile spec
(helmCharts entries, rollout), so that `schema.py` reads like docs/api.md.
Pure data: no I/O, no kubernetes imports. Only `engine.model.schema` uses it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Schema = dict[str, Any]

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DURATION = r"^([0-9]+(\.[0-9]+)?(h|m|s|ms))+$"
PERCENT = r"^[0-9]+%$"

# Length bounds. The API server estimates the worst-case cost of every CEL rule
# from the sizes of the lists it iterates and the strings it compares; without
# maxItems/maxLength it assumes the 3 MiB request limit and may reject the CRD.
# So every list or string a rule touches (directly or through a parent list)
# carries an explicit bound.
NAME_LEN = 253  # object names (DNS subdomains)
LABEL_LEN = 63  # namespaces, stage names (DNS labels)
RELEASE_LEN = 53  # Helm's limit on release names
TEXT_LEN = 1024
CEL_LEN = 4096
MESSAGE_LEN = 32768

UNIQUE_NAMES = "self.all(x, self.exists_one(y, y.name == x.name))"


def _node(description: str, type_: str | None, extras: Mapping[str, Any]) -> Schema:
    """One schema node: description first (it reads best in YAML), then type, then the rest."""
    node: Schema = {"description": description} if description else {}
    if type_ is not None:
        node["type"] = type_
    node.update({key: value for key, value in extras.items() if value is not None})
    return node


def rule(
    expression: str, message: str, *, field_path: str | None = None, reason: str | None = None
) -> Schema:
    """An `x-kubernetes-validations` entry: CEL the API server runs on every write."""
    return _node("", None, {"rule": expression, "message": message, "fieldPath": field_path,
                            "reason": reason})


def string(
    description: str,
    *,
    enum: Sequence[str] = (),
    default: str | None = None,
    pattern: str | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    fmt: str | None = None,
) -> Schema:
    return _node(description, "string", {
        "enum": list(enum) or None, "default": default, "pattern": pattern,
        "minLength": min_length, "maxLength": max_length, "format": fmt,
    })


def integer(
    description: str,
    *,
    default: int | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
    fmt: str = "int32",
) -> Schema:
    return _node(description, "integer",
                 {"format": fmt, "default": default, "minimum": minimum, "maximum": maximum})


def count(description: str, *, fmt: str = "int32") -> Schema:
    """A non-negative number written by the controller."""
    return integer(description, minimum=0, fmt=fmt)


def boolean(description: str, *, default: bool | None = None) -> Schema:
    return _node(description, "boolean", {"default": default})


def array(
    description: str,
    items: Schema,
    *,
    min_items: int | None = None,
    max_items: int | None = None,
    rules: Sequence[Schema] = (),
    map_keys: Sequence[str] = (),
) -> Schema:
    """A list; `map_keys` makes it a list-map (entries merged by those keys)."""
    return _node(description, "array", {
        "items": items, "minItems": min_items, "maxItems": max_items,
        "x-kubernetes-list-type": "map" if map_keys else None,
        "x-kubernetes-list-map-keys": list(map_keys) or None,
        "x-kubernetes-validations": list(rules) or None,
    })


def strings(description: str, *, max_items: int, max_length: int = NAME_LEN) -> Schema:
    return array(description, string("", max_length=max_length), max_items=max_items)


def obj(
    description: str,
    properties: Mapping[str, Schema],
    *,
    required: Sequence[str] = (),
    rules: Sequence[Schema] = (),
    atomic: bool = False,
) -> Schema:
    return _node(description, "object", {
        "properties": dict(properties), "required": list(required) or None,
        # Atomic: a selector is replaced whole by server-side apply, never merged key by key.
        "x-kubernetes-map-type": "atomic" if atomic else None,
        "x-kubernetes-validations": list(rules) or None,
    })


def string_map(description: str, values: Schema) -> Schema:
    """An object with arbitrary keys whose values share one schema."""
    return _node(description, "object", {"additionalProperties": values})


def free_form(description: str) -> Schema:
    """An object kept as written (Helm values, parameters): the API server prunes nothing."""
    return _node(description, "object", {"x-kubernetes-preserve-unknown-fields": True})


def any_value(description: str) -> Schema:
    """Any JSON value (string, number, object...): a parameter default, a values string."""
    return _node(description, None, {"x-kubernetes-preserve-unknown-fields": True})


def int_or_percent(description: str, *, default: int | str | None = None) -> Schema:
    """IntOrPercent: an integer >= 0 or "N%" (percentages of a count round up)."""
    return _node(description + ' An integer >= 0 or a percentage like "25%" (rounded up).', None, {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "x-kubernetes-int-or-string": True,
        # `pattern` constrains only the string form; the rule covers the integer form.
        "pattern": PERCENT,
        "default": default,
        "x-kubernetes-validations": [
            rule("type(self) != int || self >= 0", 'must be >= 0 or a percentage like "25%"')
        ],
    })


def duration(description: str, *, default: str | None = None) -> Schema:
    return string(description + ' A duration such as "90s", "10m" or "1h30m".',
                  default=default, pattern=DURATION, max_length=64)


def column(name: str, type_: str, json_path: str, description: str, *, priority: int = 0) -> Schema:
    """A printer column; priority 1 shows only with `kubectl get -o wide`."""
    entry: Schema = {"name": name, "type": type_, "jsonPath": json_path, "description": description}
    if priority:
        entry["priority"] = priority
    return entry


AGE: Schema = {"name": "AGE", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def label_selector(description: str) -> Schema:
    """A standard metav1.LabelSelector: matchLabels ANDed with matchExpressions."""
    requirement = obj("A label requirement.", {
        "key": string("The label key.", min_length=1, max_length=317),
        "operator": string("How the key relates to values.",
                           enum=("In", "NotIn", "Exists", "DoesNotExist")),
        "values": strings("Values for In and NotIn; empty otherwise.", max_items=256,
                          max_length=LABEL_LEN),
    }, required=("key", "operator"), rules=[rule(
        "(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)",
        "In and NotIn need at least one value; Exists and DoesNotExist take none",
        field_path=".values",
    )])
    return obj(description, {
        "matchLabels": string_map("Labels that must all be present with these values.",
                                  string("", max_length=LABEL_LEN)),
        "matchExpressions": array("Requirements that must all hold.", requirement, max_items=64),
    }, atomic=True)


def conditions(types: str) -> Schema:
    """Standard conditions keyed by type, so `kubectl wait --for=condition=Ready` works."""
    condition = obj("A standard Kubernetes condition.", {
        "type": string("Condition type, e.g. Ready.", min_length=1, max_length=316),
        "status": string("True, False or Unknown.", enum=("True", "False", "Unknown")),
        "reason": string("CamelCase machine-readable reason.", max_length=TEXT_LEN),
        "message": string("Human-readable explanation.", max_length=MESSAGE_LEN),
        "lastTransitionTime": string("When status last changed.", fmt="date-time"),
        "observedGeneration": count("metadata.generation the condition reflects.", fmt="int64"),
    }, required=("type", "status"))
    return array(f"Standard conditions: {types}.", condition, max_items=32, map_keys=("type",))


def object_ref(description: str, *, kinds: Sequence[str] = ()) -> Schema:
    """A reference by namespace and name (and kind when several kinds are possible)."""
    properties: dict[str, Schema] = {}
    if kinds:
        properties["kind"] = string("Kind of the object.", enum=kinds)
    properties["namespace"] = string("Namespace of the object.", max_length=LABEL_LEN)
    properties["name"] = string("Name of the object.", max_length=NAME_LEN)
    return obj(description, properties)


def coordinates(description: str, *extra: tuple[str, Schema]) -> Schema:
    """group/version/kind/namespace/name of an object, plus `extra` fields."""
    return obj(description, {
        "group": string('API group ("" for core).', max_length=NAME_LEN),
        "version": string("API version.", max_length=LABEL_LEN),
        "kind": string("Kind.", max_length=LABEL_LEN),
        "namespace": string("Namespace (empty when cluster-scoped).", max_length=LABEL_LEN),
        "name": string("Name.", max_length=NAME_LEN),
        **dict(extra),
    })


def ref_list(description: str, *, max_items: int, rules: Sequence[Schema] = ()) -> Schema:
    """policyRefs / valuesFrom: ConfigMaps or Secrets by namespace and name."""
    ref = obj("A ConfigMap or Secret.", {
        "kind": string("ConfigMap or Secret.", enum=("ConfigMap", "Secret")),
        "namespace": string("Namespace of the object (a Profile may only name its own; "
                            "empty means the Profile's).", max_length=LABEL_LEN),
        "name": string("Name of the object.", min_length=1, max_length=NAME_LEN),
        "optional": boolean("When true, a missing object is not an error.", default=False),
    }, required=("kind", "name"), rules=rules)
    return array(description, ref, max_items=max_items)


def _required(field: str) -> Schema:
    return rule(f"has(self.{field}) && size(self.{field}) > 0", f"{field} is required",
                field_path=f".{field}", reason="FieldValueRequired")


def helm_chart(options: Schema) -> Schema:
    """A helmCharts[] entry, in Sveltos' shape; `options` is its helm options' schema."""
    return obj("A Helm chart to install (or uninstall) on every matching cluster.", {
        "repositoryURL": string("Chart repository URL (https:// or oci://).", max_length=TEXT_LEN),
        "repositoryName": string("Local name of the repository.", max_length=LABEL_LEN),
        "chartName": string('"repo/chart" as in Sveltos, or plain "chart".', max_length=TEXT_LEN),
        "chartVersion": string("Exact chart version.", max_length=128),
        "releaseName": string("Helm release name.", pattern=DNS_LABEL, max_length=RELEASE_LEN),
        "releaseNamespace": string("Namespace of the release.", pattern=DNS_LABEL,
                                   max_length=LABEL_LEN),
        "helmChartAction": string("Install or Uninstall.", enum=("Install", "Uninstall"),
                                  default="Install"),
        "values": any_value("Values as a YAML string or an object; Jinja2-templated over "
                            "`cluster` (the WorkloadCluster)."),
        "valuesFrom": ref_list("ConfigMaps/Secrets whose data are merged into the values, "
                               "in order.", max_items=32),
        "options": options,
        "registryCredentialsConfig": any_value("Sveltos' credentials for the chart registry. "
                                               "Accepted; not honoured yet (reported as "
                                               "Unsupported)."),
        "signatureVerification": any_value("Sveltos' chart signature verification. Accepted; "
                                           "not honoured yet (reported as Unsupported)."),
    }, rules=[
        _required("releaseName"),
        _required("releaseNamespace"),
        _required("chartName"),
        rule("self.helmChartAction != 'Install' || "
             "(has(self.chartVersion) && size(self.chartVersion) > 0)",
             "chartVersion is required when helmChartAction is Install",
             field_path=".chartVersion", reason="FieldValueRequired"),
    ])


def rollout() -> Schema:
    """spec.rollout: ordered stages, gates and what to do on failure."""
    stage = obj("A rollout stage. A cluster belongs to the first stage that selects it; a stage "
                "with neither clusterSelector nor percent takes the rest.", {
        "name": string("Stage name, unique in the rollout.", pattern=DNS_LABEL,
                       max_length=LABEL_LEN),
        "clusterSelector": label_selector("Clusters in this stage."),
        "percent": int_or_percent("Share (or number) of the matched clusters in this stage."),
        "maxUpdate": int_or_percent("Clusters updated at once here; defaults to spec.maxUpdate."),
        "approval": string("Manual waits for `flotilla rollout approve` before the stage starts.",
                           enum=("Automatic", "Manual"), default="Automatic"),
        "minSuccessTime": duration("Per-stage override of rollout.minSuccessTime."),
    }, required=("name",), rules=[rule(
        "!(has(self.clusterSelector) && has(self.percent))",
        "a stage selects clusters by clusterSelector or by percent, not both",
        field_path=".percent", reason="FieldValueForbidden",
    )])
    return obj("Staged rollout with health gates, beyond maxUpdate.", {
        "stages": array("Ordered stages.", stage, max_items=20, rules=[
            rule(UNIQUE_NAMES, "stage names must be unique"),
        ]),
        "minSuccessTime": duration("How long a stage stays healthy before the next one starts.",
                                   default="0s"),
        "progressDeadline": duration("A cluster not healthy by then has failed.", default="10m"),
        "maxFailures": int_or_percent("Failed clusters a stage tolerates before the rollout "
                                      "stops.", default=0),
        "onFailure": string("Pause the rollout, or also Rollback failed clusters to the last good "
                            "revision.", enum=("Pause", "Rollback"), default="Pause"),
        "paused": boolean("While true no cluster moves to a new revision.", default=False),
    })
