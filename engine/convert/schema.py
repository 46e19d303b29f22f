"""Fit converted values to Flotilla's CRD schemas, reporting whatever does not fit.

Used by `engine.convert.profiles` and `engine.convert.clusters` after a field
has been renamed or rewritten. The schemas are the ones `crds/` is generated
from (`engine.model.schema`), so the output of `flotilla convert` passes the
API server's structural checks — unknown fields, types, enums, patterns,
bounds, required fields — whatever fields other parts of Flotilla have added
or not yet added. A property our schema lacks is dropped and reported (unless
its value is empty or Sveltos's default, which loses nothing); a list item
that lacks a required field is dropped whole and reported.
Pure: the schema modules are data.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from engine.convert import fields
from engine.convert.report import Report
from engine.model import schema as crds

Schema = Mapping[str, Any]


class _Drop:
    """Marker: the value does not fit and was reported; the caller leaves it out."""


DROP = _Drop()


@functools.cache
def spec_schema(kind: str) -> Schema:
    """The `spec` schema of one of our kinds (ClusterProfile, Profile, WorkloadCluster)."""
    for document in crds.crd_documents():
        if document["spec"]["names"]["kind"] == kind:
            root = document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            spec: Schema = root["properties"]["spec"]
            return spec
    raise KeyError(kind)


def properties(node: Schema) -> Mapping[str, Schema]:
    props: Mapping[str, Schema] = node.get("properties") or {}
    return props


UNHONOURED = ("accepted, but Flotilla does not act on it yet (the profile's Unsupported "
              "condition names it)")
_UNHONOURED_MARKS = ("reported as Unsupported", "Unsupported condition")


def unhonoured(node: Schema) -> bool:
    """Whether our schema accepts a field only to report it as Unsupported (its description
    says so): carried over, it does nothing yet."""
    description = str(node.get("description") or "")
    return any(mark in description for mark in _UNHONOURED_MARKS)


def is_empty(value: Any) -> bool:
    """A value whose loss loses nothing: unset, false, 0, "" or an empty collection."""
    return value is None or value is False or value == 0 or value in ("", [], {})


def fit(value: Any, node: Schema, path: str, report: Report) -> Any:
    """`value` with what `node` does not accept removed (and reported), or DROP."""
    if node.get("x-kubernetes-preserve-unknown-fields") and "properties" not in node:
        return value
    if node.get("x-kubernetes-int-or-string"):
        return _int_or_string(value, node, path, report)
    kind = node.get("type")
    if kind == "object":
        return _object(value, node, path, report)
    if kind == "array":
        if not isinstance(value, list):
            report.dropped(path, f"expected a list, got {_describe(value)}")
            return DROP
        items = [fit(item, node.get("items") or {}, f"{path}[{i}]", report)
                 for i, item in enumerate(value)]
        kept = [item for item in items if item is not DROP]
        limit = node.get("maxItems")
        if limit is not None and len(kept) > limit:
            report.dropped(f"{path}[{limit}:]", f"Flotilla takes at most {limit} entries here")
            kept = kept[:limit]
        return kept
    return _scalar(value, node, path, report)


def _object(value: Any, node: Schema, path: str, report: Report) -> Any:
    if not isinstance(value, Mapping):
        report.dropped(path, f"expected an object, got {_describe(value)}")
        return DROP
    props = properties(node)
    extra = node.get("additionalProperties")
    out: dict[str, Any] = {}
    for key, item in value.items():
        where = f"{path}.{key}"
        if key in props:
            if unhonoured(props[key]) and not is_empty(item) and \
                    fields.SUB_DEFAULTS.get(key, DROP) != item and \
                    not (isinstance(item, str) and item in fields.HONOURED.get(key, ())):
                report.review(where, UNHONOURED)
            fitted = fit(item, props[key], where, report)
        elif isinstance(extra, Mapping):
            fitted = fit(item, extra, where, report)
        elif "properties" not in node and node.get("x-kubernetes-preserve-unknown-fields"):
            fitted = item
        else:
            if not (is_empty(item) or fields.SUB_DEFAULTS.get(key, DROP) == item):
                report.dropped(where, "Flotilla has no such field (yet)")
            continue
        if fitted is not DROP:
            out[key] = fitted
    missing = [name for name in node.get("required") or () if name not in out]
    if missing:
        report.dropped(path, f"left out: it needs {', '.join(missing)}, which could not be "
                             "carried over")
        return DROP
    return out


def _int_or_string(value: Any, node: Schema, path: str, report: Report) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        report.dropped(path, f"expected a number or a string, got {_describe(value)}")
        return DROP
    if isinstance(value, str) and node.get("pattern") and \
            not re.search(node["pattern"], value):
        report.dropped(path, f"{value!r} does not match {node['pattern']}")
        return DROP
    return value


def _scalar(value: Any, node: Schema, path: str, report: Report) -> Any:
    kind = node.get("type")
    ok = {
        "string": isinstance(value, str),
        "boolean": isinstance(value, bool),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
    }.get(kind or "", True)
    if not ok:
        report.dropped(path, f"expected a {kind}, got {_describe(value)}")
        return DROP
    problem = ""
    if node.get("enum") and value not in node["enum"]:
        problem = f"{value!r} is not one of {', '.join(map(str, node['enum']))}"
    elif isinstance(value, str) and node.get("pattern") and not re.search(node["pattern"],
                                                                         value):
        problem = f"{value!r} does not match {node['pattern']}"
    elif isinstance(value, str) and node.get("maxLength") and len(value) > node["maxLength"]:
        problem = f"longer than {node['maxLength']} characters"
    elif isinstance(value, str) and len(value) < node.get("minLength", 0):
        problem = "must not be empty" if node["minLength"] == 1 else \
            f"shorter than {node['minLength']} characters"
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if node.get("minimum") is not None and value < node["minimum"]:
            problem = f"{value} is below the minimum {node['minimum']}"
        elif node.get("maximum") is not None and value > node["maximum"]:
            problem = f"{value} is above the maximum {node['maximum']}"
    if problem:
        report.dropped(path, problem)
        return DROP
    return value


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__
