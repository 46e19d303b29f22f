"""CRD schema of a health check: profile `validateHealths[]` and catalog `healthChecks[]`.

Used by `engine.model.schema`. The shape is Sveltos' `ValidateHealth` (see
`engine.model.healthcheck` for the meaning of each field) plus Flotilla's
`objectName` and `labelSelector`; `featureID` and `jobCheck` are left out of
the catalog's checks, which always follow their own release. Pure data.
"""

from __future__ import annotations

from engine.model.schema_parts import (
    CEL_LEN,
    LABEL_LEN,
    NAME_LEN,
    TEXT_LEN,
    UNIQUE_NAMES,
    Schema,
    array,
    duration,
    obj,
    rule,
    string,
)

SCRIPT_LEN = 32768

_CEL_RULE = obj("A named CEL rule.", {
    "name": string("Name of the rule, shown in status when it decides.", min_length=1,
                   max_length=LABEL_LEN),
    "rule": string("CEL over `resource` (the live object as a map; `object` works too) that "
                   "returns true when the object is healthy, e.g. "
                   "resource.status.availableReplicas == resource.spec.replicas.",
                   min_length=1, max_length=CEL_LEN),
}, required=("name", "rule"))

_LABEL_FILTER = obj("A label filter, as in Sveltos.", {
    "key": string("The label key.", min_length=1, max_length=317),
    "operation": string("Equal (key=value), Different (key!=value), Has (the key is set) or "
                        "DoesNotHave (it is not).",
                        enum=("Equal", "Different", "Has", "DoesNotHave")),
    "value": string("The value Equal and Different compare with.", max_length=LABEL_LEN),
}, required=("key", "operation"))

_JOB_CHECK = obj("A Job run on the workload cluster; its outcome is the verdict (Sveltos' "
                 "jobCheck). It runs once per revision of the profile; a failed run is retried "
                 "a minute later.", {
    "jobRef": obj("The ConfigMap or Secret (management cluster) whose data holds the Job "
                  "manifest.", {
        "kind": string("ConfigMap or Secret.", enum=("ConfigMap", "Secret"),
                       default="ConfigMap"),
        "namespace": string("Namespace of the object; a Profile's own namespace when empty "
                            "(and a Profile may name no other).", max_length=LABEL_LEN),
        "name": string("Name of the object.", min_length=1, max_length=NAME_LEN),
    }, required=("name",)),
    "timeout": duration("How long the Job may run before the check fails (default 5m)."),
}, required=("jobRef",))


def health_check(description: str, *, profile: bool = True) -> Schema:
    """One health check; `profile=False` (the catalog's) drops `featureID`."""
    properties: dict[str, Schema] = {
        "name": string("Name of the check, shown in status and events.", min_length=1,
                       max_length=NAME_LEN),
    }
    if profile:
        properties["featureID"] = string(
            "The feature whose deployment the check follows and gates: Helm (helmCharts and "
            "services), Resources (policyRefs) or Kustomize. Unset: after everything.",
            enum=("Resources", "Helm", "Kustomize"))
    properties.update({
        "group": string('API group; "" (the default) is the core group.', default="",
                        max_length=NAME_LEN),
        "version": string("API version, e.g. v1.", max_length=LABEL_LEN),
        "kind": string("Kind, e.g. Deployment.", max_length=LABEL_LEN),
        "namespace": string("Namespace; empty means every namespace (or a cluster-scoped kind).",
                            max_length=LABEL_LEN),
        "objectName": string("One object by name (Flotilla); omit to check every object "
                             "selected.", max_length=NAME_LEN),
        "labelSelector": string("Label selector in kubectl syntax, e.g. app=web,tier in (a,b) "
                                "(Flotilla); ANDed with labelFilters.", max_length=TEXT_LEN),
        "labelFilters": array("Label filters (Sveltos); all must hold.", _LABEL_FILTER,
                              max_items=20),
        "evaluateCEL": array("Named CEL rules, evaluated in order on each object; the first "
                             "that returns true makes it healthy, none means not healthy.",
                             _CEL_RULE, max_items=16, rules=[
                                 rule(UNIQUE_NAMES, "rule names must be unique"),
                             ]),
        "script": string("Lua (Sveltos' contract): `function evaluate()` sees the object as "
                         "`obj` and returns {healthy = bool, message = string}. Runs sandboxed "
                         "with a time and memory limit.", max_length=SCRIPT_LEN),
    })
    gvk = "has(self.version) && size(self.version) > 0 && has(self.kind) && size(self.kind) > 0"
    if not profile:  # a catalog check follows its release; no Jobs there
        return obj(description, properties, required=("name",), rules=[
            rule(gvk, "version and kind are required", reason="FieldValueRequired"),
        ])
    properties["jobCheck"] = _JOB_CHECK
    return obj(description, properties, required=("name",), rules=[
        rule(f"has(self.jobCheck) || ({gvk})", "version and kind are required (unless jobCheck)",
             reason="FieldValueRequired"),
        rule("!has(self.jobCheck) || (!has(self.script) && !has(self.evaluateCEL))",
             "jobCheck excludes script and evaluateCEL", field_path=".jobCheck",
             reason="FieldValueForbidden"),
    ])
