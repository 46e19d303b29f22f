"""Frozen dataclasses for every spec shape of docs/api.md.

Used by the pure decision modules (select, catalog, rollout, health, drift)
and by the controller, which reads raw kopf bodies through `from_dict`. The
API server validates input against the CRD schemas first, but the
controller must never crash on what it is given, so each `from_dict`
applies the documented defaults and raises `errors.SpecError` carrying the
exact path of the field at fault ("spec.helmCharts[0].chartVersion").
Values and manifests stay plain dicts; callers must not mutate them.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any, Self

from engine import errors
from engine.model import quantities
from engine.model._fields import Reader
from engine.model.healthcheck import HealthCheck as HealthCheck
from engine.model.helmopts import HelmOptions
from engine.model.patchspec import PatchSpec


class SelectorOperator(enum.StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class SyncMode(enum.StrEnum):
    ONE_TIME = "OneTime"
    CONTINUOUS = "Continuous"
    CONTINUOUS_WITH_DRIFT_DETECTION = "ContinuousWithDriftDetection"
    DRY_RUN = "DryRun"


class StopMatchingBehavior(enum.StrEnum):
    WITHDRAW_POLICIES = "WithdrawPolicies"
    LEAVE_POLICIES = "LeavePolicies"


class HelmChartAction(enum.StrEnum):
    INSTALL = "Install"
    UNINSTALL = "Uninstall"


class OnFailure(enum.StrEnum):
    PAUSE = "Pause"
    ROLLBACK = "Rollback"


class Approval(enum.StrEnum):
    AUTOMATIC = "Automatic"
    MANUAL = "Manual"


class ParameterType(enum.StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"


class ReferenceKind(enum.StrEnum):
    CONFIG_MAP = "ConfigMap"
    SECRET = "Secret"


@dataclasses.dataclass(frozen=True, slots=True)
class LabelSelectorRequirement:
    key: str
    operator: SelectorOperator
    values: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        operator = r.enum("operator", SelectorOperator)
        values = r.strings("values")
        # Same rules as the API server's selector validation: set operators
        # need values, existence operators must not have any.
        if operator in (SelectorOperator.IN, SelectorOperator.NOT_IN) and not values:
            raise errors.SpecError(f"operator {operator} needs values", field=r.at("values"))
        if operator in (SelectorOperator.EXISTS, SelectorOperator.DOES_NOT_EXIST) and values:
            raise errors.SpecError(f"operator {operator} takes no values", field=r.at("values"))
        return cls(key=r.required_text("key"), operator=operator, values=values)


@dataclasses.dataclass(frozen=True, slots=True)
class LabelSelector:
    match_labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        return cls(
            match_labels=r.string_map("matchLabels"),
            match_expressions=r.objects("matchExpressions", LabelSelectorRequirement),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterRef:
    name: str
    namespace: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        return cls(name=r.required_text("name"), namespace=r.text("namespace"))


@dataclasses.dataclass(frozen=True, slots=True)
class CatalogParameter:
    """A named knob: sets one values `path`, or renders `values_template` (a values fragment).

    Exactly one of the two is set. A template serves knobs that no single
    path expresses, e.g. a number that must land inside a config string.
    """

    name: str
    path: str = ""
    type: ParameterType = ParameterType.STRING
    description: str = ""
    has_default: bool = False
    default: Any = None
    enum: tuple[Any, ...] | None = None
    values_template: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        choices = r.list("enum")
        path, template = r.text("path"), r.text("valuesTemplate")
        if bool(path) == bool(template):
            raise errors.SpecError(
                "a parameter sets exactly one of path and valuesTemplate", field=r.at("path")
            )
        return cls(
            name=r.required_text("name"),
            path=path,
            values_template=template,
            type=r.enum("type", ParameterType, default=ParameterType.STRING),
            description=r.text("description"),
            # A null default is meaningful ("unset this path"), hence the flag.
            has_default="default" in data,
            default=data.get("default"),
            enum=tuple(choices) if "enum" in data else None,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ChartRef:
    repository_url: str
    chart_name: str
    chart_version: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        return cls(
            repository_url=r.required_text("repositoryURL"),
            chart_name=r.required_text("chartName"),
            chart_version=r.required_text("chartVersion"),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class CatalogVersion:
    version: str
    chart: ChartRef
    values: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        return cls(
            version=r.required_text("version"),
            chart=r.required_object("chart", ChartRef),
            values=r.mapping("values"),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class CatalogServiceSpec:
    name: str
    release_name: str
    release_namespace: str
    versions: tuple[CatalogVersion, ...]
    description: str = ""
    depends_on: tuple[str, ...] = ()
    health_checks: tuple[HealthCheck, ...] = ()
    parameters: tuple[CatalogParameter, ...] = ()
    helm_options: HelmOptions = dataclasses.field(default_factory=HelmOptions)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec", name: str = "") -> Self:
        """Read a CatalogService spec; `name` is metadata.name, the releaseName default."""
        r = Reader(data, field)
        versions = r.objects("versions", CatalogVersion)
        if not versions:
            raise errors.SpecError(
                "a catalog service needs at least one version", field=r.at("versions")
            )
        release_name = r.text("releaseName") or name
        if not release_name:
            raise errors.SpecError("required field is missing", field=r.at("releaseName"))
        return cls(
            name=name or release_name,
            release_name=release_name,
            release_namespace=r.required_text("releaseNamespace"),
            versions=versions,
            description=r.text("description"),
            depends_on=r.strings("dependsOn"),
            health_checks=r.objects("healthChecks", HealthCheck),
            parameters=r.objects("parameters", CatalogParameter),
            helm_options=HelmOptions.catalog_defaults(r.mapping("helmOptions"),
                                                      field=r.at("helmOptions")),
        )

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> Self:
        """Read a whole CatalogService object (metadata.name + spec)."""
        metadata = Reader(obj, "").mapping("metadata")
        name = Reader(metadata, "metadata").required_text("name")
        return cls.from_dict(Reader(obj, "").mapping("spec"), field="spec", name=name)


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceRef:
    name: str
    version: str = ""
    values: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    parameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    options: HelmOptions = dataclasses.field(default_factory=HelmOptions)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        return cls(
            name=r.required_text("name"),
            version=r.text("version"),
            values=r.mapping("values"),
            parameters=r.mapping("parameters"),
            options=r.optional_object("options", HelmOptions) or HelmOptions(),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ValuesFrom:
    kind: ReferenceKind
    name: str
    namespace: str = ""
    optional: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        return cls(
            kind=r.enum("kind", ReferenceKind),
            name=r.required_text("name"),
            namespace=r.text("namespace"),
            optional=r.flag("optional"),
        )


class DeploymentType(enum.StrEnum):
    REMOTE = "Remote"  # the workload cluster
    LOCAL = "Local"  # the management cluster


@dataclasses.dataclass(frozen=True, slots=True)
class PolicyRef(ValuesFrom):
    """A ConfigMap/Secret of manifests; `tier` ranks it against the profile's other refs."""

    tier: int = 100
    deployment_type: DeploymentType = DeploymentType.REMOTE
    skip_namespace_creation: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        tier = r.integer("tier", default=100)
        if tier < 1:
            raise errors.SpecError(f"tier must be at least 1, got {tier}", field=r.at("tier"))
        return cls(
            kind=r.enum("kind", ReferenceKind),
            name=r.required_text("name"),
            namespace=r.text("namespace"),
            optional=r.flag("optional"),
            tier=tier,
            deployment_type=r.enum("deploymentType", DeploymentType,
                                   default=DeploymentType.REMOTE),
            skip_namespace_creation=r.flag("skipNamespaceCreation"),
        )


class KustomizationKind(enum.StrEnum):
    CONFIG_MAP = "ConfigMap"
    SECRET = "Secret"
    # Flux sources: accepted as Sveltos writes them, reported as unsupported.
    GIT_REPOSITORY = "GitRepository"
    OCI_REPOSITORY = "OCIRepository"
    BUCKET = "Bucket"


@dataclasses.dataclass(frozen=True, slots=True)
class KustomizationRef:
    """A kustomization in a ConfigMap/Secret (Sveltos' KustomizationRef), built per cluster."""

    kind: KustomizationKind
    name: str
    namespace: str = ""
    path: str = ""
    target_namespace: str = ""
    deployment_type: DeploymentType = DeploymentType.REMOTE
    values: Mapping[str, str] = dataclasses.field(default_factory=dict)
    values_from: tuple[ValuesFrom, ...] = ()

    @property
    def supported(self) -> bool:
        """Built and deployed (else the profile's Unsupported condition names it)."""
        return self.kind in (KustomizationKind.CONFIG_MAP, KustomizationKind.SECRET) \
            and self.deployment_type is DeploymentType.REMOTE

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        return cls(
            kind=r.enum("kind", KustomizationKind),
            name=r.required_text("name"),
            namespace=r.text("namespace"),
            path=r.text("path"),
            target_namespace=r.text("targetNamespace"),
            deployment_type=r.enum("deploymentType", DeploymentType,
                                   default=DeploymentType.REMOTE),
            values=r.string_map("values"),
            values_from=r.objects("valuesFrom", ValuesFrom),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class TemplateResourceRef:
    """A management-cluster object templates read as getResource(identifier) (Sveltos).

    `name` and `namespace` may be templates over `cluster`; an empty namespace is the
    cluster's (a Profile's objects are always in its own namespace).
    """

    identifier: str
    api_version: str
    kind: str
    name: str
    namespace: str = ""
    optional: bool = False
    ignore_status_changes: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        res = Reader(r.mapping("resource"), r.at("resource"))
        return cls(identifier=r.required_text("identifier"),
                   api_version=res.text("apiVersion") or "v1", kind=res.required_text("kind"),
                   name=res.required_text("name"), namespace=res.text("namespace"),
                   optional=r.flag("optional"),
                   ignore_status_changes=r.flag("ignoreStatusChanges"))


@dataclasses.dataclass(frozen=True, slots=True)
class HelmChartSpec:
    chart_name: str
    release_name: str
    release_namespace: str
    repository_url: str = ""
    repository_name: str = ""
    chart_version: str = ""
    helm_chart_action: HelmChartAction = HelmChartAction.INSTALL
    # A YAML string (parsed, and templated, later) or an object.
    values: str | Mapping[str, Any] = dataclasses.field(default_factory=dict)
    values_from: tuple[ValuesFrom, ...] = ()
    options: HelmOptions = dataclasses.field(default_factory=HelmOptions)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        action = r.enum("helmChartAction", HelmChartAction, default=HelmChartAction.INSTALL)
        raw_values = data.get("values")
        values: str | Mapping[str, Any] = (
            raw_values if isinstance(raw_values, str) else r.mapping("values")
        )
        return cls(
            repository_url=r.text("repositoryURL"),
            repository_name=r.text("repositoryName"),
            chart_name=r.required_text("chartName"),
            chart_version=(
                r.required_text("chartVersion")
                if action is HelmChartAction.INSTALL
                else r.text("chartVersion")
            ),
            release_name=r.required_text("releaseName"),
            release_namespace=r.required_text("releaseNamespace"),
            helm_chart_action=action,
            values=values,
            values_from=r.objects("valuesFrom", ValuesFrom),
            options=r.optional_object("options", HelmOptions) or HelmOptions(),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class DriftExclusionTarget:
    """Which objects an exclusion applies to; empty fields match anything."""

    group: str = ""
    version: str = ""
    kind: str = ""
    namespace: str = ""
    name: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        return cls(*(r.text(key) for key in ("group", "version", "kind", "namespace", "name")))


@dataclasses.dataclass(frozen=True, slots=True)
class DriftExclusion:
    paths: tuple[str, ...]
    target: DriftExclusionTarget | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        paths = r.strings("paths")
        for index, path in enumerate(paths):
            if not path.startswith("/"):
                raise errors.SpecError(
                    f"expected a JSON pointer starting with '/', got {path!r}",
                    field=r.at(f"paths[{index}]"),
                )
        return cls(paths=paths, target=r.optional_object("target", DriftExclusionTarget))


@dataclasses.dataclass(frozen=True, slots=True)
class RolloutStage:
    """A rollout stage; durations are in seconds, None means "use the rollout default"."""

    name: str
    cluster_selector: LabelSelector | None = None
    percent: quantities.IntOrPercent | None = None
    max_update: quantities.IntOrPercent | None = None
    approval: Approval = Approval.AUTOMATIC
    min_success_time: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        selector = r.optional_object("clusterSelector", LabelSelector)
        percent = r.optional_int_or_percent("percent")
        if selector is not None and percent is not None:
            raise errors.SpecError(
                "set clusterSelector or percent, not both", field=r.at("percent")
            )
        return cls(
            name=r.required_text("name"),
            cluster_selector=selector,
            percent=percent,
            max_update=r.optional_int_or_percent("maxUpdate"),
            approval=r.enum("approval", Approval, default=Approval.AUTOMATIC),
            min_success_time=r.optional_duration("minSuccessTime"),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class RolloutSpec:
    """Staged rollout settings; durations are in seconds."""

    stages: tuple[RolloutStage, ...] = ()
    min_success_time: float = 0.0
    progress_deadline: float = 600.0
    max_failures: quantities.IntOrPercent = 0
    on_failure: OnFailure = OnFailure.PAUSE
    paused: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        stages = r.objects("stages", RolloutStage)
        seen: set[str] = set()
        for index, stage in enumerate(stages):
            if stage.name in seen:
                raise errors.SpecError(
                    f"duplicate stage name {stage.name!r}", field=r.at(f"stages[{index}].name")
                )
            seen.add(stage.name)
        min_success_time = r.optional_duration("minSuccessTime")
        progress_deadline = r.optional_duration("progressDeadline")
        max_failures = r.optional_int_or_percent("maxFailures")
        return cls(
            stages=stages,
            min_success_time=0.0 if min_success_time is None else min_success_time,
            progress_deadline=600.0 if progress_deadline is None else progress_deadline,
            max_failures=0 if max_failures is None else max_failures,
            on_failure=r.enum("onFailure", OnFailure, default=OnFailure.PAUSE),
            paused=r.flag("paused"),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ProfileSpec:
    """The spec shared by ClusterProfile and Profile."""

    cluster_selector: LabelSelector | None = None
    cluster_refs: tuple[ClusterRef, ...] = ()
    cluster_selector_cel: str | None = None
    services: tuple[ServiceRef, ...] = ()
    helm_charts: tuple[HelmChartSpec, ...] = ()
    policy_refs: tuple[PolicyRef, ...] = ()
    kustomization_refs: tuple[KustomizationRef, ...] = ()
    sync_mode: SyncMode = SyncMode.CONTINUOUS
    tier: int = 100
    continue_on_conflict: bool = False
    continue_on_error: bool = False
    depends_on: tuple[str, ...] = ()
    stop_matching_behavior: StopMatchingBehavior = StopMatchingBehavior.WITHDRAW_POLICIES
    max_update: quantities.IntOrPercent = "100%"
    validate_healths: tuple[HealthCheck, ...] = ()
    drift_exclusions: tuple[DriftExclusion, ...] = ()
    rollout: RolloutSpec | None = None
    extra_labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    extra_annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)
    patches: tuple[PatchSpec, ...] = ()
    patches_from: tuple[ValuesFrom, ...] = ()
    max_consecutive_failures: int | None = None  # None: the default (retry.MAX_…)
    # Checks on the workload cluster: before deploying, before and after withdrawing.
    pre_deploy_checks: tuple[HealthCheck, ...] = ()
    pre_delete_checks: tuple[HealthCheck, ...] = ()
    post_delete_checks: tuple[HealthCheck, ...] = ()
    template_resource_refs: tuple[TemplateResourceRef, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "spec") -> Self:
        r = Reader(data, field)
        tier = r.integer("tier", default=100)
        if not 1 <= tier <= 1000:
            raise errors.SpecError(f"tier must be within 1..1000, got {tier}", field=r.at("tier"))
        max_update = r.optional_int_or_percent("maxUpdate")
        return cls(
            cluster_selector=r.optional_object("clusterSelector", LabelSelector),
            cluster_refs=r.objects("clusterRefs", ClusterRef),
            cluster_selector_cel=r.optional_text("clusterSelectorCEL") or None,
            services=r.objects("services", ServiceRef),
            helm_charts=r.objects("helmCharts", HelmChartSpec),
            policy_refs=r.objects("policyRefs", PolicyRef),
            kustomization_refs=r.objects("kustomizationRefs", KustomizationRef),
            sync_mode=r.enum("syncMode", SyncMode, default=SyncMode.CONTINUOUS),
            tier=tier,
            continue_on_conflict=r.flag("continueOnConflict"),
            continue_on_error=r.flag("continueOnError"),
            depends_on=r.strings("dependsOn"),
            stop_matching_behavior=r.enum(
                "stopMatchingBehavior",
                StopMatchingBehavior,
                default=StopMatchingBehavior.WITHDRAW_POLICIES,
            ),
            max_update="100%" if max_update is None else max_update,
            validate_healths=r.objects("validateHealths", HealthCheck),
            drift_exclusions=r.objects("driftExclusions", DriftExclusion),
            rollout=r.optional_object("rollout", RolloutSpec),
            extra_labels=r.string_map("extraLabels"),
            extra_annotations=r.string_map("extraAnnotations"),
            patches=r.objects("patches", PatchSpec),
            patches_from=r.objects("patchesFrom", ValuesFrom),
            max_consecutive_failures=_positive(r, "maxConsecutiveFailures"),
            pre_deploy_checks=r.objects("preDeployChecks", HealthCheck),
            pre_delete_checks=r.objects("preDeleteChecks", HealthCheck),
            post_delete_checks=r.objects("postDeleteChecks", HealthCheck),
            template_resource_refs=_unique_identifiers(
                r.objects("templateResourceRefs", TemplateResourceRef), r),
        )


def _unique_identifiers(refs: tuple[TemplateResourceRef, ...],
                        r: Reader) -> tuple[TemplateResourceRef, ...]:
    seen: set[str] = set()
    for index, ref in enumerate(refs):
        if ref.identifier in seen:
            raise errors.SpecError(f"identifier {ref.identifier!r} is used twice",
                                   field=r.at(f"templateResourceRefs[{index}].identifier"))
        seen.add(ref.identifier)
    return refs


def _positive(r: Reader, key: str) -> int | None:
    """An optional integer that must be at least 1 when given."""
    if r.data.get(key) is None:
        return None
    value = r.integer(key)
    if value < 1:
        raise errors.SpecError(f"must be at least 1, got {value}", field=r.at(key))
    return value
