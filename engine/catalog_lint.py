"""Pure checks of catalog entries against their charts: values paths and values.schema.json.

Used by `flotilla catalog lint` (the I/O half, `catalog_lint_run`, pulls the
chart, reads it into a `ChartInfo` and runs `helm template`) and by its unit
tests on plain data. The health-check kind matching lives in
`catalog_lint_kinds`.

A parameter path, or a key of a version's default values, is checked against
the chart's *effective* defaults: its values.yaml, with every subchart's
defaults under `<subchart or alias>.` and the keys a template lifts to the
top (Istio keeps its defaults under `_internal_defaults_do_not_set` and its
templates unset that key from .Values and merge it back) lifted. A path under
a key whose default is `{}` or null is a free-form map: allowed, said as a
note. A path missing from values.yaml is still fine when values.schema.json
declares it, a note when a template reads it (or hands a parent map on whole,
as istiod merges `.Values.meshConfig` into its mesh config), an error
otherwise — Helm ignores unknown keys silently, which is exactly the bug this
finds. Setting a map where the chart has a list or a scalar is an error too.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

from engine import catalog, errors, render
from engine.model import types

Severity = Literal["error", "warning", "note"]
Path = tuple[str, ...]

_VALUES_REF = re.compile(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
_ACTION = re.compile(r"\{\{(.*?)\}\}", re.S)
_PASS_THROUGH = re.compile(r"\b(toYaml|toJson|toPrettyJson|toRawJson|merge|mergeOverwrite|"
                           r"mustMerge|mustMergeOverwrite|range)\b")
_UNSET = re.compile(r"unset\s+\$?\.Values\s+\"([^\"]+)\"")
_JSON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
    (dict, "object"), (list, "array"), (type(None), "null"),
)


@dataclasses.dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class ChartInfo:
    """What the checks need of one chart: defaults, schema, template texts, subcharts."""

    name: str
    version: str
    values: Mapping[str, Any]
    schema: Mapping[str, Any] | None = None
    templates: Mapping[str, str] = dataclasses.field(default_factory=dict)
    subcharts: Mapping[str, ChartInfo] = dataclasses.field(default_factory=dict)


def dotted(path: Sequence[str]) -> str:
    return ".".join(path)


def effective_defaults(chart: ChartInfo) -> dict[str, Any]:
    """values.yaml as the templates see it: subchart defaults nested, lifted keys lifted."""
    own = dict(chart.values)
    for key in lifted_keys(chart):
        held = own.pop(key, None)
        if isinstance(held, Mapping):
            own = render.deep_merge(held, own)
    nested = {name: effective_defaults(sub) for name, sub in chart.subcharts.items()}
    return render.deep_merge(nested, own)


def lifted_keys(chart: ChartInfo) -> list[str]:
    """Top-level keys a template removes from .Values (to merge their content back)."""
    found = {match for text in chart.templates.values() for match in _UNSET.findall(text)}
    return sorted(key for key in found if isinstance(chart.values.get(key), Mapping))


def template_reads(chart: ChartInfo, *, passed_through: bool = False) -> frozenset[Path]:
    """Every `.Values.a.b.c` the templates read, subcharts' under their names.

    With `passed_through`, only those read inside an action that hands the whole
    map on (toYaml, merge, range, …): keys below them reach the output unlisted.
    """
    texts = [action for text in chart.templates.values() for action in _ACTION.findall(text)
             if not passed_through or _PASS_THROUGH.search(action)]
    reads = {tuple(match.strip(".").split(".")) for text in texts
             for match in _VALUES_REF.findall(text)}
    for name, sub in chart.subcharts.items():
        reads |= {(name, *path) for path in template_reads(sub, passed_through=passed_through)}
    return frozenset(reads)


def leaf_paths(values: Mapping[str, Any], prefix: Path = ()) -> Iterator[tuple[Path, Any]]:
    """(path, value) of every leaf: non-empty maps are descended, lists are leaves."""
    for key, value in values.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping) and value:
            yield from leaf_paths(value, path)
        else:
            yield path, value


def check_path(chart: ChartInfo, path: Path, value: Any, *, what: str) -> list[Finding]:
    """Findings for setting `path` to `value` in this chart; `what` names the origin."""
    findings = _values_findings(chart, path, value, what=what)
    if any(finding.severity == "error" for finding in findings):
        return findings  # the schema would only repeat that the key is wrong
    schema, tail = _schema_for(chart, path)
    if schema is not None:
        prefix = path[:len(path) - len(tail)]
        findings += [Finding("error", f"{what}: {problem}")
                     for problem in schema_problems(schema, tail, value, prefix=prefix)]
    return findings


def _values_findings(chart: ChartInfo, path: Path, value: Any, *, what: str) -> list[Finding]:
    node: Any = effective_defaults(chart)
    for depth, key in enumerate(path):
        here = dotted(path[:depth])
        if depth and (node is None or (isinstance(node, Mapping) and not node)):
            shown = "null" if node is None else "{}"
            return [Finding("note", f"{what}: under {here}, a free-form map ({shown} in"
                            f" values.yaml): not checked")]
        if not isinstance(node, Mapping):
            return [Finding("error", f"{what}: {here} is {_a(node)} in values.yaml,"
                            f" so {dotted(path)} cannot be set")]
        if key not in node:
            return _missing(chart, path, depth, sorted(map(str, node)), what=what)
        node = node[key]
    if node is not None and value is not None and _shape(node) != _shape(value):
        # A map where the chart has a list or a scalar (or the reverse) breaks its templates.
        return [Finding("error", f"{what}: sets {dotted(path)} to {_a(value)}, but values.yaml"
                        f" has {_a(node)} there")]
    return []


def _shape(value: Any) -> str:
    return "map" if isinstance(value, Mapping) else "list" if isinstance(value, list) else "scalar"


def _a(value: Any) -> str:
    kind = _json_type(value)
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def _missing(chart: ChartInfo, path: Path, depth: int, siblings: list[str], *,
             what: str) -> list[Finding]:
    schema, tail = _schema_for(chart, path)
    if schema is not None and schema_node(schema, tail) is not None:
        return []  # declared by values.schema.json, only not given a default
    reads = template_reads(chart)
    read = next((path[:n] for n in range(len(path), depth, -1) if path[:n] in reads), None)
    if read is not None:
        return [Finding("note", f"{what}: {dotted(path)} is not in values.yaml, but the templates"
                        f" read .Values.{dotted(read)}")]
    whole = template_reads(chart, passed_through=True)
    passed = next((path[:n] for n in range(depth, 0, -1) if path[:n] in whole), None)
    if passed is not None:
        return [Finding("note", f"{what}: {dotted(path)} is not in values.yaml, but the templates"
                        f" pass .Values.{dotted(passed)} on whole (toYaml, merge, range):"
                        " not checked")]
    where = f"{dotted(path[:depth])} has no key" if depth else "no top-level key"
    close = difflib.get_close_matches(path[depth], siblings, n=3, cutoff=0.6)
    hint = f" (close: {', '.join(close)})" if close else ""
    return [Finding("error", f"{what}: {dotted(path)} is not in the chart's values: {where}"
                    f" {path[depth]!r}{hint}")]


def _schema_for(chart: ChartInfo, path: Path) -> tuple[Mapping[str, Any] | None, Path]:
    """The schema that governs `path` (a subchart's for `<subchart>.…`) and the path within it."""
    if path and path[0] in chart.subcharts and len(path) > 1:
        sub_schema, tail = _schema_for(chart.subcharts[path[0]], path[1:])
        if sub_schema is not None:
            return sub_schema, tail
    return chart.schema, path


# --- values.schema.json -----------------------------------------------------------------------

def schema_node(schema: Mapping[str, Any], path: Path) -> Mapping[str, Any] | None:
    """The schema node declaring `path`, or None when no property chain declares it."""
    nodes: list[Mapping[str, Any]] = [schema]
    for key in path:
        nodes = [child for node in nodes for child in _children(schema, node, key)]
        if not nodes:
            return None
    return nodes[0]


def schema_problems(schema: Mapping[str, Any], path: Path, value: Any, *,
                    prefix: Path = ()) -> list[str]:
    """Why values.schema.json refuses `value` at `path` ([] when it accepts it or cannot tell)."""
    nodes: list[Mapping[str, Any]] = [schema]
    for depth, key in enumerate(path):
        children = [child for node in nodes for child in _children(schema, node, key)]
        if not children:
            if all(_closed(schema, node) for node in nodes):
                where = dotted((*prefix, *path[:depth])) or "the top level"
                return [f"values.schema.json allows no key {key!r} at {where}"]
            return []  # an open object (or no object at all): nothing more to check
        nodes = children
    problems = [_leaf_problem(schema, node, value) for node in nodes]
    if all(problems):
        return [f"{dotted((*prefix, *path))}: {problems[0]}"]
    return []


def _ref(root: Mapping[str, Any], ref: str) -> Mapping[str, Any] | None:
    """A local JSON pointer ("#/$defs/values"); remote references are not followed."""
    if not ref.startswith("#"):
        return None
    target: Any = root
    for part in filter(None, ref[1:].split("/")):
        key = part.replace("~1", "/").replace("~0", "~")
        target = target.get(key) if isinstance(target, Mapping) else None
    return target if isinstance(target, Mapping) else None


def _resolve(root: Mapping[str, Any], node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A node with its $ref followed and its allOf/anyOf/oneOf alternatives spread out."""
    parts: list[Mapping[str, Any]] = []
    pending = [node]
    while pending and len(parts) < 64:
        current = pending.pop(0)
        parts.append(current)
        ref = current.get("$ref")
        if isinstance(ref, str) and (target := _ref(root, ref)) is not None:
            pending.append(target)
        for combinator in ("allOf", "anyOf", "oneOf"):
            pending += [alt for alt in current.get(combinator) or [] if isinstance(alt, Mapping)]
    return parts


def _children(root: Mapping[str, Any], node: Mapping[str, Any],
              key: str) -> list[Mapping[str, Any]]:
    children: list[Mapping[str, Any]] = []
    for part in _resolve(root, node):
        properties = part.get("properties") or {}
        if key in properties and isinstance(properties[key], Mapping):
            children.append(properties[key])
        for pattern, child in (part.get("patternProperties") or {}).items():
            if re.search(pattern, key) and isinstance(child, Mapping):
                children.append(child)
        extra = part.get("additionalProperties")
        if isinstance(extra, Mapping) and key not in properties:
            children.append(extra)
    return children


def _closed(root: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """Whether the node refuses undeclared keys (additionalProperties: false somewhere in it)."""
    return any(part.get("additionalProperties") is False for part in _resolve(root, node))


def _leaf_problem(root: Mapping[str, Any], node: Mapping[str, Any], value: Any,
                  depth: int = 0) -> str:
    """Why `node` refuses `value` ("" when it accepts it): type, enum, $ref, all/any/oneOf."""
    if depth > 16:
        return ""  # a cyclic $ref: give up rather than loop
    wanted = node.get("type")
    allowed = [wanted] if isinstance(wanted, str) else list(wanted or [])
    actual = _json_type(value)
    if allowed and actual not in allowed and not (actual == "integer" and "number" in allowed):
        return f"values.schema.json wants {' or '.join(allowed)}, got {actual} {value!r}"
    if "enum" in node and value not in node["enum"]:
        return f"values.schema.json allows only {node['enum']!r}, got {value!r}"
    ref = node.get("$ref")
    target = _ref(root, ref) if isinstance(ref, str) else None
    every = [target] if target is not None else []  # a $ref and each allOf must all hold
    for part in [*every, *(node.get("allOf") or [])]:
        if problem := _leaf_problem(root, part, value, depth + 1):
            return problem
    for combinator in ("anyOf", "oneOf"):
        problems = [_leaf_problem(root, part, value, depth + 1)
                    for part in node.get(combinator) or []]
        if problems and all(problems):
            return problems[0]
    return ""


def _json_type(value: Any) -> str:
    return next((name for kind, name in _JSON_TYPES if isinstance(value, kind)), "value")


# --- parameters and version values ------------------------------------------------------------

def sample_values(parameter: types.CatalogParameter) -> list[Any]:
    """Values a parameter is checked with: its default, every enum choice, true and false,
    and for numbers one more (default + 2: a template may only act above a threshold)."""
    samples: list[Any] = [parameter.default] if parameter.has_default else []
    if parameter.enum is not None:
        samples += list(parameter.enum)
    elif parameter.type is types.ParameterType.BOOLEAN:
        samples += [True, False]
    elif parameter.type in (types.ParameterType.INTEGER, types.ParameterType.NUMBER):
        base = parameter.default if isinstance(parameter.default, int | float) else 0
        samples.append(base + 2)
    elif not samples:
        samples.append("example")
    unique: list[Any] = []
    for sample in samples:
        if not any(sample == seen and type(sample) is type(seen) for seen in unique):
            unique.append(sample)
    return unique


def exercised_value(parameter: types.CatalogParameter) -> Any:
    """The first sample that differs from the default (the default when none does)."""
    samples = sample_values(parameter)
    changed = [s for s in samples if not (parameter.has_default and s == parameter.default)]
    return (changed or samples)[0]


def parameter_findings(chart: ChartInfo, parameter: types.CatalogParameter) -> list[Finding]:
    """Findings for one parameter over all its sample values, each said once."""
    findings: list[Finding] = []
    rendered_something = False
    for sample in sample_values(parameter):
        if parameter.path:
            what = f"parameter {parameter.name} (path {parameter.path})"
            found = check_path(chart, tuple(parameter.path.split(".")), sample, what=what)
        else:
            what = f"parameter {parameter.name} (valuesTemplate)"
            try:
                fragment = catalog.values_fragment(parameter, sample, field="valuesTemplate")
            except errors.SpecError as error:
                findings.append(Finding("error", f"{what} with {sample!r}: {error}"))
                continue
            rendered_something = rendered_something or bool(fragment)
            # The same wrong key for every sample is one finding, hence no sample in `what`.
            found = [finding for path, value in leaf_paths(fragment)
                     for finding in check_path(chart, path, value, what=what)]
        findings += [finding for finding in found if finding not in findings]
    if parameter.values_template and not rendered_something:
        findings.append(Finding("warning", f"parameter {parameter.name}: its valuesTemplate"
                                f" renders nothing for {sample_values(parameter)!r}"))
    return findings


def values_findings(chart: ChartInfo, values: Mapping[str, Any]) -> list[Finding]:
    """Findings for every leaf of a catalog version's default values."""
    return [finding for path, value in leaf_paths(values)
            for finding in check_path(chart, path, value, what=f"values {dotted(path)}")]
