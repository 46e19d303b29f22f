"""What a profile does to every object it renders: patches, then extra labels and annotations.

Sveltos' `patches` / `patchesFrom` and `extraLabels` / `extraAnnotations`.
Used in two places with the same `Transform`: the ClusterSummary's desired
state (`controller.desired`) transforms policyRef manifests before they are
hashed and applied, and Helm's post-renderer (`adapters.postrender`) runs it
over a chart's rendered objects, so what a chart deploys is patched and
labelled the same way (hooks excepted: Helm does not post-render them).

A patch is kustomize's: a `target` selecting objects (group, version, kind,
name and namespace are anchored regular expressions, labelSelector and
annotationSelector are kubectl selectors; an empty field matches anything)
and a `patch` text that is either a JSON 6902 patch (a YAML or JSON list of
operations; it needs a target) or a strategic merge patch (a YAML mapping;
without a target it patches the object its own apiVersion, kind, name and
namespace name). Patches apply in order, each to what the previous ones
left; then the extra labels and annotations are set, overriding values
the objects had (Sveltos: "the value from extraLabels will override").

Pure: plain data in, new plain data out. Errors are SpecError naming the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
import yaml

from engine import errors, labels, strategicmerge


@dataclass(frozen=True)
class Target:
    """Which objects a patch applies to; empty fields match anything."""

    group: str = ""
    version: str = ""
    kind: str = ""
    name: str = ""
    namespace: str = ""
    label_selector: str = ""
    annotation_selector: str = ""

    def to_json(self) -> dict[str, str]:
        return {k: v for k, v in (("group", self.group), ("version", self.version),
                                  ("kind", self.kind), ("name", self.name),
                                  ("namespace", self.namespace),
                                  ("labelSelector", self.label_selector),
                                  ("annotationSelector", self.annotation_selector)) if v}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Target:
        return cls(group=str(data.get("group") or ""), version=str(data.get("version") or ""),
                   kind=str(data.get("kind") or ""), name=str(data.get("name") or ""),
                   namespace=str(data.get("namespace") or ""),
                   label_selector=str(data.get("labelSelector") or ""),
                   annotation_selector=str(data.get("annotationSelector") or ""))


@dataclass(frozen=True)
class Patch:
    """One patch with its text final (templates already rendered); `field` names its origin."""

    patch: str
    target: Target | None = None
    field: str = "spec.patches"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"patch": self.patch, "field": self.field}
        if self.target is not None:
            out["target"] = self.target.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Patch:
        target = data.get("target")
        return cls(patch=str(data.get("patch") or ""), field=str(data.get("field") or ""),
                   target=None if target is None else Target.from_json(target))


@dataclass(frozen=True)
class Transform:
    """Everything a profile does to the objects it deploys, in the order it is done."""

    patches: tuple[Patch, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.patches or self.labels or self.annotations)

    def to_json(self) -> dict[str, Any]:
        """A JSON form: what the post-renderer reads, and what a release's hash covers."""
        out: dict[str, Any] = {}
        if self.patches:
            out["patches"] = [p.to_json() for p in self.patches]
        if self.labels:
            out["labels"] = dict(sorted(self.labels.items()))
        if self.annotations:
            out["annotations"] = dict(sorted(self.annotations.items()))
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Transform:
        return cls(patches=tuple(Patch.from_json(p) for p in data.get("patches") or []),
                   labels={str(k): str(v) for k, v in (data.get("labels") or {}).items()},
                   annotations={str(k): str(v)
                                for k, v in (data.get("annotations") or {}).items()})

    def check(self) -> None:
        """Raise SpecError for a patch that cannot apply to anything (before helm runs it)."""
        for patch in self.patches:
            document = _load(patch)
            target = patch.target
            if target is None:
                assert isinstance(document, Mapping)  # _load: a list always has a target
                target = _own_target(document, patch.field)
            for pattern in (target.group, target.version, target.kind, target.name,
                            target.namespace):
                _regex(pattern, patch.field)
            for selector in (target.label_selector, target.annotation_selector):
                _selector(selector, patch.field)

    def apply(self, objects: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The objects after every patch, with the extra labels and annotations set."""
        out = [dict(o) for o in objects]
        for patch in self.patches:
            out = apply_patch(out, patch)
        if self.labels or self.annotations:
            out = [_with_metadata(o, self.labels, self.annotations) for o in out]
        return out


def parse_patches(text: str, *, field: str) -> list[Mapping[str, Any]]:
    """The patches a patchesFrom data key holds: a YAML list of {patch, target} entries."""
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise errors.SpecError(f"not valid YAML: {_one_line(exc)}", field=field,
                               reason="InvalidPatch") from None
    if loaded is None:
        return []
    entries = loaded if isinstance(loaded, list) else [loaded]
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("patch"), str):
            raise errors.SpecError(f"entry {index + 1} is not a {{patch, target}} object "
                                   "with a string patch", field=field, reason="InvalidPatch")
    return entries


def _load(patch: Patch) -> list[Any] | Mapping[str, Any]:
    """The patch document: a list (JSON 6902, which needs a target) or a mapping (SMP)."""
    try:
        document = yaml.safe_load(patch.patch)
    except yaml.YAMLError as exc:
        raise errors.SpecError(f"patch is not valid YAML: {_one_line(exc)}", field=patch.field,
                               reason="InvalidPatch") from None
    if isinstance(document, list):
        if patch.target is None:
            raise errors.SpecError("a JSON 6902 patch needs a target", field=patch.field,
                                   reason="InvalidPatch")
        return document
    if not isinstance(document, Mapping):
        raise errors.SpecError("a patch is a strategic merge patch (a mapping) or a JSON "
                               "6902 patch (a list of operations)", field=patch.field,
                               reason="InvalidPatch")
    return document


def apply_patch(objects: Sequence[Mapping[str, Any]], patch: Patch) -> list[dict[str, Any]]:
    """Apply one patch to every object its target selects (SMP or JSON 6902)."""
    document = _load(patch)
    if isinstance(document, list):
        assert patch.target is not None
        return _each(objects, patch.target, patch.field,
                     lambda obj: _json6902(obj, document, patch.field))
    if patch.target is None:
        target = _own_target(document, patch.field)
        return _each(objects, target, patch.field,
                     lambda obj: strategicmerge.apply(obj, document))
    # With a target, the patch's own identity is not a merge instruction (kustomize).
    body = {k: v for k, v in document.items() if k not in ("apiVersion", "kind")}
    meta = {k: v for k, v in (body.get("metadata") or {}).items()
            if k not in ("name", "namespace")}
    if "metadata" in body:
        body["metadata"] = meta
    return _each(objects, patch.target, patch.field, lambda obj: strategicmerge.apply(obj, body))


def selects(target: Target, obj: Mapping[str, Any], *, field: str = "spec.patches") -> bool:
    """Whether a patch target selects an object."""
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    meta = obj.get("metadata") or {}
    for pattern, value in ((target.group, group), (target.version, version),
                           (target.kind, str(obj.get("kind", ""))),
                           (target.name, str(meta.get("name") or "")),
                           (target.namespace, str(meta.get("namespace") or ""))):
        if pattern and not _regex(pattern, field).fullmatch(value):
            return False
    for selector, marks in ((target.label_selector, meta.get("labels")),
                            (target.annotation_selector, meta.get("annotations"))):
        if selector and not labels.matches(marks or {}, match_expressions=_selector(
                selector, field)):
            return False
    return True


def _each(objects: Sequence[Mapping[str, Any]], target: Target, where: str,
          change: Callable[[Mapping[str, Any]], dict[str, Any] | None],
          ) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for obj in objects:
        if not selects(target, obj, field=where):
            out.append(dict(obj))
            continue
        changed = change(obj)
        if changed is not None:  # a strategic merge `$patch: delete` drops the object
            out.append(changed)
    return out


def _json6902(obj: Mapping[str, Any], operations: list[Any], where: str) -> dict[str, Any]:
    try:
        result: dict[str, Any] = jsonpatch.apply_patch(dict(obj), operations, in_place=False)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError,
            KeyError, ValueError) as exc:
        meta = obj.get("metadata") or {}
        why = _safe_reason(exc)
        raise errors.SpecError(
            f"JSON 6902 patch failed on {obj.get('kind')} {meta.get('namespace') or ''}"
            f"{'/' if meta.get('namespace') else ''}{meta.get('name')}: {why}",
            field=where, reason="PatchFailed") from None
    return result


def _safe_reason(exc: Exception) -> str:
    """Why a JSON 6902 patch failed, without the object's values (it may be a Secret).

    jsonpatch quotes the whole object ("member 'x' not found in {...}") and a failed
    `test` quotes the live value; only what the patch itself said is kept.
    """
    if isinstance(exc, jsonpatch.JsonPatchTestFailed):
        return "a test operation did not hold"
    if isinstance(exc, (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException)):
        return re.split(r" in [{\[]", _one_line(exc), maxsplit=1)[0]
    return f"the patch does not fit the object ({type(exc).__name__})"


def _own_target(document: Mapping[str, Any], where: str) -> Target:
    """A strategic merge patch without a target patches the object it names itself."""
    meta = document.get("metadata") or {}
    kind, name = document.get("kind"), meta.get("name")
    if not kind or not name:
        raise errors.SpecError("a strategic merge patch without a target must name its "
                               "object (kind and metadata.name)", field=where,
                               reason="InvalidPatch")
    group, _, version = str(document.get("apiVersion", "")).rpartition("/")
    return Target(group=re.escape(group) if document.get("apiVersion") else "",
                  version=re.escape(version), kind=re.escape(str(kind)),
                  name=re.escape(str(name)),
                  namespace=re.escape(str(meta["namespace"])) if meta.get("namespace") else "")


def _with_metadata(obj: Mapping[str, Any], extra_labels: Mapping[str, str],
                   extra_annotations: Mapping[str, str]) -> dict[str, Any]:
    meta = dict(obj.get("metadata") or {})
    if extra_labels:
        meta["labels"] = {**(meta.get("labels") or {}), **extra_labels}
    if extra_annotations:
        meta["annotations"] = {**(meta.get("annotations") or {}), **extra_annotations}
    return {**obj, "metadata": meta}


def _regex(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(f"(?:{pattern})")
    except re.error as exc:
        raise errors.SpecError(f"invalid regular expression {pattern!r} in the target: {exc}",
                               field=where, reason="InvalidPatch") from None


def _selector(text: str, where: str) -> tuple[labels.Requirement, ...]:
    try:
        return labels.parse_selector(text)
    except ValueError as exc:
        raise errors.SpecError(str(exc), field=where, reason="InvalidPatch") from None


def dumps(transform: Transform) -> str:
    """The transform as the post-renderer's configuration file holds it."""
    return json.dumps(transform.to_json(), sort_keys=True)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300]
