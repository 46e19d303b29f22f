"""Resolve a profile's services against the catalog into release plans.

Used by the profile reconciler (to hash the desired revision) and the
ClusterSummary reconciler (to deploy). Pure: the catalog comes in as parsed
`CatalogServiceSpec`s, the result is a list of `ReleasePlan`s in dependency
order. Anything only the controller can judge — an unknown service, a
version no range matches, a missing dependency — raises `errors.SpecError`
naming the spec field, and nothing is deployed for the profile.

Values are merged in this order, later wins: the catalog version's values,
then parameters (or their defaults), then the service's own `values`.
Templating over the cluster happens later, per cluster, in `render`.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import yaml

from engine import errors, render
from engine.model import types

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
    values = render.deep_merge(version.values, _parameter_values(entry, service, field=field))
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


def _parameter_values(
    entry: types.CatalogServiceSpec, service: types.ServiceRef, *, field: str
) -> dict[str, Any]:
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
        _set_path(values, parameter.path, copy.deepcopy(value))
    return values


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


# --- semver ---------------------------------------------------------------
# A small subset of npm/Helm range syntax, enough for catalog versions:
# comparators (>=, >, <=, <, =) joined by spaces (AND) and "||" (OR), caret
# and tilde ranges, x-ranges ("1.2", "1.x", "*"), and an optional leading "v".

_VERSION = re.compile(
    r"^v?(0|[1-9][0-9]*|[xX*])(?:\.(0|[1-9][0-9]*|[xX*]))?(?:\.(0|[1-9][0-9]*|[xX*]))?"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?$"
)
# (1,) for a release; (0, (0, n) | (1, "id"), ...) for a prerelease.
_Pre = tuple[int | tuple[int, int | str], ...]
_COMPARATOR = re.compile(r"\s*(>=|<=|>|<|=|\^|~)?\s*([^\s<>=^~|]+)")


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class Version:
    """A semantic version; orders as SemVer 2.0 does (a prerelease sorts first)."""

    major: int
    minor: int
    patch: int
    # (1,) for a release; (0, ids...) for a prerelease, so releases sort last.
    pre: _Pre = (1,)

    @property
    def core(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    @property
    def prerelease(self) -> bool:
        return self.pre[0] == 0

    @classmethod
    def parse_or_none(cls, text: str) -> Version | None:
        parts = _parts(text)
        if parts is None or None in parts[:3]:
            return None
        major, minor, patch, pre = parts
        return cls(major or 0, minor or 0, patch or 0, pre)


def _parts(text: str) -> tuple[int | None, int | None, int | None, _Pre] | None:
    """(major, minor, patch, pre) with None for missing or wildcard parts."""
    match = _VERSION.match(text.strip())
    if match is None:
        return None
    numbers = [None if n is None or n in "xX*" else int(n) for n in match.groups()[:3]]
    # A wildcard makes everything after it a wildcard too ("1.x.3" is "1.x").
    for index in range(1, 3):
        if numbers[index - 1] is None:
            numbers[index] = None
    ids = match.group(4)
    # Numeric identifiers sort numerically and before alphanumeric ones.
    pre: _Pre = (
        (0, *((0, int(i)) if i.isdigit() else (1, i) for i in ids.split("."))) if ids else (1,)
    )
    return numbers[0], numbers[1], numbers[2], pre


@dataclasses.dataclass(frozen=True, slots=True)
class VersionRange:
    """Alternatives (OR) of comparator sets (AND); `any` for "*" or empty."""

    alternatives: tuple[tuple[tuple[str, Version], ...], ...]
    any: bool = False

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        if text.strip() in ("", "*", "x", "X"):
            return cls(alternatives=((),), any=True)
        alternatives = []
        for alternative in text.split("||"):
            comparators: list[tuple[str, Version]] = []
            position = 0
            alternative = alternative.rstrip()
            if not alternative:
                raise ValueError(f"{text!r} has an empty alternative around '||'")
            while position < len(alternative):
                match = _COMPARATOR.match(alternative, position)
                parts = _parts(match.group(2)) if match else None
                if match is None or parts is None:
                    raise ValueError(f"{text!r} is neither a version nor a version range")
                comparators += _bounds(match.group(1) or "=", parts)
                position = match.end()
            alternatives.append(tuple(comparators))
        return cls(alternatives=tuple(alternatives))

    def matches(self, version: Version) -> bool:
        return any(_satisfies(version, comparators) for comparators in self.alternatives)


def _satisfies(version: Version, comparators: tuple[tuple[str, Version], ...]) -> bool:
    # As in npm, a prerelease only matches when the range names a prerelease
    # of the same major.minor.patch: "^1.2" must not pick 2.0.0-rc.1.
    if version.prerelease and not any(
        bound.prerelease and bound.core == version.core for _, bound in comparators
    ):
        return False
    return all(_compare(version, operator, bound) for operator, bound in comparators)


def _compare(version: Version, operator: str, bound: Version) -> bool:
    match operator:
        case ">=":
            return version >= bound
        case ">":
            return version > bound
        case "<=":
            return version <= bound
        case "<":
            return version < bound
        case _:
            return version == bound


def _bounds(
    operator: str, parts: tuple[int | None, int | None, int | None, _Pre]
) -> list[tuple[str, Version]]:
    """Translate one comparator, caret, tilde or x-range into plain bounds."""
    major, minor, patch, pre = parts
    if major is None:
        return []  # "*" / ">=x": no constraint
    low = Version(major, minor or 0, patch or 0, pre)
    exact = minor is not None and patch is not None
    # The first version past the x-range ("1.2" -> 1.3.0, "1" -> 2.0.0).
    after = Version(major, minor + 1, 0) if minor is not None else Version(major + 1, 0, 0)
    if operator == "^":
        if major > 0 or minor is None:
            high = Version(major + 1, 0, 0)
        elif minor > 0 or patch is None:
            high = Version(0, minor + 1, 0)
        else:
            high = Version(0, 0, patch + 1)
        return [(">=", low), ("<", high)]
    if operator == "~":
        return [(">=", low), ("<", after)]
    if exact:
        return [(operator, low)]
    return {
        "=": [(">=", low), ("<", after)],
        ">=": [(">=", low)],
        ">": [(">=", after)],
        "<": [("<", low)],
        "<=": [("<", after)],
    }[operator]
