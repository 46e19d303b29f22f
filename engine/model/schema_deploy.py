"""CRD schema of the profile fields that shape what is deployed, beyond charts and services.

Used by `engine.model.schema` for ClusterProfile and Profile: Sveltos'
`policyRefs[]` (with `tier`, `deploymentType`, `skipNamespaceCreation`,
`optional`), `patches`, `patchesFrom`, `extraLabels`, `extraAnnotations`,
`maxConsecutiveFailures`, `templateResourceRefs`, `preDeleteChecks`,
`postDeleteChecks` (and Flotilla's `preDeployChecks`), and the Sveltos fields
Flotilla accepts without honouring yet (`reloader`, `setRefs`): a Sveltos
profile applies unchanged and the profile's `Unsupported` condition names
what was not done (`engine.unsupported`). Pure data.
"""

from __future__ import annotations

import copy

from engine.model.schema_health import health_check
from engine.model.schema_parts import (
    LABEL_LEN,
    NAME_LEN,
    TEXT_LEN,
    Schema,
    array,
    boolean,
    integer,
    obj,
    ref_list,
    rule,
    string,
    string_map,
    strings,
)

PATCH_LEN = 65536


def _ref(description: str, kinds: tuple[str, ...], scope: str, extra: dict[str, Schema],
         ) -> Schema:
    return obj(description, {
        "kind": string(" or ".join(kinds) + ".", enum=kinds),
        "namespace": string(f"Namespace of the object{scope}.", max_length=LABEL_LEN),
        "name": string("Name of the object.", min_length=1, max_length=NAME_LEN),
        **extra,
    }, required=("kind", "name"))


def _deployment_type() -> Schema:
    return string("Remote deploys to the workload cluster; Local would deploy to the "
                  "management cluster, which Flotilla does not do yet (the profile's "
                  "Unsupported condition names such refs, and they are not deployed).",
                  enum=("Remote", "Local"), default="Remote")


def policy_refs(scope: str) -> Schema:
    """spec.policyRefs: ConfigMaps/Secrets whose data are manifests."""
    ref = _ref("A ConfigMap or Secret of manifests.", ("ConfigMap", "Secret"), scope, {
        "optional": boolean("When true, a missing object is not an error: nothing is deployed "
                            "from it.", default=False),
        "tier": integer("Ranks this ref against the profile's other policyRefs: when two of "
                        "them hold the same object, the lower tier's copy is deployed.",
                        default=100, minimum=1),
        "deploymentType": _deployment_type(),
        "skipNamespaceCreation": boolean("Do not create the namespaces of these objects; "
                                         "they must exist.", default=False),
    })
    return array(f"ConfigMaps/Secrets{scope} whose data are YAML manifests to apply.", ref,
                 max_items=256)


def _patch() -> Schema:
    target = obj("Objects the patch applies to; every field set must match.", {
        "group": string("API group, a regular expression.", max_length=TEXT_LEN),
        "version": string("API version, a regular expression.", max_length=TEXT_LEN),
        "kind": string("Kind, a regular expression.", max_length=TEXT_LEN),
        "name": string("Name, a regular expression.", max_length=TEXT_LEN),
        "namespace": string("Namespace, a regular expression.", max_length=TEXT_LEN),
        "labelSelector": string("Label selector in kubectl syntax.", max_length=TEXT_LEN),
        "annotationSelector": string("Annotation selector in kubectl syntax.",
                                     max_length=TEXT_LEN),
    })
    return obj("A strategic merge or JSON 6902 patch and its target.", {
        "patch": string("The patch, a Jinja2 template over `cluster`: a YAML mapping (strategic "
                        "merge) or a list of JSON 6902 operations.", min_length=1,
                        max_length=PATCH_LEN),
        "target": target,
    }, required=("patch",))


def _template_resource_ref() -> Schema:
    return obj("A management-cluster object exposed to templates (Sveltos shape).", {
        "identifier": string("Name templates use for the object.", min_length=1,
                             max_length=LABEL_LEN),
        "resource": obj("The object.", {
            "apiVersion": string("API version (default v1).", max_length=TEXT_LEN),
            "kind": string("Kind.", max_length=LABEL_LEN),
            "namespace": string("Namespace, a Jinja2 template over `cluster`; empty: the "
                                "cluster's (a Profile's own, always).", max_length=TEXT_LEN),
            "name": string("Name, a Jinja2 template over `cluster`.", min_length=1,
                           max_length=TEXT_LEN),
        }, required=("kind", "name")),
        "optional": boolean("A missing object is not an error: getResource gives an empty "
                            "map.", default=False),
        "ignoreStatusChanges": boolean("The object's status is not kept (templates see none), "
                                       "so status changes never make a revision.",
                                       default=False),
    }, required=("identifier", "resource"))


def _check() -> Schema:
    # A copy: shared sub-schemas would be written to the CRD file as YAML anchors.
    return copy.deepcopy(health_check("A check (featureID is ignored)."))


def profile_fields(scope: str) -> dict[str, Schema]:
    """The profile spec fields this module adds (policyRefs apart: see `policy_refs`)."""
    return {
        "patches": array("Patches applied to every object the profile deploys (chart objects "
                         "through Helm's post-renderer, manifests before they are applied), "
                         "in order.", _patch(), max_items=64),
        "patchesFrom": ref_list(f"ConfigMaps/Secrets{scope} whose data hold more patches: "
                                "each key a YAML list of {patch, target}; applied after "
                                "`patches`, keys in sorted order.", max_items=32, rules=[rule(
                                    "self.kind in ['ConfigMap', 'Secret']",
                                    "kind must be ConfigMap or Secret", field_path=".kind")]),
        "extraLabels": string_map("Labels added to every object the profile deploys; they "
                                  "override the object's own.", string("", max_length=LABEL_LEN)),
        "extraAnnotations": string_map("Annotations added to every object the profile deploys; "
                                       "they override the object's own.",
                                       string("", max_length=PATCH_LEN)),
        "maxConsecutiveFailures": integer("Failed attempts of the same input before an item "
                                          "stops being retried (FailedNonRetriable); default 5.",
                                          minimum=1),
        "reloader": boolean("Sveltos' rolling restart on mounted ConfigMap/Secret changes. "
                            "Accepted; not honoured yet (reported as Unsupported when true)."),
        "setRefs": strings("Sveltos ClusterSets/Sets. Accepted; not honoured (reported as "
                           "Unsupported).", max_items=64),
        "templateResourceRefs": array("Management-cluster objects every template of the "
                                      "profile reads as getResource(\"<identifier>\"); an "
                                      "edit of one is a new revision.",
                                      _template_resource_ref(), max_items=64,
                                      map_keys=("identifier",)),
        "preDeployChecks": array("Checks that must pass on a cluster before anything is "
                                 "deployed or updated there (Flotilla).",
                                 _check(), max_items=32),
        "preDeleteChecks": array("Checks that must pass before anything is withdrawn from a "
                                 "cluster; while one fails, the withdrawal waits.",
                                 _check(), max_items=32),
        "postDeleteChecks": array("Checks that must pass after the withdrawal removed "
                                  "everything, before the ClusterSummary goes.",
                                  _check(), max_items=32),
    }
