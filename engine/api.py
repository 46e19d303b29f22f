"""The names Flotilla's API is made of: group, version, kinds, labels, annotations, finalizers.

Everyone who reads or writes our objects uses these: the controller (its
reconcilers and kopf wiring), the adapters (ownership marks on workload
objects), the drift comparison (the opt-out annotation), the CRD schemas,
the command line, tests and benchmarks. They are part of the contract with
users (docs/api.md documents those users meet, and kubectl users type
them), so they are spelled once, here, and nowhere else.

Pure: constants and one string helper; imports nothing.
"""

from __future__ import annotations

GROUP = "flotilla.dev"
VERSION = "v1alpha1"
API_VERSION = "flotilla.dev/v1alpha1"

# --- Kinds ----------------------------------------------------------------------------------

WORKLOAD_CLUSTER = "WorkloadCluster"
CATALOG_SERVICE = "CatalogService"
CLUSTER_PROFILE = "ClusterProfile"
PROFILE = "Profile"
CLUSTER_SUMMARY = "ClusterSummary"
# The two kinds a ClusterSummary's profileRef may name; they differ only in scope.
PROFILE_KINDS = (CLUSTER_PROFILE, PROFILE)

# --- Labels ---------------------------------------------------------------------------------
# On ClusterSummaries and ControllerRevisions: the profile they belong to (and the
# cluster, for summaries). On objects deployed to workload clusters: the profile that
# owns them, plus MANAGED_BY_LABEL=MANAGED_BY, which is what the drift watches select.

PROFILE_KIND_LABEL = "flotilla.dev/profile-kind"
PROFILE_NAME_LABEL = "flotilla.dev/profile-name"
PROFILE_NAMESPACE_LABEL = "flotilla.dev/profile-namespace"
CLUSTER_NAME_LABEL = "flotilla.dev/cluster-name"
MANAGED_BY_LABEL = "flotilla.dev/managed-by"
MANAGED_BY = "flotilla"
# On namespaces the controller created for Helm releases (they are never deleted).
CREATED_BY_LABEL = "flotilla.dev/created-by"

# --- Annotations ----------------------------------------------------------------------------

# Ownership marks on every deployed object: "Kind/namespace/name" of the profile, its tier.
OWNER_ANNOTATION = "flotilla.dev/owner"
TIER_ANNOTATION = "flotilla.dev/tier"
# Content digest: of a deployed object, and of a revision's snapshot.
HASH_ANNOTATION = "flotilla.dev/hash"
# "true" on an object in a workload cluster: drift is neither reported nor corrected.
DRIFT_IGNORE_ANNOTATION = "flotilla.dev/drift-ignore"
# On a ClusterSummary being withdrawn: leave what it deployed in place.
LEAVE_POLICIES_ANNOTATION = "flotilla.dev/leave-policies"
# On ClusterSummaries, set by `flotilla retry` (any new value): failed items start over.
RETRY_ANNOTATION = "flotilla.dev/retry"
# On a profile, set by `flotilla rollout undo --to-revision N`: deploy revision N's
# whole snapshot while the spec still equals N's.
RESTORE_REVISION_ANNOTATION = "flotilla.dev/restore-revision"
# On a profile, set by `flotilla rollout approve`: "r<REV>:<stage>[,…]".
APPROVED_ANNOTATION = "flotilla.dev/approved"
# On a validateHealths jobCheck's Job: the digest of its manifest and of the revision it
# validates (another digest means the Job is stale). Its label names the check.
JOB_CHECK_DIGEST_ANNOTATION = "flotilla.dev/job-check-digest"
JOB_CHECK_LABEL = "flotilla.dev/job-check"

# On a ConfigMap/Secret a policyRef names: its manifests are Jinja2 templates, rendered per
# cluster before they are applied (the key's presence decides, as in Sveltos, whose own
# annotation is honoured too, so a Sveltos ConfigMap keeps working).
TEMPLATE_ANNOTATION = "flotilla.dev/template"
SVELTOS_TEMPLATE_ANNOTATION = "projectsveltos.io/template"
TEMPLATE_ANNOTATIONS = (TEMPLATE_ANNOTATION, SVELTOS_TEMPLATE_ANNOTATION)

# --- Finalizers -----------------------------------------------------------------------------

# A profile's: its summaries are withdrawn before it goes.
PROFILE_FINALIZER = "flotilla.dev/cleanup"
# A ClusterSummary's: what it deployed is withdrawn from the cluster before it goes.
SUMMARY_FINALIZER = "flotilla.dev/withdraw"
# kopf's own, should it ever need one (our handlers are event handlers, which do not).
KOPF_FINALIZER = "flotilla.dev/kopf"

# --- Well-known objects ---------------------------------------------------------------------

# The controller's namespace: `flotilla install` creates it; the revisions of ClusterProfiles
# and the chart mirror ConfigMap live there.
# A WorkloadCluster's shard: the controller started with `--shard-key VALUE` manages the
# clusters annotated VALUE; the one without a key manages the rest and every profile.
# Sveltos's annotation is honoured too, so migrated clusters keep their shards.
SHARD_ANNOTATION = "sharding.flotilla.dev/key"
SVELTOS_SHARD_ANNOTATION = "sharding.projectsveltos.io/key"
SHARD_ANNOTATIONS = (SHARD_ANNOTATION, SVELTOS_SHARD_ANNOTATION)

SYSTEM_NAMESPACE = "flotilla-system"
# Its values hold "UPSTREAM=LOCAL" chart mirror lines (ConfigMap keys cannot hold URLs).
MIRROR_CONFIGMAP = "flotilla-chart-mirrors"


def profile_selector(kind: str, name: str) -> str:
    """The label selector for a profile's ClusterSummaries and ControllerRevisions."""
    return f"{PROFILE_KIND_LABEL}={kind},{PROFILE_NAME_LABEL}={name}"
