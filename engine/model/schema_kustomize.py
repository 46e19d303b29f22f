"""CRD schema of `kustomizationRefs[]`, in Sveltos' KustomizationRef shape.

Used by `engine.model.schema_deploy` for ClusterProfile and Profile. A
ConfigMap or Secret holds a kustomization (files as data keys, or a
tarball); Flux sources (GitRepository, OCIRepository, Bucket) and
`deploymentType: Local` are accepted as Sveltos writes them and reported by
the profile's `Unsupported` condition. Pure data.
"""

from __future__ import annotations

from engine.model.schema_parts import (
    LABEL_LEN,
    NAME_LEN,
    TEXT_LEN,
    Schema,
    array,
    obj,
    ref_list,
    string,
    string_map,
)

KINDS = ("ConfigMap", "Secret", "GitRepository", "OCIRepository", "Bucket")


def kustomization_refs(scope: str) -> Schema:
    """spec.kustomizationRefs: kustomizations built with `kubectl kustomize` per cluster."""
    ref = obj("A kustomization to build and deploy.", {
        "kind": string("ConfigMap or Secret holding the kustomization (files as data keys, or "
                       "a .tar/.tar.gz in one key: a ConfigMap's binaryData or a Secret's "
                       "data). GitRepository, OCIRepository and Bucket (Flux sources) are "
                       "accepted and reported as Unsupported.", enum=KINDS),
        "namespace": string(f"Namespace of the object{scope}.", max_length=LABEL_LEN),
        "name": string("Name of the object.", min_length=1, max_length=NAME_LEN),
        "path": string("Directory inside the kustomization to build (default: its root). "
                       "Without a kustomization.yaml, one is made listing the directory's "
                       "YAML files.", max_length=TEXT_LEN),
        "targetNamespace": string("Sets (or overrides) the namespace of every namespaced "
                                  "object the kustomization builds.", min_length=1,
                                  max_length=LABEL_LEN),
        "deploymentType": string("Remote deploys to the workload cluster; Local (the "
                                 "management cluster) is not done: the profile's Unsupported "
                                 "condition names such refs.", enum=("Remote", "Local"),
                                 default="Remote"),
        "values": string_map("Variables for the built objects: each value is a Jinja2 "
                             "template over `cluster`, and the kustomize output is then "
                             "rendered as a template with these variables (and `cluster`).",
                             string("", max_length=TEXT_LEN)),
        "valuesFrom": ref_list("ConfigMaps/Secrets whose data are more such variables "
                               "(after `values`, in order).", max_items=32),
    }, required=("kind", "name"))
    return array(f"Kustomizations{scope} built with `kubectl kustomize` for every matching "
                 "cluster; the objects are deployed like policyRefs' and recorded as the "
                 "Kustomize feature.", ref, max_items=32)
