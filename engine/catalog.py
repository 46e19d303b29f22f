"""Resolve a profile's services against the catalog into release plans.

Used by the profile reconciler (to hash the desired revision) and the
ClusterSummary reconciler (to deploy). Pure: the catalog comes in as parsed
`CatalogServiceSpec`s, the result is a list of `ReleasePlan`s in dependency
order. Anything only the controller can judge — an unknown service, a
version no range matches, a missing dependency — raises `errors.SpecError`
naming the spec field, and nothing is deployed for the profile.

Values are merged in this order, later wins: the catalog version's values,
then parameters (or their defaults), then the service's own `values`. A
parameter writes its value to one dotted `path`, or renders its
`valuesTemplate` (Jinja2 over `value`) into a values fragment, for knobs no
single path expresses (gpu-operator's time slicing is a count inside a
device-plugin config string). Templating over the cluster happens later, per
cluster, in `render`.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import yaml

from engine import errors, render
from engine.model import helmopts, types
from engine.semver import Version, VersionRange

_PARAMETER_TYPES: dict[types.ParameterType, tuple[type, ...]] = {
    types.ParameterType.STRING: (str,),
    types.ParameterType.INTEGER: (int,),
    types.ParameterType.NUMBER: (int, float),
    types.ParameterType.BOOLEAN: (bool,),
}


@dataclasses.dataclass(frozen=True, slots=True)
class ReleasePlan:
    """One Helm release to install (or uninstall) on every selected cluster.

    `values` are final except for templating. When a raw helmChart gives its
    values as a YAML string containing Jinja2 markers, the string cannot be
    parsed before it is rendered, so it is kept in `values_template` and the
    caller merges `render.template_yaml(values_template, ...)` over `values`.
    """

    name: str
    release_name: str
    namespace: str
    repository_url: str
    chart_name: str
    chart_version: str
    values: Mapping[str, Any]
    depends_on: tuple[str, ...]
    health_checks: tuple[types.HealthCheck, ...]
    source: Literal["catalog", "helmChart"]
    field: str
    version: str = ""
    uninstall: bool = False
    values_template: str = ""
    values_from: tuple[types.ValuesFrom, ...] = ()
    # Helm options: a catalog service's helmOptions under the profile's options.
    options: helmopts.HelmOptions = dataclasses.field(
        default_factory=helmopts.HelmOptions)
    # What Helm's post-renderer does to the chart's objects for this cluster (the JSON form
    # of `patches.Transform`: the profile's patches, extraLabels, extraAnnotations).
    post_render: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def resolve(
    spec: types.ProfileSpec, catalog: Mapping[str, types.CatalogServiceSpec]
) -> list[ReleasePlan]:
    """Release plans for the profile's services and helmCharts, in dependency order."""
    plans = [
        _plan_service(service, catalog, field=f"spec.services[{index}]")
        for index, service in enumerate(spec.services)
    ]
    by_service = {plan.name: plan for plan in plans}
    plans = [
        _with_dependencies(plan, catalog[plan.name], by_service, index=index)
        for index, plan in enumerate(plans)
    ]
    plans += [
        _plan_helm_chart(chart, field=f"spec.helmCharts[{index}]")
        for index, chart in enumerate(spec.helm_charts)
    ]
    _check_unique(plans)
    return _dependency_order(plans)


def _plan_service(
    service: types.ServiceRef, catalog: Mapping[str, types.CatalogServiceSpec], *, field: str
) -> ReleasePlan:
    entry = catalog.get(service.name)
    if entry is None:
        raise errors.SpecError(
            f"no catalog service named {service.name!r}",
            field=f"{field}.name",
            reason="UnknownService",
        )
    version = pick_version(entry, service.version, field=f"{field}.version")
    values = render.deep_merge(version.values, parameter_values(entry, service, field=field))
    values = render.deep_merge(values, service.values)
    return ReleasePlan(
        name=entry.name,
        release_name=entry.release_name,
        namespace=entry.release_namespace,
        repository_url=version.chart.repository_url,
        chart_name=version.chart.chart_name,
        chart_version=version.chart.chart_version,
        values=values,
        depends_on=(),
        health_checks=entry.health_checks,
        source="catalog",
        field=field,
        version=version.version,
        options=service.options.over(entry.helm_options),
    )


def pick_version(
    entry: types.CatalogServiceSpec, wanted: str, *, field: str
) -> types.CatalogVersion:
    """The catalog version `wanted` names: exact, else the highest in the range."""
    bare = wanted.strip().removeprefix("v")
    for version in entry.versions:
        if version.version.removeprefix("v") == bare and bare:
            return version
    try:
        matcher = VersionRange.parse(wanted)
    except ValueError as error:
        raise errors.SpecError(str(error), field=field, reason="VersionNotFound") from None
    candidates = [
        (parsed, version)
        for version in entry.versions
        if (parsed := Version.parse_or_none(version.version)) is not None
        and matcher.matches(parsed)
    ]
    if candidates:
        return max(candidates, key=lambda candidate: candidate[0])[1]
    if matcher.any and entry.versions:
        # No version parses as semver: "newest" falls back to the first listed,
        # which is also what the LATEST printer column shows.
        return entry.versions[0]
    listed = ", ".join(version.version for version in entry.versions)
    raise errors.SpecError(
        f"no version of {entry.name!r} matches {wanted!r} (catalog has {listed})",
        field=field,
        reason="VersionNotFound",
    )


def parameter_values(
    entry: types.CatalogServiceSpec, service: types.ServiceRef, *, field: str
) -> dict[str, Any]:
    """The values the service's parameters (or, unset, their defaults) contribute.

    Also used by `catalog_lint` to render a version with its parameter defaults.
    """
    known = {parameter.name: parameter for parameter in entry.parameters}
    for name in service.parameters:
        if name not in known:
            raise errors.SpecError(
                f"{entry.name!r} has no parameter {name!r}"
                f" (known: {', '.join(sorted(known)) or 'none'})",
                field=f"{field}.parameters.{name}",
                reason="UnknownParameter",
            )
    values: dict[str, Any] = {}
    for parameter in entry.parameters:
        if parameter.name in service.parameters:
            value = service.parameters[parameter.name]
            _check_parameter(parameter, value, field=f"{field}.parameters.{parameter.name}")
        elif parameter.has_default:
            value = parameter.default
        else:
            continue
        if parameter.values_template:
            fragment = values_fragment(parameter, value, field=f"{field}.parameters")
            values = render.deep_merge(values, fragment)
        else:
            _set_path(values, parameter.path, copy.deepcopy(value))
    return values


def values_fragment(
    parameter: types.CatalogParameter, value: Any, *, field: str
) -> dict[str, Any]:
    """Render a parameter's valuesTemplate for `value`: a values mapping, or {} for nothing.

    The template sees only `value`; the cluster is not known yet here (templating over
    the cluster happens per cluster, later), and a fragment that depends on nothing but
    the parameter hashes the same for every cluster.
    """
    where = f"{field}.{parameter.name}"
    rendered = render.template_yaml(parameter.values_template, {"value": value}, field=where)
    if rendered is None:
        return {}
    if not isinstance(rendered, dict):
        raise errors.SpecError(
            f"the catalog's valuesTemplate of parameter {parameter.name!r} rendered"
            f" {type(rendered).__name__}, not a values mapping",
            field=where,
            reason="InvalidParameter",
        )
    return rendered


def _check_parameter(parameter: types.CatalogParameter, value: Any, *, field: str) -> None:
    allowed = _PARAMETER_TYPES[parameter.type]
    # bool is an int subclass, but `true` is no integer.
    wrong_bool = isinstance(value, bool) and parameter.type is not types.ParameterType.BOOLEAN
    if wrong_bool or not isinstance(value, allowed):
        raise errors.SpecError(
            f"parameter {parameter.name!r} must be of type {parameter.type}, got {value!r}",
            field=field,
            reason="InvalidParameter",
        )
    if parameter.enum is not None and value not in parameter.enum:
        choices = ", ".join(repr(choice) for choice in parameter.enum)
        raise errors.SpecError(
            f"parameter {parameter.name!r} must be one of {choices}, got {value!r}",
            field=field,
            reason="InvalidParameter",
        )


def _set_path(values: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path ("driver.version"), creating (or replacing non-dict) parents."""
    *parents, leaf = path.split(".")
    node = values
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[leaf] = value


def _with_dependencies(
    plan: ReleasePlan,
    entry: types.CatalogServiceSpec,
    by_service: Mapping[str, ReleasePlan],
    *,
    index: int,
) -> ReleasePlan:
    depends_on: list[str] = []
    for dependency in entry.depends_on:
        target = by_service.get(dependency)
        if target is None:
            raise errors.SpecError(
                f"{entry.name!r} depends on {dependency!r}, which this profile does not include;"
                f" add it to spec.services",
                field=f"spec.services[{index}]",
                reason="MissingDependency",
            )
        depends_on.append(target.release_name)
    return dataclasses.replace(plan, depends_on=tuple(depends_on))


def _plan_helm_chart(chart: types.HelmChartSpec, *, field: str) -> ReleasePlan:
    values: Mapping[str, Any] = {}
    template = ""
    if isinstance(chart.values, str):
        if render.is_template(chart.values):
            # "key: {{ cluster.metadata.name }}" is not valid YAML until rendered.
            template = chart.values
        else:
            values = _parse_values(chart.values, field=f"{field}.values")
    else:
        values = chart.values
    return ReleasePlan(
        name=chart.release_name,
        release_name=chart.release_name,
        namespace=chart.release_namespace,
        repository_url=chart.repository_url,
        # Sveltos writes "repositoryName/chart"; Helm wants the chart alone.
        chart_name=chart.chart_name.rsplit("/", 1)[-1],
        chart_version=chart.chart_version,
        values=values,
        depends_on=(),
        health_checks=(),
        source="helmChart",
        field=field,
        version=chart.chart_version,
        uninstall=chart.helm_chart_action is types.HelmChartAction.UNINSTALL,
        values_template=template,
        values_from=chart.values_from,
        options=chart.options,
    )


def _parse_values(text: str, *, field: str) -> Mapping[str, Any]:
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise errors.SpecError(
            f"values are not valid YAML: {' '.join(str(error).split())}",
            field=field,
            reason="InvalidValues",
        ) from None
    if parsed is None:
        return {}
    if not isinstance(parsed, dict):
        raise errors.SpecError("values must be a YAML mapping", field=field, reason="InvalidValues")
    return parsed


def _check_unique(plans: Sequence[ReleasePlan]) -> None:
    seen: dict[tuple[str, str], ReleasePlan] = {}
    for plan in plans:
        key = (plan.namespace, plan.release_name)
        if key in seen:
            raise errors.SpecError(
                f"release {plan.namespace}/{plan.release_name} is already"
                f" deployed by {seen[key].field}",
                field=plan.field,
                reason="DuplicateRelease",
            )
        seen[key] = plan


def _dependency_order(plans: Sequence[ReleasePlan]) -> list[ReleasePlan]:
    """Stable topological sort: each step takes the first plan whose dependencies are done."""
    pending = list(plans)
    done: set[str] = set()
    ordered: list[ReleasePlan] = []
    while pending:
        ready = next((plan for plan in pending if set(plan.depends_on) <= done), None)
        if ready is None:
            names = ", ".join(plan.name for plan in pending)
            raise errors.SpecError(
                f"catalog dependencies form a cycle among: {names}",
                field=pending[0].field,
                reason="DependencyCycle",
            )
        pending.remove(ready)
        done.add(ready.release_name)
        ordered.append(ready)
    return ordered


