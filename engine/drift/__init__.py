"""Compare what Flotilla applied with what is live.

Used by the controller's drift engine (`engine.controller.drifts`), by the
`flotilla plan` / DryRun previews and by the workload adapter (which applies
`strip_excluded` before a re-apply). Purely computational: no I/O, no clock.

Objects are plain JSON mappings in the API server's camelCase form. Only the
fields the desired object sets are compared, because the API server and
admission webhooks add fields (status, uid, `restartPolicy`, injected
sidecars) that must never count as drift; correcting them would start a fight
we cannot win. Paths are RFC 6901 JSON pointers into the *desired* object
(so list indices are desired indices), the same pointers `driftExclusions`
uses.

This diff is a cheap first pass and errs towards reporting: a field the
server drops or rewrites (`env[].value: ""`, `hostIPC: false`) shows up here.
`engine.drift.confirm` then keeps only what the API server's own version of
the desired object (a server-side-apply dry run) still disagrees on;
`engine.drift.fights` decides when a correction must wait.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine import api
from engine.drift.paths import (
    MISSING,
    Tokens,
    format_pointer,
    is_excluded,
    named,
    parse_pointer,
)
from engine.drift.values import is_quantity, same_scalar
from engine.model import types

__all__ = [
    "SERVER_ANNOTATIONS",
    "SERVER_METADATA",
    "Change",
    "DriftReport",
    "compare",
    "diff",
    "excluded_by_annotation",
    "exclusions_for",
    "format_pointer",
    "normalise",
    "parse_pointer",
    "report_of",
    "strip_excluded",
]

# Written by the API server or other controllers, never by us.
SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
SERVER_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
)


@dataclass(frozen=True)
class Change:
    """One drifted field: its pointer, the desired value, the live one (None if absent)."""

    path: str
    desired: Any
    live: Any


@dataclass(frozen=True)
class DriftReport:
    """The result of `diff`; `paths` and `changes` are sorted by pointer."""

    drifted: bool
    deleted: bool = False
    paths: tuple[str, ...] = ()
    changes: tuple[Change, ...] = ()


def normalise(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `obj` without what the API server populates, in the form it stores.

    Idempotent. A Secret's `stringData` is folded into base64 `data`, as the
    API server does on write; otherwise a Secret written with `stringData`
    would look drifted forever.
    """
    out = copy.deepcopy(dict(obj))
    out.pop("status", None)
    meta = out.get("metadata")
    if isinstance(meta, Mapping):
        meta = {k: v for k, v in meta.items() if k not in SERVER_METADATA}
        annotations = meta.get("annotations")
        if isinstance(annotations, Mapping):
            kept = {k: v for k, v in annotations.items() if k not in SERVER_ANNOTATIONS}
            if kept or len(kept) == len(annotations):
                meta["annotations"] = kept
            else:
                del meta["annotations"]  # emptied by us: as if never set
        out["metadata"] = meta
    string_data = out.get("stringData")
    if out.get("kind") == "Secret" and isinstance(string_data, Mapping):
        data = dict(out.get("data") or {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        out["data"] = data
        del out["stringData"]
    return out


def diff(
    desired: Mapping[str, Any],
    live: Mapping[str, Any] | None,
    *,
    exclusions: Sequence[str] = (),
) -> DriftReport:
    """How `live` departs from `desired`, comparing only the fields `desired` sets.

    Maps: extra live keys are ignored. Lists of maps that all carry a unique
    `name` are matched by name and extra live entries ignored (they belong to
    other field managers, e.g. injected sidecars). Other lists are compared by
    index, extra or missing entries included. A desired null, `{}` or `[]`
    sets nothing and is not compared. `exclusions` are JSON pointers; each
    hides its whole subtree. Raises ValueError for a malformed pointer.
    """
    excluded = tuple(parse_pointer(pointer) for pointer in exclusions)
    if live is None:
        return DriftReport(drifted=True, deleted=True)
    changes: list[Change] = []
    _walk(normalise(desired), normalise(live), (), excluded, changes)
    return report_of(changes)


def report_of(changes: Sequence[Change]) -> DriftReport:
    """A report holding `changes`, sorted by pointer."""
    ordered = sorted(changes, key=lambda change: change.path)
    return DriftReport(
        drifted=bool(ordered),
        paths=tuple(change.path for change in ordered),
        changes=tuple(ordered),
    )


def compare(desired: Any, live: Any, tokens: Tokens = ()) -> list[Change]:
    """The changes below `tokens` between two values, with `diff`'s rules.

    For callers that compare a part of an object already normalised; a
    `live` of `paths.MISSING` means the live object has nothing there.
    """
    changes: list[Change] = []
    _walk(desired, live, tokens, (), changes)
    return changes


def strip_excluded(obj: Mapping[str, Any], exclusions: Sequence[str]) -> dict[str, Any]:
    """A copy of `obj` without the excluded subtrees, so a re-apply never overwrites them.

    List indices in the pointers refer to `obj` as given: removing entry 1
    does not shift what "/…/2" means. Exclusions should name map keys: the API
    server replaces an index-compared list whole, so dropping one of its
    entries from the applied object removes it from the live one too.
    """
    excluded = tuple(parse_pointer(pointer) for pointer in exclusions)
    if () in excluded:
        return {}
    stripped = _strip(obj, (), excluded)
    assert isinstance(stripped, dict)
    return stripped


def excluded_by_annotation(obj: Mapping[str, Any]) -> bool:
    """True when the object carries `flotilla.dev/drift-ignore: "true"`."""
    metadata = obj.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    if not isinstance(annotations, Mapping):
        return False
    return str(annotations.get(api.DRIFT_IGNORE_ANNOTATION, "")).strip().lower() == "true"


def _unspecified(value: Any) -> bool:
    # The API server drops empty and null fields, so they cannot be checked.
    return value is None or (isinstance(value, Mapping | list) and not value)


def _walk(
    desired: Any, live: Any, tokens: Tokens, excluded: tuple[Tokens, ...], out: list[Change]
) -> None:
    if is_excluded(tokens, excluded) or _unspecified(desired):
        return
    if live is MISSING:
        out.append(Change(format_pointer(tokens), desired, None))
    elif isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            out.append(Change(format_pointer(tokens), desired, live))
            return
        for key, value in desired.items():
            _walk(value, live.get(key, MISSING), (*tokens, str(key)), excluded, out)
    elif isinstance(desired, list):
        if not isinstance(live, list):
            out.append(Change(format_pointer(tokens), desired, live))
        elif named(desired):
            by_name = {x["name"]: x for x in live if isinstance(x, Mapping) and "name" in x}
            for index, item in enumerate(desired):
                _walk(
                    item, by_name.get(item["name"], MISSING), (*tokens, str(index)), excluded, out
                )
        else:
            for index in range(max(len(desired), len(live))):
                child = (*tokens, str(index))
                if index >= len(desired):
                    if not is_excluded(child, excluded):
                        out.append(Change(format_pointer(child), None, live[index]))
                else:
                    found = live[index] if index < len(live) else MISSING
                    _walk(desired[index], found, child, excluded, out)
    elif not same_scalar(desired, live, quantity=is_quantity(tokens)):
        out.append(Change(format_pointer(tokens), desired, live))


def _strip(node: Any, tokens: Tokens, excluded: tuple[Tokens, ...]) -> Any:
    if not any(prefix[: len(tokens)] == tokens for prefix in excluded):
        return copy.deepcopy(node)  # no exclusion reaches below here
    if isinstance(node, Mapping):
        children = ((str(key), key, value) for key, value in node.items())
        return {
            key: _strip(value, (*tokens, token), excluded)
            for token, key, value in children
            if not is_excluded((*tokens, token), excluded)
        }
    if isinstance(node, list):
        return [
            _strip(value, (*tokens, str(index)), excluded)
            for index, value in enumerate(node)
            if not is_excluded((*tokens, str(index)), excluded)
        ]
    return copy.deepcopy(node)


def exclusions_for(pspec: types.ProfileSpec, obj: Mapping[str, Any]) -> list[str]:
    """JSON pointers excluded for this object by spec.driftExclusions."""
    out: list[str] = []
    meta = obj.get("metadata") or {}
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    for exclusion in pspec.drift_exclusions:
        t = exclusion.target
        if t is not None and not all((
            not t.kind or t.kind == obj.get("kind"),
            not t.group or t.group == group,
            not t.version or t.version == version,
            not t.namespace or t.namespace == (meta.get("namespace") or ""),
            not t.name or t.name == meta.get("name"),
        )):
            continue
        out.extend(exclusion.paths)
    return out
