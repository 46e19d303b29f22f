"""The mapping table: every Sveltos spec field, and what becomes of it in Flotilla.

Used by `engine.convert.profiles` and `engine.convert.clusters` (which apply
it), by docs/sveltos.md (whose compatibility table follows it) and by
tests/unit/test_convert_fields.py, which fails when a field our CRDs accept at
the top of spec is neither the target of a rule here nor listed as ours
alone — so the table cannot fall behind the schema.

Rules:
- PASS: same name, same meaning; copied (and checked against our schema).
- RENAME: same meaning under our name (`to`).
- CONVERT: same name, the value is rewritten (`how` says how) — templates
  translated, references reshaped.
- UNSUPPORTED: not carried over; reported, unless the value is Sveltos's
  default (`default`), which loses nothing.
A field our schema accepts but whose description says Flotilla reports it as
Unsupported (accepted, not acted on yet) is carried over with a finding to
review (`engine.convert.schema.unhonoured`), so that finding follows the
schema as features land.

A PASS/CONVERT field that this version's schema does not have yet is
reported as not carried over at conversion time (`engine.convert.schema`),
so a table entry may run ahead of the schema, never behind it.
Pure data.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any


class Action(enum.StrEnum):
    PASS = "pass"
    RENAME = "rename"
    CONVERT = "convert"
    UNSUPPORTED = "unsupported"


_NO_DEFAULT = object()


@dataclasses.dataclass(frozen=True)
class Rule:
    action: Action
    how: str = ""
    to: str = ""
    default: Any = _NO_DEFAULT

    def is_default(self, value: Any) -> bool:
        return self.default is not _NO_DEFAULT and value == self.default


PASS = Rule(Action.PASS)


def _convert(how: str) -> Rule:
    return Rule(Action.CONVERT, how=how)


def _unsupported(how: str, default: Any = _NO_DEFAULT) -> Rule:
    return Rule(Action.UNSUPPORTED, how=how, default=default)


_CHECKS = ("evaluateCEL as named rules (`expression` read as `rule`); featureID, "
           "labelFilters and script as our schema has them")

# config.projectsveltos.io ClusterProfile / Profile `spec` (v1beta1; v1alpha1 is read too).
PROFILE_SPEC: dict[str, Rule] = {
    "clusterSelector": _convert("a LabelSelector passes; v1alpha1's selector string "
                                "(`env=prod,tier in (a,b)`) becomes matchLabels/matchExpressions"),
    "clusterRefs": _convert("kept as {namespace, name} of a WorkloadCluster; a CAPI Cluster "
                            "must be registered as a WorkloadCluster of the same name"),
    "setRefs": PASS,
    "syncMode": PASS,
    "tier": PASS,
    "continueOnConflict": PASS,
    "continueOnError": PASS,
    "maxUpdate": _convert('"N%" passes; a number written as a string becomes a number'),
    "stopMatchingBehavior": PASS,
    "reloader": PASS,
    "templateResourceRefs": _convert("resource name/namespace templates translated to Jinja2"),
    "dependsOn": PASS,
    "policyRefs": _convert("ConfigMap/Secret refs pass; Flux sources (GitRepository, "
                           "OCIRepository, Bucket) and templated names are not carried over"),
    "helmCharts": _convert("values translated to Jinja2; templated chartVersion, releaseName, "
                           "releaseNamespace, repositoryURL are not carried over"),
    "kustomizationRefs": _convert("ConfigMap/Secret sources pass, values translated; Flux "
                                  "sources are not carried over"),
    "validateHealths": _convert(_CHECKS),
    "preDeployChecks": _convert(_CHECKS),
    "preDeleteChecks": _convert(_CHECKS),
    "postDeleteChecks": _convert(_CHECKS),
    "patches": _convert("patch text translated to Jinja2"),
    "patchesFrom": _convert("ConfigMap/Secret refs pass; templated names are not carried "
                            "over"),
    "driftExclusions": PASS,
    "extraLabels": PASS,
    "extraAnnotations": PASS,
    "maxConsecutiveFailures": PASS,
}

# Fields of our profile spec with no Sveltos counterpart (never produced by convert).
PROFILE_OURS = frozenset({"services", "clusterSelectorCEL", "rollout"})

# lib.projectsveltos.io SveltosCluster `spec` → WorkloadCluster `spec`.
CLUSTER_SPEC: dict[str, Rule] = {
    "kubeconfigName": Rule(Action.RENAME, to="kubeconfigSecretRef",
                           how="becomes kubeconfigSecretRef.name (default "
                               "`<name>-sveltos-kubeconfig`, as in Sveltos)"),
    "kubeconfigKeyName": Rule(Action.RENAME, to="kubeconfigSecretRef",
                              how="becomes kubeconfigSecretRef.key (when unset, the Secret's "
                                  "only key, as Sveltos reads it)"),
    "paused": PASS,
    "tokenRequestRenewalOption": _unsupported("token renewal is not supported; the kubeconfig "
                                              "Secret is read as it is"),
    "data": _unsupported("arbitrary data has no place on a WorkloadCluster; use labels or "
                         "annotations", default={}),
    "activeWindow": _unsupported("scheduled pause windows are not supported; set paused"),
    "consecutiveFailureThreshold": _unsupported("the connection failure count is fixed",
                                                default=3),
    "readinessChecks": _unsupported("readiness checks are not supported", default=[]),
    "livenessChecks": _unsupported("liveness checks are not supported", default=[]),
    "pullMode": _unsupported("pull mode (an agent in the cluster) is not supported",
                             default=False),
}

CLUSTER_OURS: frozenset[str] = frozenset()

# Sub-fields that Sveltos lets a template fill and Flotilla does not (they are fixed
# per profile here): a templated value is reported, not carried over.
UNTEMPLATED = {
    "helmCharts": ("repositoryURL", "repositoryName", "chartName", "chartVersion",
                   "releaseName", "releaseNamespace"),
    "policyRefs": ("namespace", "name"),
    "valuesFrom": ("namespace", "name"),
    "patchesFrom": ("namespace", "name"),
    "kustomizationRefs": ("namespace", "name", "path"),
}

# Sveltos defaults that are not zero values: a field our schema lacks, set to its
# default, is dropped without a finding (a false, 0, "" or empty one never has one).
SUB_DEFAULTS: dict[str, Any] = {
    "deploymentType": "Remote",
    "helmChartAction": "Install",
    "createNamespace": True,
    "replace": True,
    "maxHistory": 2,
}

# Values Flotilla acts on, of fields whose schema says other values are reported as
# Unsupported (a Flux kustomization source, a Local deployment): no finding for these.
HONOURED: dict[str, frozenset[str]] = {
    "kind": frozenset({"ConfigMap", "Secret"}),
    "deploymentType": frozenset({"Remote"}),
}

# Values of a reference's `kind` that name Flux sources.
FLUX_KINDS = frozenset({"GitRepository", "OCIRepository", "Bucket"})


def targets(table: dict[str, Rule]) -> set[str]:
    """Our spec fields a table writes to."""
    return {rule.to or name for name, rule in table.items()
            if rule.action is not Action.UNSUPPORTED}
